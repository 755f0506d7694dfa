"""Issue 5: AWS errors during a task. Transient ones end in SUCCESS (botocore's retries, then the queue's);
persistent ones end in FAILURE (PROCESSING_FAILED) through the dead-letter queue, without holding up the line.

Faults are injected by the proxy between the functions and the AWS endpoint (tests/faultproxy.py); nothing in
the pipeline is patched.
"""

from __future__ import annotations

import time

import pytest

from tests import imagefactory
from tests.reliability.support import (
    BOTOCORE_ATTEMPTS,
    DEAD_LETTER_LOG,
    FINISHED_LOG,
    RETRY_LOG,
    Timeline,
    create_ticket,
    eventually,
    messages_in,
    non_decreasing,
    send_file,
    task_log,
    video_keys,
)

pytestmark = pytest.mark.integration

S3_ATTEMPTS, DYNAMODB_ATTEMPTS = BOTOCORE_ATTEMPTS["s3"], BOTOCORE_ATTEMPTS["dynamodb"]
# The processor's progress write: only the processor makes it, at least once a second during a task.
PROGRESS_UPDATE = "SET progress = :progress"


def fault_target(service: str, task_id: str) -> list[str]:
    """What the fault matches: the task's upload (S3 GetObject), or its progress writes (DynamoDB UpdateItem)."""
    return [f"uploads/{task_id}"] if service == "s3" else [PROGRESS_UPDATE, task_id]


@pytest.mark.parametrize(
    ("service", "operation", "count", "product_retries"),
    [
        # Fewer errors than botocore's attempts: the SDK absorbs them inside one receive.
        pytest.param("s3", "GetObject", S3_ATTEMPTS - 1, 0, id="s3-GetObject-absorbed-by-botocore"),
        pytest.param("dynamodb", "UpdateItem", DYNAMODB_ATTEMPTS - 1, 0, id="dynamodb-UpdateItem-absorbed-by-botocore"),
        # As many as botocore's attempts: one call fails, the queue redelivers the job after a 2 s backoff.
        pytest.param("s3", "GetObject", S3_ATTEMPTS, 1, id="s3-GetObject-one-queue-retry"),
        pytest.param("dynamodb", "UpdateItem", DYNAMODB_ATTEMPTS, 1, id="dynamodb-UpdateItem-one-queue-retry"),
        # Two failed receives (2 s, then 4 s backoff): the third and last receive the redrive policy allows wins.
        pytest.param("s3", "GetObject", 2 * S3_ATTEMPTS, 2, id="s3-GetObject-succeeds-on-the-last-receive"),
    ],
)
def test_transient_aws_errors_during_a_task_end_in_one_success(fault_stack, service, operation, count, product_retries):
    # Given a task whose upload is about to land, and the next `count` calls of one AWS operation the
    # processor makes for it answered with throttling (S3 503 SlowDown, DynamoDB ProvisionedThroughputExceeded)
    ticket = create_ticket(fault_stack.api_url)
    task_id = ticket["task_id"]
    fault = fault_stack.inject_fault(service, operation, count=count, match=fault_target(service, task_id))

    # When the image is uploaded and the task is watched to the end
    send_file(ticket, imagefactory.png())
    timeline = Timeline(fault_stack.api_url, [task_id], every=0.1, timeout=90).start()
    final = timeline.wait_final(timeout=90)[task_id]

    # Then every injected error was served, and the task still ended SUCCESS, never showing FAILURE
    assert fault_stack.fault_hits()[0]["hits"] == count, fault
    assert final["state"] == "SUCCESS", final
    assert "FAILURE" not in timeline.states(task_id)
    assert non_decreasing(timeline.progress(task_id)), timeline.progress(task_id)
    # And the model ran to completion once: one video object, written once, one "task finished" SUCCESS
    assert [key for key in video_keys(fault_stack) if task_id in key] == [f"videos/{task_id}.mp4"]
    assert fault_stack.aws_requests().get("s3:PutObject") == 1
    assert [r["state"] for r in task_log(fault_stack, task_id, FINISHED_LOG)] == ["SUCCESS"]
    # And the retries happened where expected: inside botocore, or through the queue (the log says which)
    retries = task_log(fault_stack, task_id, RETRY_LOG)
    assert [r["attempt"] for r in retries] == list(range(1, product_retries + 1))
    for retry in retries:  # and what failed is the injected error, surfaced by botocore after its attempts
        assert fault["code"] in retry["exception"]
        assert f"reached max retries: {BOTOCORE_ATTEMPTS[service] - 1}" in retry["exception"]
    if service == "s3":  # every GetObject of the run is the upload's: faults + 1 successful read
        assert fault_stack.aws_requests()["s3:GetObject"] == count + 1


