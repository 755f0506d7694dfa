"""Model slots: the line's next task takes the next free one of ModelSlots slots, in line order.

DispatchFunction takes the line's jobs one at a time, in order (JobsQueue.fifo, one message group; a batch of up
to one job per slot per invocation, so slots that free together are taken without a receive between). For each it
waits until a slot is free, moves the task QUEUED -> PROCESSING in that slot (one transaction with the line
summary, whose `running` is the slots' lease) and hands the job to the slot's own message group on
SlotsQueue.fifo, which ProcessorFunction runs. So tasks start in line order and at most ModelSlots run at once.

A free slot is taken at once: every move that takes a task out of a slot (the run's SUCCESS or fail-fast
FAILURE, a cancel, the dead-letter FAILURE) sends a wake (`slot_freed`) right after its write, and a waiting
dispatch long-polls those wakes (SlotWakeQueue) and tries the take as soon as one comes, deleting the wakes
only after the start is written and handed over: the hand-over is the ending move's write, its wake, and the
take. Without a wake it reads the summary at least every FALLBACK_SECONDS anyway, for a wake lost to a crash
between a write and its send.

The dispatch holds its batch's messages on JobsQueue by a lease (BatchLease: LEASE_SECONDS of invisibility,
taken before the batch's first take and renewed as its jobs wait; it covers the whole batch, the jobs already
handed over included, since each stays in flight until the invocation returns): a dispatcher that crashes at any
point after its first take gives the line back within the lease, not after JobsQueue's visibility timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from leyline.config import Settings
from leyline.logic.ports import Clock, SlotLines, SlotWakes, TaskStore
from leyline.models import TaskState, UploadJob

# The longest a waiting dispatch goes without reading the line summary: how late a slot whose wake was lost
# (a crash between the write that freed it and the send) is taken. A whole second: SQS long-polls in seconds.
FALLBACK_SECONDS = 2
# How long the dispatch's job stays hidden on JobsQueue without a renewal: how soon the line moves on after a
# dispatcher crash. Renewed once a third of it has passed, so two renewals in a row may fail and it still
# holds (a lapsed lease lets the job be received again, and three receives dead-letter it).
LEASE_SECONDS = 30
LEASE_RENEWAL_SECONDS = LEASE_SECONDS / 3

logger = Logger()


class BatchLease:
    """An invocation's hold on its batch of jobs on JobsQueue, taken before the batch's first take: a job whose
    slot is free at once is in flight too, and so is every job handed over until the invocation returns, so a
    crash between two jobs of a batch would otherwise hold up the line for JobsQueue's visibility timeout (six
    times the dispatcher's Timeout). One lease for the whole batch, renewed only when a third of it has passed:
    a batch whose slots are free costs one call."""

    def __init__(self, hide: Callable[[int], None], clock: Clock) -> None:
        self._hide = hide  # hides every job of the batch for that many seconds from now (best effort)
        self._clock = clock
        self._taken_at: datetime | None = None

    def hold(self) -> None:
        """Takes the lease, or renews it if a third of it has passed since."""
        now = self._clock()
        if self._taken_at is None or now - self._taken_at >= timedelta(seconds=LEASE_RENEWAL_SECONDS):
            self._hide(LEASE_SECONDS)
            self._taken_at = now


class NoFreeSlot(Exception):
    """No slot freed before the dispatch had to give up (every slot waits on a crashed run's retry): the job
    comes back to the line's head and is dispatched again."""


def dispatch(
    tasks: TaskStore,
    queues: SlotLines,
    wakes: SlotWakes,
    settings: Settings,
    job: UploadJob,
    body: str,
    clock: Clock,
    *,
    lease: BatchLease,
    give_up_at: datetime,
    sleep: Callable[[float], None],
) -> int | None:
    """Starts the job's task in the next free slot and hands its job to that slot: the slot, or None when the
    task no longer waits (cancelled, failed, deleted: it takes no slot). A task already in a slot (a dispatch
    repeated after a crash between the start and the hand-over) is handed to its slot again; the slots' queue
    drops the repeat by task id. `sleep` stands in for a wait on the wakes when SQS refuses it."""
    assert settings.slots_queue_url is not None
    assert settings.slot_wake_queue_url is not None
    lease.hold()
    wakes_received: list[str] = []
    while True:
        slot, waiting = _start(tasks, settings, job.task_id, clock)
        if slot is not None:
            queues.send_to_slot(settings.slots_queue_url, body, job.task_id, slot)
        # Only now, off the hand-over's path (a wake left behind by a crash comes back as one stale try).
        _delete_wakes(wakes, settings.slot_wake_queue_url, wakes_received)
        if not waiting:
            return slot
        wakes_received = []
        while not wakes_received and tasks.line_summary(job.task_id).free_slot(settings.model_slots) is None:
            now = clock()
            if now >= give_up_at:
                raise NoFreeSlot(f"every one of the {settings.model_slots} model slots stayed busy")
            lease.hold()
            seconds = min(FALLBACK_SECONDS, (give_up_at - now).total_seconds())
            wakes_received = _wait_for_a_wake(wakes, settings.slot_wake_queue_url, seconds, sleep)


def _start(tasks: TaskStore, settings: Settings, task_id: str, clock: Clock) -> tuple[int | None, bool]:
    """Tries to start the task in a free slot: (its slot, False) when it is in one now, (None, False) when it
    no longer waits, (None, True) when it waits for a slot. The take comes first (it reads the task and the
    summary itself), so a start after a wake costs one read and one write."""
    slot = tasks.take_slot(task_id, clock(), slots=settings.model_slots)
    if slot is not None:
        return slot, False
    task = tasks.get(task_id)
    if task is None or task.state not in (TaskState.QUEUED, TaskState.PROCESSING):
        return None, False  # ended while in line (only the intake's QUEUED tasks reach the line)
    if task.state is TaskState.PROCESSING:  # started by a dispatch that crashed before its hand-over
        return task.slot or 1, False
    return None, True


def _wait_for_a_wake(wakes: SlotWakes, queue_url: str, seconds: float, sleep: Callable[[float], None]) -> list[str]:
    """Until a slot-freeing move's wake comes, or `seconds` pass: the wakes received. If SQS refuses the wait,
    the dispatch sleeps instead and reads the summary as often as the fallback: a wake queue down slows the
    line, never stops it."""
    try:
        return wakes.wait_for_wake(queue_url, seconds)
    except Exception:
        logger.warning("could not wait for a slot's wake; reading the line again after a pause", exc_info=True)
        sleep(seconds)
        return []


def _delete_wakes(wakes: SlotWakes, queue_url: str, received: list[str]) -> None:
    """Best effort: a wake left on the queue comes back after its visibility timeout as one more harmless try."""
    if not received:
        return
    try:
        wakes.delete_wakes(queue_url, received)
    except Exception:
        logger.warning("could not delete the wakes received; they come back as stale ones", exc_info=True)


def slot_freed(wakes: SlotWakes, settings: Settings) -> None:
    """Wakes a dispatch that may be waiting for a slot: called right after a write that took a task out of a
    model slot (or may have). Best effort: the write stands whatever SQS says, and a wake that is lost only
    makes the next task wait for the dispatch's fallback read (FALLBACK_SECONDS)."""
    if settings.slot_wake_queue_url is None:
        return
    try:
        wakes.wake(settings.slot_wake_queue_url)
    except Exception:
        logger.warning("could not wake the dispatcher; it finds the free slot at its next read", exc_info=True)
