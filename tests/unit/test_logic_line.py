"""The line summary on the in-memory fakes (issue 13): places, positions and ETAs stay exact from a summary of
a few numbers, under a long line with cancellations and fast failures scattered through it, a retry after a
crash, and N model slots. Checked against the obvious answer: walk the whole line and count."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from leyline.logic.tasks import get_status, line_position
from leyline.models import LineSummary, TaskState
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeTaskStore, seed_task

MODEL = int(SETTINGS.model_seconds)
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Line:
    def __init__(self) -> None:
        self.clock, self.tasks, self.media = FakeClock(), FakeTaskStore(), FakeMediaStorage()
        self.settings = replace(SETTINGS, max_waiting_tasks_per_client=100_000)
        self.order: list[str] = []  # task ids in the order they took their places

    def queue(self, count: int) -> None:
        for _ in range(count):
            task_id = seed_task(self.tasks, TaskState.PENDING, self.clock())
            assert self.tasks.mark_queued(task_id, self.clock(), opened_since=self.clock() - timedelta(hours=1))
            self.order.append(task_id)

    def take_next(self) -> str | None:
        """The model takes the next job: skips final tasks, as run_model does, and starts the first unfinished."""
        for task_id in self.order:
            task = self.tasks.get(task_id)
            assert task is not None
            if task.state is TaskState.QUEUED:
                assert self.tasks.mark_processing(task_id, self.clock())
                return task_id
        return None

    def shown(self, task_id: str) -> tuple[int | None, int | None]:
        status = get_status(self.tasks, self.media, self.settings, task_id, self.clock())
        return status.queue_position, status.eta_seconds

    def expected(self, task_id: str) -> tuple[int, int]:
        """By brute force, with one model: the unfinished tasks before it, what the running one has left, and
        a whole model run for each waiting one and for itself."""
        ahead = [self.tasks.get(other) for other in self.order[: self.order.index(task_id)]]
        unfinished = [t for t in ahead if t is not None and t.state in (TaskState.QUEUED, TaskState.PROCESSING)]
        running = [t for t in unfinished if t.state is TaskState.PROCESSING]
        left = sum(max(0.0, MODEL - (self.clock() - t.started_at).total_seconds()) for t in running if t.started_at)
        return len(unfinished), int(left + (len(unfinished) - len(running)) * MODEL + MODEL)


def test_places_are_consecutive_and_a_refused_move_uses_none():
    # Given three uploads queued, and a fourth whose upload window has closed
    line = Line()
    line.queue(3)
    late = seed_task(line.tasks, TaskState.PENDING, line.clock() - timedelta(hours=2))
    # When the late one is refused and another is queued
    assert not line.tasks.mark_queued(late, line.clock(), opened_since=line.clock() - timedelta(hours=1))
    line.queue(1)
    # Then the places are 1, 2, 3, 4: the refused move took none
    assert [line.tasks.get(t).queued_seq for t in line.order] == [1, 2, 3, 4]


def test_positions_and_etas_stay_exact_in_a_long_line_with_cancels_and_failures_scattered_through_it():
    # Given 300 tasks in line, and a seeded mix of cancels and fast failures among them
    line = Line()
    line.queue(300)
    pick = random.Random(13)
    for task_id in pick.sample(line.order, 60):
        if pick.random() < 0.5:
            assert line.tasks.mark_cancelled(task_id, line.clock())
        else:
            assert line.tasks.mark_failed(task_id, "PROCESSING_FAILED", "Failed.", line.clock())
    # When the model works through the line, a task failing inside it now and then, more leaving as it goes
    for step in range(120):
        running = line.take_next()
        line.clock.advance(7)
        waiting = [t for t in line.order if line.tasks.get(t).state is TaskState.QUEUED]
        # Then every waiting task's position and ETA is what walking the whole line gives
        for task_id in waiting[:: max(1, len(waiting) // 25)] + waiting[-1:]:
            assert line.shown(task_id) == line.expected(task_id), (step, task_id)
        if step % 5 == 0 and len(waiting) > 10:
            assert line.tasks.mark_cancelled(waiting[pick.randrange(len(waiting))], line.clock())
        assert running is not None
        if step % 9 == 0:
            assert line.tasks.mark_failed(running, "UNSUPPORTED_FORMAT", "Not an image.", line.clock())
        else:
            assert line.tasks.mark_succeeded(running, line.clock())
    # And the summary forgot the removed places the model has passed
    summary = line.tasks.line_summary(line.order[0])
    assert all(place > summary.cursor for place in summary.removed)


def test_a_retry_after_a_crash_keeps_its_place_and_restarts_its_clock():
    # Given a task in the model for 20 s with two behind it
    line = Line()
    line.queue(3)
    head = line.take_next()
    assert head is not None
    line.clock.advance(20)
    assert line.shown(line.order[2]) == (2, MODEL - 20 + 2 * MODEL)
    # When its run crashes and the retry enters the model again
    assert line.tasks.mark_processing(head, line.clock())
    # Then nobody moved, and the one at the back waits for a whole run of the head again
    assert line.tasks.get(head).queued_seq == 1
    assert line.shown(line.order[1]) == (1, 2 * MODEL)
    assert line.shown(line.order[2]) == (2, 3 * MODEL)


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        # 3 slots: one idle, two with 5 s and 10 s left; T = 30
        (0, (2, 0 + MODEL)),  # the idle slot takes it now
        (1, (3, 5 + MODEL)),  # the next frees in 5 s
        (2, (4, 10 + MODEL)),
        (3, (5, 0 + MODEL + MODEL)),  # the idle slot's second turn
        (4, (6, 5 + MODEL + MODEL)),
        (7, (9, 5 + 2 * MODEL + MODEL)),
    ],
)
def test_with_n_slots_each_waiting_task_takes_the_next_slot_to_free(waiting, expected):
    # Given 3 model slots, two running (started 25 s and 20 s ago), cursor at place 10 and place 12 cancelled
    running = {9: NOW - timedelta(seconds=25), 10: NOW - timedelta(seconds=20)}
    summary = LineSummary(cursor=10, running=running, removed=(12,))
    # When a task waits with `waiting` tasks between it and the cursor (skipping the cancelled place 12)
    place = 11 + waiting + (1 if waiting >= 1 else 0)
    # Then its position counts the running ones, and its ETA is exact for a fixed model time
    assert line_position(summary, place, MODEL, NOW, slots=3) == expected


def test_with_one_slot_the_formula_is_the_single_model_one():
    # Given one slot running a task with 20 s left, and 2 waiting ahead
    summary = LineSummary(cursor=5, running={5: NOW - timedelta(seconds=10)})
    # Then: its 20 s, two whole runs, then its own
    assert line_position(summary, 8, MODEL, NOW) == (3, 20 + 2 * MODEL + MODEL)


def test_a_task_that_starts_between_its_read_and_the_summary_s_is_not_ahead_of_itself():
    # Given a task read as QUEUED at place 5, next in line, and the summary read just after it entered the model
    summary = LineSummary(cursor=5, running={5: NOW})
    # Then nothing is ahead of it: its own run does not count (a position never goes from 0 up to 1)
    assert line_position(summary, 5, MODEL, NOW) == (0, MODEL)