def test_a_persistent_error_ends_in_processing_failed_via_the_dead_letter_queue_and_the_next_task_runs(
    fault_stack,
):
    # Given two tasks, the first of which can never read its upload (every GetObject of it: 503 SlowDown)
    doomed, behind = create_ticket(fault_stack.api_url), create_ticket(fault_stack.api_url)
    doomed_id, behind_id = doomed["task_id"], behind["task_id"]
    fault_stack.inject_fault("s3", "GetObject", count=None, match=f"uploads/{doomed_id}")
    max_receives = int(fault_stack.stack.properties("SlotsQueue")["RedrivePolicy"]["maxReceiveCount"])

    # When both are uploaded, one right behind the other
    send_file(doomed, imagefactory.png())
    uploaded = time.monotonic()
    send_file(behind, imagefactory.png())
    timeline = Timeline(fault_stack.api_url, [doomed_id, behind_id], every=0.1, timeout=120).start()
    final = timeline.wait_final(timeout=120)

    # Then the first is FAILURE with PROCESSING_FAILED and a sentence for a person, within ~30 s
    failed = final[doomed_id]
    assert failed["state"] == "FAILURE", failed
    assert failed["error"]["code"] == "PROCESSING_FAILED"
    assert len(failed["error"]["message"]) > 10
    assert failed["video_url"] is None
    failed_after = next(s.at for s in timeline.samples[doomed_id] if s.status["state"] == "FAILURE") - uploaded
    # The product's backoffs (2, 4, 8 s), botocore's own (under 1 + 2 s a receive), and slack for polling
    bound = sum(2**attempt for attempt in range(1, max_receives + 1)) + 3 * max_receives + 15
    assert failed_after < bound, f"FAILURE only {failed_after:.1f} s after the upload (bound {bound} s)"
    assert "SUCCESS" not in timeline.states(doomed_id)
    assert non_decreasing(timeline.progress(doomed_id))
    # And it got exactly `maxReceiveCount` receives of botocore's attempts each, then the dead-letter function
    assert fault_stack.fault_hits()[0]["hits"] == max_receives * S3_ATTEMPTS
    assert [r["attempt"] for r in task_log(fault_stack, doomed_id, RETRY_LOG)] == list(range(1, max_receives + 1))
    assert len(task_log(fault_stack, doomed_id, DEAD_LETTER_LOG, source="DeadLetterFunction")) == 1
    assert not [key for key in video_keys(fault_stack) if doomed_id in key]

    # And the task behind it then ran, once, to SUCCESS
    assert final[behind_id]["state"] == "SUCCESS", final[behind_id]
    assert [r["state"] for r in task_log(fault_stack, behind_id, FINISHED_LOG)] == ["SUCCESS"]
    # And nothing is left in the jobs queue or the dead-letter queue (the dead-letter function consumed it)
    eventually(
        lambda: all(messages_in(fault_stack, q) == 0 for q in ("JobsQueue", "SlotsQueue", "JobsDeadLetterQueue")),
        timeout=15,
        what="jobs queue and dead-letter queue empty",
    )
    print(f"\nretries exhausted: FAILURE {failed_after:.1f} s after the upload; the next task then ran")


def test_a_failed_write_of_the_outcome_reruns_the_model_and_still_leaves_one_video(fault_stack):
    # Given a task whose SUCCESS cannot be recorded the first time (throttled beyond botocore's attempts)
    ticket = create_ticket(fault_stack.api_url)
    task_id = ticket["task_id"]
    # SUCCESS of a task in line is one transaction with the line summary (issue 13)
    fault_stack.inject_fault(
        "dynamodb", "TransactWriteItems", count=DYNAMODB_ATTEMPTS, match=["progress = :done", task_id]
    )

    # When it runs
    send_file(ticket, imagefactory.png())
    timeline = Timeline(fault_stack.api_url, [task_id], every=0.1, timeout=60).start()
    final = timeline.wait_final(timeout=60)[task_id]

    # Then the queue retried it and it ended SUCCESS, progress never going down
    assert final["state"] == "SUCCESS", final
    assert "FAILURE" not in timeline.states(task_id)
    assert non_decreasing(timeline.progress(task_id))
    assert [r["attempt"] for r in task_log(fault_stack, task_id, RETRY_LOG)] == [1]
    # And the model ran again (at least once: the video was written twice), yet to the same single object
    assert fault_stack.aws_requests().get("s3:PutObject") == 2
    assert [key for key in video_keys(fault_stack) if task_id in key] == [f"videos/{task_id}.mp4"]
    assert [r["state"] for r in task_log(fault_stack, task_id, FINISHED_LOG)] == ["SUCCESS"]


