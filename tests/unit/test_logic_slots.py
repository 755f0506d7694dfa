"""Model slots (issue 15) on the in-memory fakes: the dispatch (leyline.logic.slots) starts tasks in line order
in at most N slots, a free slot takes the next task as soon as the move that freed it wakes the dispatch, and
every waiting task's position and ETA are what walking the whole line with N slots gives. The clock is a
FakeClock that the dispatch's own waits move forward, finishing the runs that are due (each end wakes it)."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from leyline.logic.processing import run_model
from leyline.logic.slots import (
    FALLBACK_SECONDS,
    LEASE_RENEWAL_SECONDS,
    LEASE_SECONDS,
    BatchLease,
    NoFreeSlot,
    dispatch,
    slot_freed,
)
from leyline.logic.tasks import get_status
from leyline.models import LineSummary, TaskState, UploadJob, upload_key
from tests import imagefactory
from tests.fakes import (
    SETTINGS,
    FakeClock,
    FakeMediaStorage,
    FakeQueues,
    FakeSlotWakes,
    FakeTaskStore,
    seed_task,
)

MODEL = float(SETTINGS.model_seconds)
FAR = timedelta(days=1)


class CountingTaskStore(FakeTaskStore):
    """Counts the reads of the line summary: what the dispatch's waiting costs."""

    def __init__(self) -> None:
        super().__init__()
        self.summary_reads = 0

    def line_summary(self, task_id: str) -> LineSummary:
        self.summary_reads += 1
        return super().line_summary(task_id)


