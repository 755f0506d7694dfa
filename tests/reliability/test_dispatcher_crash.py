"""The dispatcher dies (SIGKILL of its worker) while it waits for a model slot, holding a batch of the line's jobs
of which it has already handed one to its slot: every job of the batch is held by a lease of LEASE_SECONDS
(renewed while it waits), not for the rest of its invocation nor for JobsQueue's visibility timeout, so the line
moves on within the lease, the job already handed over is not run again, and every task runs once, in line
order."""

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
    log_records,
    messages_in,
    send_file,
    task_log,
    video_keys,
    when,
)

pytestmark = pytest.mark.integration

SLOTS = "2"  # so the line's batches hold two jobs (BatchSize min(ModelSlots, 10))
MODEL_SECONDS = "15"  # the runs outlast the set-up and the kill, so the dispatcher is waiting when it dies
# What the line may take beyond the lease: the poller's receive, a fresh worker's start, the take.
SLACK_SECONDS = 30
DISPATCH_LOGS = ("task in a model slot", "task no longer waits; no slot taken")


def test_a_dispatcher_killed_while_it_waits_gives_its_whole_batch_back_within_its_lease(make_stack):
    # Given 2 slots with a 15 s model, two tasks in them, and the third's job with the dispatcher, which waits
    stack = make_stack(model_seconds=MODEL_SECONDS, parameter_overrides={"ModelSlots": SLOTS})
    tickets = [create_ticket(stack.api_url) for _ in range(5)]
    ids = [ticket["task_id"] for ticket in tickets]
    for ticket in tickets[:3]:
        send_file(ticket, imagefactory.png())
    timeline = Timeline(stack.api_url, ids, every=0.2, timeout=4 * LEASE_SECONDS + 90).start()

    def states(*positions: int) -> list[str]:
        now = timeline.last()
        return [now[ids[n]]["state"] if ids[n] in now else "" for n in positions]

    eventually(lambda: states(0, 1, 2) == ["PROCESSING", "PROCESSING", "QUEUED"], timeout=60, what="two running")
    # And the fourth and fifth tasks put in line meanwhile: the next receive takes their jobs as one batch
    for ticket in tickets[3:]:
        send_file(ticket, imagefactory.png())
    eventually(lambda: states(2, 3, 4) == ["QUEUED"] * 3, timeout=10, what="three in line behind two runs")
    # And that batch taken: the fourth started in the slot the first freed, the fifth waits for the next
    eventually(lambda: states(3, 4) == ["PROCESSING", "QUEUED"], timeout=60, every=0.1, what="the batch half done")
    (dispatcher,) = stack.worker_pids("DispatchFunction")

    # When the dispatcher's worker is killed with SIGKILL mid-wait
    os.kill(dispatcher, signal.SIGKILL)
    killed = time.time()
    eventually(lambda: "Runtime exited with error: signal SIGKILL" in stack.log_text(), timeout=10, what="crash log")

    # Then every task ends SUCCESS, once, having started in line order
    final = timeline.wait_final(timeout=4 * LEASE_SECONDS + 90)
    assert [final[task_id]["state"] for task_id in ids] == ["SUCCESS"] * 5, final
    starts = [when(final[task_id]["started_at"]) for task_id in ids]
    assert starts == sorted(starts)
    for task_id in ids:
        assert [r["state"] for r in task_log(stack, task_id, FINISHED_LOG)] == ["SUCCESS"], task_id
    assert sorted(video_keys(stack)) == sorted(f"videos/{task_id}.mp4" for task_id in ids)
    # And the killed batch held the fourth task's job, already handed over: it came back with the fifth's and was
    # dispatched again, harmlessly (its start stands; the slots' queue drops the repeat)
    fourth = [r for r in log_records(stack) if r.get("task_id") == ids[3] and r.get("message") in DISPATCH_LOGS]
    assert len(fourth) == 2, fourth
    # And the fifth started within the lease of the kill (plus a fresh worker's start), not after the
    # dispatcher's whole invocation (its Timeout is 300 s) nor the fourth job's visibility timeout (1800 s)
    started_after = starts[4].timestamp() - killed
    assert started_after < LEASE_SECONDS + SLACK_SECONDS, started_after
    for queue in ("JobsQueue", "SlotsQueue", "JobsDeadLetterQueue"):
        assert messages_in(stack, queue) == 0, queue
    print(f"\ndispatcher crash: the next task started {started_after:.1f} s after the kill (lease {LEASE_SECONDS} s)")
