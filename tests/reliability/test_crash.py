"""Issue 5: the model's execution environment dies mid-task (SIGKILL, as an out-of-memory kill or a host
failure would). The job comes back after the processor's own crash window, runs once more, and the line
moves on; the user never sees progress go backwards or the task run twice."""

from __future__ import annotations

import itertools
import os
import signal
import time

import pytest

from tests import imagefactory
from tests.integration.polling import status, upload_presigned
from tests.reliability.support import (
    FINISHED_LOG,
    Timeline,
    eventually,
    messages_in,
    non_decreasing,
    processor_timeout,
    seconds,
    task_log,
    video_keys,
    when,
)

pytestmark = pytest.mark.integration

MODEL_SECONDS = "4"
KILL_AT_PROGRESS = 25
PROCESSOR_TIMEOUT = "20"  # the template's 90 s, shortened: a crashed run comes back after it + 10 s


def test_a_killed_processor_retries_the_task_once_and_the_line_resumes(make_stack):
    # Given a stack with a 4 s model (and a 20 s Timeout for a run: the crash window) and three tasks in line:
    # A, then B and C behind it
    stack = make_stack(model_seconds=MODEL_SECONDS, parameter_overrides={"ProcessorTimeout": PROCESSOR_TIMEOUT})
    timeout, model = processor_timeout(stack), float(MODEL_SECONDS)
    ids = [upload_presigned(stack.api_url, imagefactory.png()) for _ in range(3)]
    first, behind = ids[0], ids[1:]
    timeline = Timeline(stack.api_url, ids, every=0.25, timeout=timeout + 180).start()

    # When A is PROCESSING with some progress, and its worker is killed with SIGKILL
    def running_a() -> bool:
        now = timeline.last().get(first)
        return bool(now) and now["state"] == "PROCESSING" and now["progress"] >= KILL_AT_PROGRESS

    eventually(
        running_a,
        timeout=30,
        every=0.05,
        what=f"task A PROCESSING at {KILL_AT_PROGRESS}%",
    )
    workers = stack.worker_pids("ProcessorFunction")
    assert len(workers) == 1, "reserved concurrency 1: one model worker"
    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    progress_at_kill = timeline.last()[first]["progress"]
    started_before_kill = timeline.last()[first]["started_at"]

    # Then a fresh worker replaces it
    stack.wait_for_worker("ProcessorFunction", exclude=workers, timeout=15)
    eventually(lambda: "Runtime exited with error: signal SIGKILL" in stack.log_text(), timeout=10, what="crash log")

    # And once A's retry is in the model, B and C keep their places and their ETAs count A's restarted run
    # (issue 13: the line summary restarts A's clock, it does not count A twice)
    def retried() -> bool:
        now = status(stack.api_url, first)
        return now["state"] == "PROCESSING" and now["started_at"] != started_before_kill

    eventually(retried, timeout=timeout + 90, every=0.05, what="A's retry in the model")
    a, b, c = (status(stack.api_url, task_id) for task_id in ids)
    assert (a["queue_position"], b["queue_position"], c["queue_position"]) == (0, 1, 2), (a, b, c)
    assert abs(b["eta_seconds"] - a["eta_seconds"] - model) <= 1, (a, b)
    assert abs(c["eta_seconds"] - b["eta_seconds"] - model) <= 1, (b, c)

    # And every task ends SUCCESS, the queued ones within the processor's Timeout + 60 s of the crash
    final = timeline.wait_final(timeout=timeout + 60 + 3 * model + 30)
    assert [final[task_id]["state"] for task_id in ids] == ["SUCCESS"] * 3, final
    resumed = seconds(final[behind[0]]["started_at"], final[first]["finished_at"])
    assert 0 <= resumed < 10, f"B started {resumed:.1f} s after A finished"
    a_done = next(s.at for s in timeline.samples[first] if s.status["state"] == "SUCCESS") - killed
    b_start = next(s.at for s in timeline.samples[behind[0]] if s.status["state"] == "PROCESSING") - killed
    assert b_start < timeout + 60, f"the line resumed {b_start:.0f} s after the crash"

    # And A ran to completion exactly once: one video, one "task finished", three videos in all
    assert sorted(video_keys(stack)) == sorted(f"videos/{task_id}.mp4" for task_id in ids)
    for task_id in ids:
        assert [r["state"] for r in task_log(stack, task_id, FINISHED_LOG)] == ["SUCCESS"]
    # And the runs never overlapped
    runs = sorted((when(final[t]["started_at"]), when(final[t]["finished_at"])) for t in ids)
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs)), runs
    # And progress as polled never went down, and A's stayed at least where it was when the worker died
    for task_id in ids:
        assert non_decreasing(timeline.progress(task_id)), timeline.progress(task_id)
    after_kill = [s.status for s in timeline.samples[first] if s.at > killed]
    assert all(s["progress"] >= progress_at_kill for s in after_kill)
    assert {s["state"] for s in after_kill} <= {"PROCESSING", "SUCCESS"}
    # And nothing is left in the queues
    assert messages_in(stack, "JobsQueue") == 0
    assert messages_in(stack, "SlotsQueue") == 0
    assert messages_in(stack, "JobsDeadLetterQueue") == 0

    print(f"\ncrash: killed at {progress_at_kill}%; A SUCCESS {a_done:.1f} s later; B started {b_start:.1f} s later")
    print(user_view(timeline, {"A": first, "B": behind[0], "C": behind[1]}, killed))


def user_view(timeline: Timeline, names: dict[str, str], origin: float) -> str:
    """What each task's status said over time (only the changes), seconds relative to the crash."""
    lines = []
    for name, task_id in names.items():
        previous = None
        for sample in timeline.samples[task_id]:
            status = sample.status
            shown = (status["state"], status["progress"], status["queue_position"], status["eta_seconds"])
            if shown != previous:
                lines.append(
                    f"  {name} t={sample.at - origin:+7.1f}s state={shown[0]:<10} progress={shown[1]:>3}"
                    f" queue_position={shown[2]} eta_seconds={shown[3]} started_at={status['started_at']}"
                )
                previous = shown
    return "\n".join(lines)