class Slots:
    """A line, N slots and a dispatcher; each started run ends after its planned time (MODEL unless planned),
    and its end wakes the dispatcher (unless `wake_on_end` is off: a crash between the write and the send)."""

    def __init__(self, slots: int) -> None:
        self.clock, self.tasks, self.media, self.queues = (
            FakeClock(),
            CountingTaskStore(),
            FakeMediaStorage(),
            FakeQueues(),
        )
        self.wakes = FakeSlotWakes(while_waiting=self.pass_time)
        self.settings = replace(
            SETTINGS,
            model_slots=slots,
            slots_queue_url="slots",
            slot_wake_queue_url="wakes",
            max_waiting_tasks_per_client=999,
        )
        self.order: list[str] = []
        self.runs: dict[str, tuple[float, TaskState]] = {}  # planned: task -> (seconds in the model, how it ends)
        self.ends: dict[str, tuple[datetime, TaskState]] = {}  # running: task -> (when its run ends, how)
        self.started: list[str] = []
        self.started_at: dict[str, datetime] = {}
        self.finished_at: dict[str, datetime] = {}
        self.leases: list[tuple[datetime, int]] = []  # (when, for how long) the dispatch hid its batch
        self.states_at_lease: list[TaskState] = []  # the dispatched task's state at each of those
        self.dispatching = ""
        self.wake_on_end = True
        self.checks = 0
        self.waits = 0

    def queue(self, count: int) -> list[str]:
        new = []
        for _ in range(count):
            task_id = seed_task(self.tasks, TaskState.PENDING, self.clock())
            assert self.tasks.mark_queued(task_id, self.clock(), opened_since=self.clock() - timedelta(hours=1))
            new.append(task_id)
        self.order += new
        return new

    def batch_lease(self) -> BatchLease:
        return BatchLease(self.hide, self.clock)

    def dispatch(
        self, task_id: str, *, give_up_at: datetime | None = None, lease: BatchLease | None = None
    ) -> int | None:
        """Dispatches the task's job: alone in its batch unless the batch's `lease` is given."""
        job = UploadJob(task_id=task_id, bucket="media", key=upload_key(task_id), size=1)
        until = give_up_at or self.clock() + FAR
        self.dispatching = task_id
        slot = dispatch(
            self.tasks,
            self.queues,
            self.wakes,
            self.settings,
            job,
            "{}",
            self.clock,
            lease=lease or self.batch_lease(),
            give_up_at=until,
            sleep=self.sleep,
        )
        if slot is not None and task_id not in self.ends:
            seconds, outcome = self.runs.get(task_id, (MODEL, TaskState.SUCCESS))
            self.ends[task_id] = (self.clock() + timedelta(seconds=seconds), outcome)
            self.started.append(task_id)
            self.started_at[task_id] = self.clock()
        return slot

    def dispatch_all(self) -> None:
        for task_id in self.order:
            self.dispatch(task_id)
        while self.ends:  # the last runs end, nobody waiting on their wakes
            self.wakes.waiting = 0
            self.pass_time(FALLBACK_SECONDS)

    def hide(self, seconds: int) -> None:
        self.leases.append((self.clock(), seconds))
        task = self.tasks.get(self.dispatching)
        assert task is not None
        self.states_at_lease.append(task.state)

    def pass_time(self, seconds: float) -> None:
        """A wait for a wake: time passes, the runs due end (each end written, then a wake sent), until a wake
        is there or `seconds` have passed. The line is checked against brute force after every change, and
        every 20th wait."""
        until = self.clock() + timedelta(seconds=seconds)
        self.waits += 1
        if self.waits % 20 == 0:
            self.check()
        while not self.wakes.waiting and self.clock() < until:
            due = [at for at, _ in self.ends.values() if at <= until]
            self.clock.now = min(due) if due else until
            self.end_due_runs()

    def end_due_runs(self) -> None:
        for task_id, (at, outcome) in sorted(self.ends.items(), key=lambda item: item[1][0]):
            if at <= self.clock():
                del self.ends[task_id]
                if outcome is TaskState.SUCCESS:
                    assert self.tasks.mark_succeeded(task_id, self.clock())
                else:
                    assert self.tasks.mark_failed(task_id, "UNSUPPORTED_FORMAT", "Not an image.", self.clock())
                if self.wake_on_end:
                    slot_freed(self.wakes, self.settings)
                self.finished_at[task_id] = self.clock()
                self.check()

    def sleep(self, seconds: float) -> None:
        """The dispatch's pause when the wake queue refuses a wait: all of `seconds` pass, whatever ends."""
        until = self.clock() + timedelta(seconds=seconds)
        while self.clock() < until:
            self.pass_time((until - self.clock()).total_seconds())

    def check(self) -> None:
        reads = self.tasks.summary_reads  # the check's own reads are not the dispatch's
        self._check()
        self.tasks.summary_reads = reads

    def _check(self) -> None:
        tasks = [self.tasks.get(task_id) for task_id in self.order]
        running = [t for t in tasks if t is not None and t.state is TaskState.PROCESSING]
        # At most N in the model, each in a slot of its own
        assert len(running) <= self.settings.model_slots
        slots = [t.slot or 0 for t in running]
        assert len(slots) == len(set(slots))
        assert all(1 <= slot <= self.settings.model_slots for slot in slots)
        waiting = [t.task_id for t in tasks if t is not None and t.state is TaskState.QUEUED]
        for task_id in waiting[:: max(1, len(waiting) // 8)]:
            self.checks += 1
            status = get_status(self.tasks, self.media, self.settings, task_id, self.clock())
            position, eta = self.expected(task_id)
            assert status.queue_position == position, task_id
            assert status.eta_seconds is not None
            assert eta - 1e-6 <= status.eta_seconds < eta + 1, (task_id, status.eta_seconds, eta)

    def expected(self, task_id: str) -> tuple[int, float]:
        """By brute force: the unfinished tasks before it, and a greedy schedule of the line on N slots, each
        freeing when its running task's model time is up (now if idle) and taking the next waiting task."""
        ahead = [self.tasks.get(other) for other in self.order[: self.order.index(task_id)]]
        unfinished = [t for t in ahead if t is not None and t.state in (TaskState.QUEUED, TaskState.PROCESSING)]
        running = [t for t in unfinished if t.state is TaskState.PROCESSING]
        free = [max(0.0, MODEL - (self.clock() - t.started_at).total_seconds()) for t in running if t.started_at]
        free += [0.0] * (self.settings.model_slots - len(free))
        heapq.heapify(free)
        for _ in range(len(unfinished) - len(running)):
            heapq.heappush(free, heapq.heappop(free) + MODEL)
        return len(unfinished), heapq.heappop(free) + MODEL


def test_with_three_slots_twelve_tasks_start_in_line_order_three_at_a_time_and_finish_in_four_model_times():
    # Given 3 slots and 12 tasks in line, and the ETA each shows when it joins
    line = Slots(3)
    line.queue(12)
    etas = {t: get_status(line.tasks, line.media, line.settings, t, line.clock()).eta_seconds for t in line.order}
    began = line.clock()
    # When the dispatcher works through the line (runs of exactly one model time)
    line.dispatch_all()
    # Then they started in line order, in slots 1, 2, 3, 1, 2, 3...
    assert line.started == line.order
    assert [slot for _, _, slot in line.queues.slotted] == [1, 2, 3] * 4
    # And all were done after exactly 4 model times (each start at the wake of its slot's end)
    done = max(line.finished_at.values())
    assert (done - began).total_seconds() == pytest.approx(4 * MODEL)
    # And each ETA read when it joined was its real finish
    for task_id, eta in etas.items():
        real = (line.finished_at[task_id] - began).total_seconds()
        assert eta is not None
        assert abs(eta - real) <= 1, (eta, real)
    assert line.checks > 0


def test_positions_and_etas_stay_exact_with_slots_freed_early_by_failures_and_cancels():
    # Given 4 slots and 60 tasks, some failing fast in the model, some cancelled while they wait
    line = Slots(4)
    line.queue(60)
    for n, task_id in enumerate(line.order):
        if n % 7 == 3:
            line.runs[task_id] = (1.5, TaskState.FAILURE)  # bad input: fails fast, frees its slot
        if n % 11 == 5:
            assert line.tasks.mark_cancelled(task_id, line.clock())
    # When the dispatcher works through the line (each wait checks every position and ETA by brute force)
    line.dispatch_all()
    # Then the cancelled ones never took a slot, and the others started in line order
    cancelled = {t for n, t in enumerate(line.order) if n % 11 == 5}
    assert line.started == [t for t in line.order if t not in cancelled]
    assert line.checks > 100


def test_a_free_slot_takes_the_next_task_at_once_when_a_run_is_cancelled():
    # Given 2 slots both running, and a third task the dispatcher waits to start
    line = Slots(2)
    first, second, third = line.queue(3)
    assert (line.dispatch(first), line.dispatch(second)) == (1, 2)
    line.clock.advance(5)
    # When the second is cancelled (its slot frees in the same write)
    assert line.tasks.mark_cancelled(second, line.clock())
    # Then the third takes slot 2 without waiting a single poll
    at = line.clock()
    assert line.dispatch(third) == 2
    assert line.clock() == at
    status = get_status(line.tasks, line.media, line.settings, third, line.clock())
    assert (status.state, status.slot, status.queue_position) == (TaskState.PROCESSING, 2, 0)


def test_a_bad_input_frees_its_slot_for_the_next_task_at_its_wake():
    # Given 2 slots running, the first with an image the model refuses, and a third task waiting
    line = Slots(2)
    bad, good, third = line.queue(3)
    line.runs[bad] = (0.4, TaskState.FAILURE)  # fails fast: the decode refuses it within moments
    assert (line.dispatch(bad), line.dispatch(good)) == (1, 2)
    # When the dispatcher waits for a slot for the third
    at = line.clock()
    assert line.dispatch(third) == 1
    # Then it took the bad one's slot the moment the failure woke it, long before the other run ends
    assert line.tasks.get(bad).state is TaskState.FAILURE
    assert (line.clock() - at).total_seconds() == pytest.approx(0.4)
    assert line.tasks.get(good).state is TaskState.PROCESSING


def test_a_task_cancelled_in_line_takes_no_slot_and_a_started_one_is_handed_to_its_slot_again():
    # Given 2 slots, a task cancelled while it waited, and one already started in slot 1 (a dispatch retried
    # after a crash between the start and the hand-over)
    line = Slots(2)
    gone, started = line.queue(2)
    assert line.tasks.mark_cancelled(gone, line.clock())
    assert line.tasks.take_slot(started, line.clock(), slots=2) == 1
    # When the dispatcher reaches them
    # Then the cancelled one is skipped, and the started one goes to its own slot, not a second one
    assert line.dispatch(gone) is None
    assert line.dispatch(started) == 1
    assert line.queues.slotted == [("slots", started, 1)]
    assert line.tasks.line_summary(started).slots == {2: 1}


def test_a_dispatch_that_finds_no_free_slot_in_time_gives_the_job_back():
    # Given 1 slot held by a run that crashed (it stays PROCESSING until its retry)
    line = Slots(1)
    crashed, waiting = line.queue(2)
    line.runs[crashed] = (10 * MODEL, TaskState.SUCCESS)
    assert line.dispatch(crashed) == 1
    # When the next dispatch may wait 2 s only
    # Then it raises NoFreeSlot (the job comes back to the line's head), the task still QUEUED
    with pytest.raises(NoFreeSlot):
        line.dispatch(waiting, give_up_at=line.clock() + timedelta(seconds=2))
    assert line.tasks.get(waiting).state is TaskState.QUEUED


def test_the_status_shows_the_slot_only_while_processing():
    # Given 3 slots, a task in the model and one waiting
    line = Slots(3)
    running, waiting = line.queue(2)
    assert line.dispatch(running) == 1
    # Then the running one shows its slot, the waiting one none; and none once it is done
    assert get_status(line.tasks, line.media, line.settings, running, line.clock()).to_json()["slot"] == 1
    assert get_status(line.tasks, line.media, line.settings, waiting, line.clock()).to_json()["slot"] is None
    assert line.tasks.mark_succeeded(running, line.clock())
    assert get_status(line.tasks, line.media, line.settings, running, line.clock()).to_json()["slot"] is None


def test_a_retry_after_a_crash_keeps_its_slot_and_a_finish_frees_it():
    # Given a summary with tasks at places 4 and 5 in slots 2 and 1, of 3 slots
    now = datetime(2026, 5, 1, 12, 0)
    summary = LineSummary(cursor=5, running={4: now, 5: now}, slots={4: 2, 5: 1})
    assert summary.free_slot(3) == 3
    # When place 4 re-enters the model (a retry) and place 5 finishes
    retried = summary.after_move(TaskState.PROCESSING, TaskState.PROCESSING, 4, now)
    assert retried is not None
    assert retried.slots == {4: 2, 5: 1}
    done = retried.after_move(TaskState.PROCESSING, TaskState.SUCCESS, 5, now)
    # Then slot 1 is free again, the lowest one the next start takes
    assert done is not None
    assert (done.slots, done.free_slot(3)) == ({4: 2}, 1)
    assert LineSummary(running={1: now, 2: now, 3: now}, slots={1: 1, 2: 2, 3: 3}).free_slot(3) is None


def test_a_waiting_dispatch_reads_the_line_again_only_when_woken_or_after_the_fallback():
    # Given 1 slot whose run ends 29.3 s from now (between two fallback reads), and a task waiting for it
    line = Slots(1)
    running, waiting = line.queue(2)
    line.runs[running] = (29.3, TaskState.SUCCESS)
    assert line.dispatch(running) == 1
    reads_before = line.tasks.summary_reads
    # When the dispatcher waits to start the next one
    assert line.dispatch(waiting) == 1
    # Then it waited on the wakes, never longer than the fallback, and read the line summary once before its
    # first wait and once after each fallback; the run's end woke it into the take with no read between
    assert line.wakes.waits
    assert max(line.wakes.waits) <= FALLBACK_SECONDS
    assert line.tasks.summary_reads - reads_before == len(line.wakes.waits)
    # And it took the slot the moment the end woke it, not at the next fallback read (30 s)
    assert line.started_at[waiting] == line.finished_at[running]
    assert (line.started_at[waiting] - line.started_at[running]).total_seconds() == pytest.approx(29.3)
    # And the wake it received was deleted, after the start
    assert (line.wakes.waiting, line.wakes.received, line.wakes.deleted) == (0, 1, 1)


def test_a_lost_wake_delays_the_next_start_by_at_most_the_fallback():
    # Given 1 slot whose run ends 29.3 s from now without a wake (a crash between its write and the send)
    line = Slots(1)
    running, waiting = line.queue(2)
    line.runs[running] = (29.3, TaskState.SUCCESS)
    line.wake_on_end = False
    assert line.dispatch(running) == 1
    # When the dispatcher waits to start the next one
    assert line.dispatch(waiting) == 1
    # Then it took the slot at its next fallback read of the summary: at most FALLBACK_SECONDS after the end
    late = (line.started_at[waiting] - line.finished_at[running]).total_seconds()
    assert 0 < late <= FALLBACK_SECONDS


def test_a_wake_queue_that_refuses_slows_the_line_but_never_stops_it():
    # Given 1 slot whose run ends 29.3 s from now, and a wake queue that refuses every send and every wait
    line = Slots(1)
    running, waiting = line.queue(2)
    line.runs[running] = (29.3, TaskState.SUCCESS)
    line.wakes.refuse = True
    assert line.dispatch(running) == 1
    # When the run ends (its wake refused) and the dispatcher waits for its slot
    assert line.dispatch(waiting) == 1
    # Then the end stands, and the next task took the slot at the dispatch's next read, within the fallback
    assert line.tasks.get(running).state is TaskState.SUCCESS
    late = (line.started_at[waiting] - line.finished_at[running]).total_seconds()
    assert 0 < late <= FALLBACK_SECONDS
    assert line.wakes.sent == []


def test_a_waiting_dispatch_keeps_renewing_its_lease_and_gives_up_at_give_up_at():
    # Given 1 slot held by a run that crashed (it stays PROCESSING until its retry), and a task behind it
    line = Slots(1)
    crashed, waiting = line.queue(2)
    line.runs[crashed] = (10 * MODEL, TaskState.SUCCESS)
    assert line.dispatch(crashed) == 1
    line.leases.clear()
    began = line.clock()
    give_up_at = began + timedelta(seconds=95)
    # When the next dispatch waits for a slot until give_up_at
    with pytest.raises(NoFreeSlot):
        line.dispatch(waiting, give_up_at=give_up_at)
    # Then it took its batch's lease before anything else and renewed it while it waited, each renewal before the
    # last lease ran out, so a dispatcher alive never lets its job be received again, and one that crashed would
    # within a lease
    assert line.leases[0] == (began, LEASE_SECONDS)
    assert {seconds for _, seconds in line.leases} == {LEASE_SECONDS}
    times = [at for at, _ in line.leases] + [give_up_at]
    assert len(times) > 3
    assert all((later - earlier).total_seconds() < LEASE_SECONDS for earlier, later in itertools.pairwise(times))
    # And it gave up exactly at give_up_at, its task still QUEUED
    assert line.clock() == give_up_at
    assert line.tasks.get(waiting).state is TaskState.QUEUED


def test_a_batch_is_leased_before_its_first_take_once_and_again_only_when_a_third_of_the_lease_has_passed():
    # Given 2 free slots and a batch of three jobs: two whose slots are free, then one that waits for a slot
    line = Slots(2)
    first, second, third = line.queue(3)
    lease = line.batch_lease()
    leased_at = line.clock()
    # When its first two jobs are dispatched, the second just under a third of a lease after the first
    assert line.dispatch(first, lease=lease) == 1
    line.clock.advance(LEASE_RENEWAL_SECONDS - 1)
    assert line.dispatch(second, lease=lease) == 2
    # Then the batch was leased once, before its first take: a dispatcher that dies after handing the first job
    # over (in flight until the invocation returns, like the rest of the batch) gives the line back within the
    # lease, not after JobsQueue's visibility timeout
    assert line.leases == [(leased_at, LEASE_SECONDS)]
    assert line.states_at_lease == [TaskState.QUEUED]
    # And when the third is tried a third of a lease after the lease was taken, the lease is renewed first
    renewed_at = line.clock.advance(1)
    assert line.dispatch(third, lease=lease) == 1
    assert line.leases[1] == (renewed_at, LEASE_SECONDS)
    assert line.states_at_lease[1] is TaskState.QUEUED


def test_a_slot_freeing_move_wakes_the_dispatcher_and_a_refused_wake_leaves_the_move_standing():
    # Given a task in the model whose upload is gone (its run fails fast: FAILURE UPLOAD_MISSING, no decode)
    line = Slots(2)
    first, second = line.queue(2)
    for task_id in (first, second):
        assert line.dispatch(task_id) is not None
    # When its slot runs it
    outcome = run_model(line.tasks, line.media, line.settings, _job(first), line.clock, wakes=line.wakes)
    # Then the fail-fast FAILURE woke the dispatcher, once, on the wake queue
    assert (outcome.state, outcome.error_code) == ("FAILURE", "UPLOAD_MISSING")
    assert line.wakes.sent == ["wakes"]
    # And when the wake queue refuses, the same move still ends the task and the run does not raise
    line.wakes.refuse = True
    outcome = run_model(line.tasks, line.media, line.settings, _job(second), line.clock, wakes=line.wakes)
    assert (outcome.state, line.tasks.get(second).state) == ("FAILURE", TaskState.FAILURE)
    assert line.tasks.line_summary(second).free_slot(2) == 1


@pytest.mark.integration  # the model decodes the upload in a forked child
def test_a_run_counts_its_model_time_from_when_its_task_took_the_slot_and_a_retry_restarts_it():
    # Given a 1 s model, and a task the dispatcher started in slot 1 half a second ago (the hand-over to its slot)
    line = Slots(2)
    line.settings = replace(line.settings, model_seconds=1)
    first, second = line.queue(2)
    for task_id in (first, second):
        line.media.put(upload_key(task_id), imagefactory.png(), "image/png")
    clock = RealClock()
    assert line.tasks.take_slot(first, clock() - timedelta(seconds=0.5), slots=2) == 1
    started_at = line.tasks.get(first).started_at
    # When its slot runs it
    outcome = run_model(line.tasks, line.media, line.settings, _job(first), clock, wakes=line.wakes)
    # Then it keeps the start it took the slot at: what its ETA counted from
    task = line.tasks.get(first)
    assert (outcome.state, task.started_at) == ("SUCCESS", started_at)
    # And a retry after a crash starts the clock again
    assert line.tasks.take_slot(second, clock() - timedelta(seconds=0.5), slots=2) == 1
    retry_began = clock()
    retried = run_model(line.tasks, line.media, line.settings, _job(second), clock, wakes=line.wakes, retry=True)
    assert retried.state == "SUCCESS"
    restarted = line.tasks.get(second).started_at
    assert restarted is not None
    assert restarted >= retry_began.replace(microsecond=retry_began.microsecond // 1000 * 1000)
    # And each run's SUCCESS woke the dispatcher: its slot was free
    assert line.wakes.sent == ["wakes", "wakes"]


def _job(task_id: str) -> UploadJob:
    return UploadJob(task_id=task_id, bucket="media", key=upload_key(task_id), size=1)


class RealClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)
