"""The dispatcher dies (SIGKILL of its worker) while it waits for a model slot: its job on JobsQueue is held by a
lease of LEASE_SECONDS (renewed while it waits), not for the rest of its invocation, so the line moves on within
the lease, and the task it was waiting to start runs once, in line order."""

from __future__ import annotations

import os
import signal
import time

import pytest

from leyline.logic.slots import LEASE_SECONDS
from tests import imagefactory
from tests.reliability.support import (
    FINISHED_LOG,
    Timeline,
    create_ticket,
    eventually,
    messages_in,
    send_file,
    task_log,
    video_keys,
    when,
)

pytestmark = pytest.mark.integration

MODEL_SECONDS = "20"  # the first run outlasts the kill, so the dispatcher is waiting for its slot when it dies
# What the line may take beyond the lease: the first run's end, the poller's receive, a fresh worker's start.
SLACK_SECONDS = 30


def test_a_dispatcher_killed_while_it_waits_gives_the_line_back_within_its_lease(make_stack):
    # Given one slot with a 20 s model, a task in it, and the next task's job with the dispatcher, which waits
    stack = make_stack(model_seconds=MODEL_SECONDS)
    tickets = [create_ticket(stack.api_url) for _ in range(2)]
    for ticket in tickets:
        send_file(ticket, imagefactory.png())
    first, second = (ticket["task_id"] for ticket in tickets)
    timeline = Timeline(stack.api_url, [first, second], every=0.2, timeout=4 * LEASE_SECONDS + 60).start()

    def waiting_behind_a_run() -> bool:
        now = timeline.last()
        if len(now) < 2:
            return False
        return now[first]["state"] == "PROCESSING" and now[first]["progress"] >= 10 and now[second]["state"] == "QUEUED"

    eventually(waiting_behind_a_run, timeout=60, every=0.1, what="the first running, the second waiting")
    (dispatcher,) = stack.worker_pids("DispatchFunction")

    # When the dispatcher's worker is killed with SIGKILL mid-wait
    os.kill(dispatcher, signal.SIGKILL)
    killed = time.time()
    eventually(lambda: "Runtime exited with error: signal SIGKILL" in stack.log_text(), timeout=10, what="crash log")

    # Then both tasks end SUCCESS, the second after the first, once each
    final = timeline.wait_final(timeout=4 * LEASE_SECONDS + 60)
    assert [final[task_id]["state"] for task_id in (first, second)] == ["SUCCESS", "SUCCESS"], final
    assert when(final[second]["started_at"]) >= when(final[first]["finished_at"])
    for task_id in (first, second):
        assert [r["state"] for r in task_log(stack, task_id, FINISHED_LOG)] == ["SUCCESS"], task_id
    assert sorted(video_keys(stack)) == sorted(f"videos/{task_id}.mp4" for task_id in (first, second))
    # And the second started within the lease of the kill (plus the first run's end and a fresh worker's
    # start), not after the dispatcher's whole invocation (its Timeout is 300 s)
    started_after = when(final[second]["started_at"]).timestamp() - killed
    assert started_after < LEASE_SECONDS + SLACK_SECONDS, started_after
    for queue in ("JobsQueue", "SlotsQueue", "JobsDeadLetterQueue"):
        assert messages_in(stack, queue) == 0, queue
    print(f"\ndispatcher crash: the next task started {started_after:.1f} s after the kill (lease {LEASE_SECONDS} s)")
