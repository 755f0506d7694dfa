"""Issue 5: a task that cannot succeed (bad input) fails at once and never holds up the line behind it."""

from __future__ import annotations

import pytest
import requests

from tests import imagefactory
from tests.integration.polling import poll_until_final, upload_presigned
from tests.reliability.support import (
    DEAD_LETTER_LOG,
    FINISHED_LOG,
    RETRY_LOG,
    Timeline,
    messages_in,
    seconds,
    task_log,
)

pytestmark = pytest.mark.integration

NOT_AN_IMAGE = b"Hello, this is not an image.\n"


def test_a_bad_image_fails_within_moments_and_the_next_task_starts_right_after(make_stack):
    # Given a stack whose model takes 8 s, and a text file uploaded as a PNG with a good image right behind it
    stack = make_stack(model_seconds="8")
    model = float(stack.parameters["ModelSeconds"])
    bad = upload_presigned(stack.api_url, NOT_AN_IMAGE, "image/png")
    good = upload_presigned(stack.api_url, imagefactory.png())

    # When both are watched to the end
    final = Timeline(stack.api_url, [bad, good], every=0.1, timeout=60).start().wait_final(timeout=60)

    # Then the bad one is FAILURE with its code, decided in a fraction of the model time
    failed = final[bad]
    assert (failed["state"], failed["error"]["code"]) == ("FAILURE", "UNSUPPORTED_FORMAT"), failed
    decided_in = seconds(failed["finished_at"], failed["started_at"])
    assert decided_in < model / 4, f"the bad image took {decided_in:.2f} s of an {model:.0f} s model"
    # And the good one entered the model right after it, and succeeded
    waited = seconds(final[good]["started_at"], failed["finished_at"])
    assert 0 <= waited < 3, f"the next task started {waited:.2f} s after the failure"
    assert final[good]["state"] == "SUCCESS"
    # And the failed job was consumed, not retried: one run, no retry, no dead letter, both queues empty
    assert [r["state"] for r in task_log(stack, bad, FINISHED_LOG)] == ["FAILURE"]
    assert task_log(stack, bad, RETRY_LOG) == []
    assert task_log(stack, bad, DEAD_LETTER_LOG) == []
    assert messages_in(stack, "JobsQueue") == 0
    assert messages_in(stack, "SlotsQueue") == 0
    assert messages_in(stack, "JobsDeadLetterQueue") == 0
    print(f"\nfailure fast: bad image decided in {decided_in:.2f} s; next task started {waited:.2f} s later")


def test_a_failed_task_no_longer_counts_against_the_clients_allowance(make_stack):
    # Given a client allowed one unfinished task, whose task failed (bad input)
    stack = make_stack(parameter_overrides={"MaxWaitingTasksPerClient": "1"})
    bad = upload_presigned(stack.api_url, NOT_AN_IMAGE, "image/png")
    assert poll_until_final(stack.api_url, bad, timeout=30)[-1]["state"] == "FAILURE"

    # When the same client asks for a new upload, Then it gets one: its only task is finished
    response = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10)
    assert response.status_code == 201, response.text
