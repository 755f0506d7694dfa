"""Issue 15: with ModelSlots=3, one slot's run dies (SIGKILL of its worker) while the other slots work. Only that
task is retried, in its own slot, after the processor's crash window; the other slots keep taking the line in
order meanwhile; nothing is lost and nothing runs twice."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests import imagefactory
from tests.integration.polling import status
from tests.reliability.support import (
    FINISHED_LOG,
    Timeline,
    create_ticket,
    eventually,
    messages_in,
    non_decreasing,
    processor_timeout,
    quiet_rounds,
    send_file,
    task_log,
    video_keys,
    when,
)

pytestmark = pytest.mark.integration

SLOTS = 3
TASKS = 7  # 3 running, 4 waiting: the two other slots start all 4 (two rounds) before the crashed run is back
MODEL_SECONDS = "16"  # long enough that the three first runs overlap, however slowly the uploads arrive
PROCESSOR_TIMEOUT = "40"  # the template's 90 s, shortened: a crashed run comes back after it + 10 s
KILL_AT_PROGRESS = 5  # each run under way in its worker (the start is written before the hand-over)


def test_a_killed_slot_retries_only_its_task_while_the_other_slots_keep_working(make_stack):
    # Given 3 slots with a 16 s model and 7 tasks in line, three running and some waiting
    stack = make_stack(
        model_seconds=MODEL_SECONDS,
        parameter_overrides={"ModelSlots": str(SLOTS), "ProcessorTimeout": PROCESSOR_TIMEOUT},
    )
    timeout, model = processor_timeout(stack), float(MODEL_SECONDS)
    # (the tickets first, then the files back to back: the burst lands within the first run's model time)
    tickets = [create_ticket(stack.api_url) for _ in range(TASKS)]
    for ticket in tickets:
        send_file(ticket, imagefactory.png())
    ids = [ticket["task_id"] for ticket in tickets]
    clock_offset = time.time() - time.monotonic()
    timeline = Timeline(stack.api_url, ids, every=0.2, timeout=timeout + 180).start()

    def three_at_work() -> bool:
        """Three runs under way (so all three workers are busy), none about to finish, and tasks still waiting."""
        now = timeline.last().values()
        busy = sum(1 for s in now if s["state"] == "PROCESSING" and KILL_AT_PROGRESS <= s["progress"] <= 60)
        return busy == SLOTS and any(s["state"] == "QUEUED" for s in now)

    eventually(three_at_work, timeout=30, every=0.05, what="three tasks in the model")
    before = {task_id: status(stack.api_url, task_id) for task_id in ids}
    workers = stack.worker_pids("ProcessorFunction")
    assert len(workers) == SLOTS, "reserved concurrency ModelSlots: one worker per slot"

    # When one of the three busy workers is killed with SIGKILL
    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    # (the pool starts a fresh worker when an invocation next needs one, as Lambda a new environment)
    eventually(lambda: "Runtime exited with error: signal SIGKILL" in stack.log_text(), timeout=10, what="crash log")

    # Then every task ends SUCCESS
    final = timeline.wait_final(timeout=timeout + 60 + TASKS * model + 30)
    assert [final[task_id]["state"] for task_id in ids] == ["SUCCESS"] * TASKS, final

    # And exactly one of the three running was run again (its clock restarted), in the slot it held
    running = [t for t in ids if before[t]["state"] == "PROCESSING"]
    restarted = [t for t in running if final[t]["started_at"] != before[t]["started_at"]]
    assert len(restarted) == 1, (before, final)
    victim = restarted[0]
    victim_slots = {s.status["slot"] for s in timeline.samples[victim] if s.status["state"] == "PROCESSING"}
    assert victim_slots == {before[victim]["slot"]}

    # And meanwhile the other two slots took the rest of the line, in order, long before the victim's retry
    waiting = [t for t in ids if before[t]["state"] == "QUEUED"]
    assert waiting, before
    starts = [when(final[t]["started_at"]) for t in waiting]
    assert starts == sorted(starts)
    assert all(start < when(final[victim]["started_at"]) for start in starts), (starts, final[victim])
    retried = final[victim]["started_at"]
    retry_after = next(s.at for s in timeline.samples[victim] if s.at > killed and s.status["started_at"] == retried)
    assert retry_after - killed < timeout + 30, "the retry came back within the processor's crash window"
    others = [t for t in ids if t != victim]

    # And never more than 3 were in the model (by the recorded runs, and in every round of reads that was a
    # snapshot: no task started or finished while it was read), and no slot ran two at once
    runs = sorted((when(final[t]["started_at"]), when(final[t]["finished_at"])) for t in ids)
    assert max(sum(1 for s, f in runs if s <= moment < f) for moment, _ in runs) <= SLOTS
    moments = [moment for run in runs for moment in run] + [when(before[victim]["started_at"])]
    rounds = quiet_rounds(timeline, moments, clock_offset)
    assert len(rounds) > 20
    for states in rounds:
        assert [status["state"] for status in states].count("PROCESSING") <= SLOTS

    # And nothing was lost or run twice: one video and one finished run each, the queues empty
    assert sorted(video_keys(stack)) == sorted(f"videos/{task_id}.mp4" for task_id in ids)
    for task_id in ids:
        assert [r["state"] for r in task_log(stack, task_id, FINISHED_LOG)] == ["SUCCESS"], task_id
        assert non_decreasing(timeline.progress(task_id)), timeline.progress(task_id)
    for queue in ("JobsQueue", "SlotsQueue", "JobsDeadLetterQueue"):
        assert messages_in(stack, queue) == 0, queue
    print(f"\nslot crash: victim slot {before[victim]['slot']}, retried {retry_after - killed:.1f} s after the kill;")
    print(f"others finished by {max(when(final[t]['finished_at']) for t in others)}")
