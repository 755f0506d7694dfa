"""Issue 11's cancel and delete over real HTTP on the local stack: the line moves up at once and the model never
runs a cancelled task; a running task stops within 2 s and the next one starts; a cancel racing the end of a
run ends in exactly one final state, never a video for a cancelled task; a deleted task leaves nothing behind.

The model is shortened through the stack's configuration (LEYLINE_MODEL_SECONDS), never patched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from infra.testing import RunningStack
from leyline.models import parse_iso
from tests import imagefactory
from tests.integration.polling import status, upload_presigned
from tests.reliability.support import FINISHED_LOG, NO_SLOT_LOG, eventually, task_log, video_keys
from tests.stack import local_stack

pytestmark = pytest.mark.integration

MODEL_SECONDS = 6.0  # long enough that a cancel lands well inside a run, and a run not stopped would show
FINAL = {"SUCCESS", "FAILURE", "CANCELLED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("lifecycle-stack"), str(MODEL_SECONDS)) as running:
        yield running


def cancel(stack: RunningStack, task_id: str) -> requests.Response:
    return requests.post(f"{stack.api_url}/tasks/{task_id}/cancel", timeout=10)


def delete(stack: RunningStack, task_id: str) -> requests.Response:
    return requests.delete(f"{stack.api_url}/tasks/{task_id}", timeout=10)


def state_of(stack: RunningStack, task_id: str) -> dict[str, Any]:
    return status(stack.api_url, task_id)


def wait_for(stack: RunningStack, task_id: str, states: set[str], *, timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        current = state_of(stack, task_id)
        return current if current["state"] in states else None

    return eventually(reached, timeout=timeout, every=0.05, what=f"{task_id} in {states}")


def objects_of(stack: RunningStack, task_id: str) -> list[str]:
    s3 = stack.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.physical_name("MediaBucket"))
    return [item["Key"] for item in listed.get("Contents", []) if task_id in item["Key"]]


def log_time(record: dict[str, Any]) -> datetime:
    """When a function wrote a structured log line (Powertools' `timestamp`)."""
    return datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z")


def test_cancelling_the_middle_of_three_queued_tasks(stack):
    # Given three tasks: A in the model, B and C in line behind it
    a, b, c = (upload_presigned(stack.api_url, imagefactory.png()) for _ in range(3))
    wait_for(stack, a, {"PROCESSING"})
    wait_for(stack, b, {"QUEUED"})
    before = wait_for(stack, c, {"QUEUED"})
    assert (state_of(stack, b)["queue_position"], before["queue_position"]) == (1, 2)

    # When B is cancelled
    answer = cancel(stack, b)

    # Then the answer is 200 with B's status: CANCELLED, out of the line, no ETA, no error, finished
    assert answer.status_code == 200
    cancelled = answer.json()
    assert (cancelled["task_id"], cancelled["state"]) == (b, "CANCELLED")
    assert (cancelled["queue_position"], cancelled["eta_seconds"], cancelled["error"]) == (None, None, None)
    assert cancelled["finished_at"]

    # And C moves up on its very next status read: one place, and one model run sooner
    after = state_of(stack, c)
    assert after["queue_position"] == 1
    assert after["eta_seconds"] <= before["eta_seconds"] - MODEL_SECONDS + 1

    # When the model works through the line
    done_c = wait_for(stack, c, FINAL, timeout=60)
    done_a = state_of(stack, a)

    # Then A and C succeed, B was never run (never started, no video, the dispatcher gave it no slot), and C
    # finished one model run after A, not two: the time B would have taken was saved
    assert (done_a["state"], done_c["state"]) == ("SUCCESS", "SUCCESS")
    final_b = state_of(stack, b)
    assert (final_b["state"], final_b["started_at"], final_b["progress"]) == ("CANCELLED", None, 0)
    assert objects_of(stack, b) == [f"uploads/{b}"]
    skipped = eventually(
        lambda: task_log(stack, b, NO_SLOT_LOG, source="DispatchFunction"), timeout=10, what="B's job dispatched"
    )
    assert len(skipped) == 1
    assert task_log(stack, b, FINISHED_LOG) == []
    gap = parse_iso(done_c["finished_at"]) - parse_iso(done_a["finished_at"])
    assert gap < timedelta(seconds=2 * MODEL_SECONDS)


def test_cancelling_a_running_task_stops_it_within_2_s_and_the_next_starts(stack):
    # Given A in the model, some way in, and B in line behind it
    a, b = (upload_presigned(stack.api_url, imagefactory.png()) for _ in range(2))
    wait_for(stack, a, {"PROCESSING"})
    eventually(lambda: state_of(stack, a)["progress"] >= 15, timeout=30, every=0.05, what="A under way")

    # When A is cancelled
    asked = datetime.now(UTC)
    answer = cancel(stack, a)
    assert answer.status_code == 200
    cancelled = answer.json()
    assert cancelled["state"] == "CANCELLED"

    # Then the run stops within 2 s (its processor logs the run's end), and B starts within 1 s after that
    ended = eventually(lambda: task_log(stack, a, FINISHED_LOG), timeout=10, what="A's run to end")
    assert [record["state"] for record in ended] == ["CANCELLED"]
    stopped = log_time(ended[0])
    assert stopped - asked < timedelta(seconds=2)
    started_b = parse_iso(wait_for(stack, b, {"PROCESSING", "SUCCESS"})["started_at"])
    assert started_b is not None
    assert started_b - stopped < timedelta(seconds=1)

    # And A stays CANCELLED with the progress it had when cancelled, and no video is stored for it
    time.sleep(1)
    final = state_of(stack, a)
    assert (final["state"], final["progress"], final["video_url"]) == ("CANCELLED", cancelled["progress"], None)
    assert f"videos/{a}.mp4" not in video_keys(stack)
    assert cancel(stack, b).status_code == 200  # the next test's line starts empty


def _run_time(finished: dict[str, Any]) -> timedelta:
    """How long a finished task's run took, from its entering the model to its SUCCESS."""
    started, ended = parse_iso(finished["started_at"]), parse_iso(finished["finished_at"])
    assert started is not None
    assert ended is not None
    return ended - started


def test_a_cancel_racing_the_end_of_a_run_ends_in_exactly_one_final_state(make_stack):
    # Given a 1 s model, one run timed to learn how long a run takes here (the model time, or the encode when
    # that is longer, which depends on the machine's load), and 15 tasks in line behind it
    racing = make_stack(model_seconds="1")
    ids = [upload_presigned(racing.api_url, imagefactory.png()) for _ in range(16)]
    timed, ids = wait_for(racing, ids[0], FINAL, timeout=60), ids[1:]
    run = _run_time(timed)
    answers: dict[str, int] = {}

    # When each is cancelled at a moment around its run's expected end, from 0.5 s before it to 0.5 s after it
    # (the expected run time follows the last run seen to succeed)
    for index, task_id in enumerate(ids):
        running = wait_for(racing, task_id, {"PROCESSING", "SUCCESS"}, timeout=60)
        started = parse_iso(running["started_at"])
        assert started is not None
        landing = started + run + timedelta(seconds=-0.5 + index / (len(ids) - 1))
        time.sleep(max(0.0, (landing - datetime.now(UTC)).total_seconds()))
        answers[task_id] = cancel(racing, task_id).status_code
        if answers[task_id] == 409:
            run = _run_time(state_of(racing, task_id))

    # Then every task ends in exactly one final state, as its cancel's answer said, and stays so
    time.sleep(1.5)
    videos = set(video_keys(racing))
    outcomes = []
    for task_id in ids:
        final = state_of(racing, task_id)
        expected = {200: "CANCELLED", 409: "SUCCESS"}[answers[task_id]]
        assert final["state"] == expected, (task_id, answers[task_id], final)
        # And a cancelled task never has a video, in its status or in the bucket; a successful one has one
        has_video = expected == "SUCCESS"
        assert (f"videos/{task_id}.mp4" in videos, final["video_url"] is not None) == (has_video, has_video)
        assert len(task_log(racing, task_id, FINISHED_LOG)) == 1
        outcomes.append(expected)
    print("race outcomes:", outcomes)  # which side won each race, for whoever reads pytest -s
    time.sleep(1)
    assert [state_of(racing, task_id)["state"] for task_id in ids] == outcomes
    assert set(video_keys(racing)) == videos


def test_deleting_a_running_and_a_finished_task_leaves_nothing_of_them(stack):
    # Given a task that succeeded (its video link handed out) and one now in the model
    finished = upload_presigned(stack.api_url, imagefactory.png())
    done = wait_for(stack, finished, FINAL, timeout=60)
    assert done["state"] == "SUCCESS"
    old_link = done["video_url"]
    assert requests.get(old_link, timeout=10).status_code == 200
    running = upload_presigned(stack.api_url, imagefactory.png())
    wait_for(stack, running, {"PROCESSING"})
    assert objects_of(stack, finished) == [f"uploads/{finished}", f"videos/{finished}.mp4"]

    # When both are deleted
    answers = [delete(stack, task_id) for task_id in (finished, running)]

    # Then each answer is 204 with no body
    assert [(answer.status_code, answer.content) for answer in answers] == [(204, b"")] * 2

    # And the bucket holds nothing of either, also once the stopped run is over, and the old link fetches nothing
    time.sleep(2.5)
    assert objects_of(stack, finished) == []
    assert objects_of(stack, running) == []
    assert requests.get(old_link, timeout=10).status_code != 200

    # And every route answers 404 for them
    for task_id in (finished, running):
        assert requests.get(f"{stack.api_url}/status/{task_id}", timeout=10).status_code == 404
        assert requests.get(f"{stack.api_url}/video/{task_id}", allow_redirects=False, timeout=10).status_code == 404
        assert cancel(stack, task_id).status_code == 404
        assert delete(stack, task_id).status_code == 404


def test_cancel_and_delete_refuse_what_they_cannot_do(stack):
    # Given a finished task
    task_id = upload_presigned(stack.api_url, imagefactory.png())
    assert wait_for(stack, task_id, FINAL, timeout=60)["state"] == "SUCCESS"

    # Then cancelling it is 409 TASK_FINISHED; a malformed id 400; an unknown task 404 on both routes
    refused = cancel(stack, task_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "TASK_FINISHED")
    assert cancel(stack, "not-a-task").status_code == 400
    assert delete(stack, "not-a-task").status_code == 400
    unknown = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
    assert cancel(stack, unknown).json()["error"]["code"] == "TASK_NOT_FOUND"
    assert delete(stack, unknown).status_code == 404
    assert delete(stack, task_id).status_code == 204
