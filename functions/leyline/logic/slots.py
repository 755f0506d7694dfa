"""Model slots: the line's next task takes the next free one of ModelSlots slots, in line order.

DispatchFunction takes the line's jobs one at a time, in order (JobsQueue.fifo, one message group). For each it
waits until a slot is free, moves the task QUEUED -> PROCESSING in that slot (one transaction with the line
summary, whose `running` is the slots' lease) and hands the job to the slot's own message group on
SlotsQueue.fifo, which ProcessorFunction runs. So tasks start in line order, at most ModelSlots run at once,
and a free slot takes the next task within one poll: 20 ms around the end of a model time, 200 ms for a slot
freed early by a cancel or a bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from leyline.config import Settings
from leyline.logic.ports import Clock, SlotLines, TaskStore
from leyline.models import LineSummary, TaskState, UploadJob

# How often a dispatch waiting for a free slot reads the line summary (one GetItem each): often when a running
# task's model time is about to end, seldom otherwise (a slot freed early, by a cancel or a bad input, is
# then taken within SLOT_IDLE_POLL_SECONDS).
SLOT_POLL_SECONDS = 0.02
SLOT_IDLE_POLL_SECONDS = 0.2
SLOT_SOON_SECONDS = 0.25  # "about to end": from this long before a running task's model time is up
SLOT_LATE_SECONDS = 1.0  # to this long after it


class NoFreeSlot(Exception):
    """No slot freed before the dispatch had to give up (every slot waits on a crashed run's retry): the job
    comes back to the line's head and is dispatched again."""


def dispatch(
    tasks: TaskStore,
    slots: SlotLines,
    settings: Settings,
    job: UploadJob,
    body: str,
    clock: Clock,
    *,
    give_up_at: datetime,
    sleep: Callable[[float], None],
) -> int | None:
    """Starts the job's task in the next free slot and hands its job to that slot: the slot, or None when the
    task no longer waits (cancelled, failed, deleted: it takes no slot). A task already in a slot (a dispatch
    repeated after a crash between the start and the hand-over) is handed to its slot again; the slots' queue
    drops the repeat by task id."""
    assert settings.slots_queue_url is not None
    while True:
        task = tasks.get(job.task_id)
        if task is None or task.state not in (TaskState.QUEUED, TaskState.PROCESSING):
            return None  # ended while in line (only the intake's QUEUED tasks reach the line)
        if task.state is TaskState.PROCESSING:
            slot: int | None = task.slot or 1
        else:
            slot = tasks.take_slot(job.task_id, clock(), slots=settings.model_slots)
        if slot is not None:
            slots.send_to_slot(settings.slots_queue_url, body, job.task_id, slot)
            return slot
        _wait_for_a_free_slot(tasks, settings, job.task_id, clock, give_up_at, sleep)


def _wait_for_a_free_slot(
    tasks: TaskStore,
    settings: Settings,
    task_id: str,
    clock: Clock,
    give_up_at: datetime,
    sleep: Callable[[float], None],
) -> None:
    """Reads one copy of the line summary until a slot is free; raises NoFreeSlot at `give_up_at`."""
    while (summary := tasks.line_summary(task_id)).free_slot(settings.model_slots) is None:
        now = clock()
        if now >= give_up_at:
            raise NoFreeSlot(f"every one of the {settings.model_slots} model slots stayed busy")
        sleep(poll_interval(summary, settings.model_seconds, now))


def poll_interval(summary: LineSummary, model_seconds: float, now: datetime) -> float:
    """Short while a running task's model time is about to end or just ended (its finish is being written),
    long otherwise: before that, and for a run long past its time (crashed, waiting for its retry)."""
    ends = [(started + timedelta(seconds=model_seconds) - now).total_seconds() for started in summary.running.values()]
    about_to_end = any(-SLOT_LATE_SECONDS <= end <= SLOT_SOON_SECONDS for end in ends)
    return SLOT_POLL_SECONDS if about_to_end else SLOT_IDLE_POLL_SECONDS