def test_a_throttled_visibility_change_does_not_stall_the_line(make_stack):
    # Given a stack with the fault proxy, and the processor's next ChangeMessageVisibility call throttled
    # beyond botocore's attempts (it is the first AWS call the processor makes for a job)
    stack = make_stack(faults=True)
    ticket = create_ticket(stack.api_url)
    stack.inject_fault("sqs", "ChangeMessageVisibility", count=BOTOCORE_ATTEMPTS["sqs"])

    # When the image is uploaded, Then the task still ends SUCCESS within moments, not after 540 s
    send_file(ticket, imagefactory.png())
    final = Timeline(stack.api_url, [ticket["task_id"]], timeout=20).start().wait_final(timeout=20)
    assert final[ticket["task_id"]]["state"] == "SUCCESS"


@pytest.mark.parametrize(
    ("service", "operation", "marker"),
    [
        # IntakeFunction's two calls for an upload: placing the task in line, then handing its job on
        pytest.param(
            "dynamodb", "TransactWriteItems", "queued_seq = :place", id="dynamodb-TransactWriteItems-placing-the-task"
        ),
        pytest.param("sqs", "SendMessage", None, id="sqs-SendMessage-handing-the-job-on"),
    ],
)
def test_a_transient_error_in_the_intake_is_retried_within_seconds_not_after_the_visibility_timeout(
    fault_stack, service, operation, marker
):
    # Given a task whose upload is about to land, and one of the intake's calls for it throttled beyond
    # botocore's attempts (the upload and every one behind it wait while the intake retries)
    ticket = create_ticket(fault_stack.api_url)
    task_id = ticket["task_id"]
    match = [marker, task_id] if marker else [task_id]
    fault_stack.inject_fault(service, operation, count=BOTOCORE_ATTEMPTS[service], match=match)

    # When the image is uploaded and the task is watched to the end
    send_file(ticket, imagefactory.png())
    final = Timeline(fault_stack.api_url, [task_id], every=0.1, timeout=30).start().wait_final(timeout=30)[task_id]

    # Then the error was served, and the intake's retry came after a 2 s backoff, not the intake queue's
    # 60 s visibility timeout: the task ends SUCCESS well within it, run once
    assert fault_stack.fault_hits()[0]["hits"] == BOTOCORE_ATTEMPTS[service]
    assert final["state"] == "SUCCESS", final
    assert [r["state"] for r in task_log(fault_stack, task_id, FINISHED_LOG)] == ["SUCCESS"]
    assert [key for key in video_keys(fault_stack) if task_id in key] == [f"videos/{task_id}.mp4"]


def test_a_wake_queue_that_refuses_every_call_slows_the_line_but_fails_nothing(fault_stack):
    # Given every call the functions make to SlotWakeQueue refused beyond botocore's attempts: the wakes the
    # runs' ends send, and the dispatcher's waits for them
    wake_queue = fault_stack.physical_name("SlotWakeQueue")
    for operation in ("SendMessage", "ReceiveMessage"):
        fault_stack.inject_fault("sqs", operation, count=None, match=wake_queue)
    first, second = create_ticket(fault_stack.api_url), create_ticket(fault_stack.api_url)
    ids = [first["task_id"], second["task_id"]]

    # When two images are uploaded back to back (the second waits for the one model slot)
    send_file(first, imagefactory.png())
    send_file(second, imagefactory.png())
    final = Timeline(fault_stack.api_url, ids, every=0.2, timeout=120).start().wait_final(timeout=120)

    # Then both end SUCCESS, each run once and never retried: the dispatcher found the free slot at its fallback
    # reads, and a refused wake failed no run
    assert [final[task_id]["state"] for task_id in ids] == ["SUCCESS", "SUCCESS"], final
    for task_id in ids:
        eventually(
            lambda task_id=task_id: task_log(fault_stack, task_id, FINISHED_LOG), timeout=15, what="the run logged"
        )
        assert [r["state"] for r in task_log(fault_stack, task_id, FINISHED_LOG)] == ["SUCCESS"]
        assert not task_log(fault_stack, task_id, RETRY_LOG)
    # And the wakes were refused, as injected (each run's end sent one, in one attempt)
    sends = next(fault for fault in fault_stack.fault_hits() if fault["operation"] == "SendMessage")
    assert sends["hits"] >= 2
