"""The state machine (leyline.states) and a task store's writes that follow it, on the in-memory fake.

tests/handlers/test_task_lifecycle.py walks the same table over the real DynamoDB adapter (moto)."""

from __future__ import annotations

import pytest

from leyline.states import FINAL_STATES, TRANSITIONS, TaskState, can_move, sources_of
from tests.fakes import TRANSITION_WRITES, FakeClock, FakeTaskStore, seed_task

ALL_MOVES = [(source, target) for source in TaskState for target in TRANSITION_WRITES]


def test_the_final_states_are_those_with_no_way_out_and_cancelled_is_one():
    # Given the transition table
    # Then SUCCESS, FAILURE and CANCELLED are final, and nothing else is
    assert {TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED} == FINAL_STATES
    assert all(state.is_final == (state in FINAL_STATES) for state in TaskState)
    # And every unfinished task can be cancelled, as the cancel route will need
    assert sources_of(TaskState.CANCELLED) == {TaskState.PENDING, TaskState.QUEUED, TaskState.PROCESSING}


def test_the_table_lists_the_product_s_moves_and_no_way_back():
    assert TRANSITIONS[TaskState.PENDING] == {TaskState.QUEUED, TaskState.FAILURE, TaskState.CANCELLED}
    assert TRANSITIONS[TaskState.QUEUED] == {TaskState.PROCESSING, TaskState.FAILURE, TaskState.CANCELLED}
    assert TRANSITIONS[TaskState.PROCESSING] == {
        TaskState.PROCESSING,
        TaskState.SUCCESS,
        TaskState.FAILURE,
        TaskState.CANCELLED,
    }
    # nothing ever returns to PENDING, and nothing skips the upload straight into the model
    assert sources_of(TaskState.PENDING) == frozenset()
    assert not can_move(TaskState.PENDING, TaskState.PROCESSING)


@pytest.mark.parametrize(("source", "target"), ALL_MOVES, ids=[f"{s}->{t}" for s, t in ALL_MOVES])
def test_a_write_moves_a_task_exactly_when_the_table_allows_it(source, target):
    # Given a task in `source`
    clock, store = FakeClock(), FakeTaskStore()
    task_id = seed_task(store, source, clock())

    # When the write that leads to `target` is made
    moved = TRANSITION_WRITES[target](store, task_id, clock.advance(1))

    # Then it succeeds if and only if the table lists the move, and a refused write changes nothing
    task = store.get(task_id)
    assert task is not None
    assert moved == can_move(source, target)
    assert task.state is (target if moved else source)


def test_a_write_to_an_unknown_task_is_refused():
    store, clock = FakeTaskStore(), FakeClock()
    assert not any(write(store, "no-such-task", clock()) for write in TRANSITION_WRITES.values())


def test_progress_moves_only_inside_the_model():
    # Given a task in each state
    clock, store = FakeClock(), FakeTaskStore()
    for state in TaskState:
        task_id = seed_task(store, state, clock())
        # When progress is written, Then only a PROCESSING task takes it
        assert store.set_progress(task_id, 40) == (state is TaskState.PROCESSING)
        task = store.get(task_id)
        assert task is not None
        assert task.progress == (40 if state is TaskState.PROCESSING else 0)


@pytest.mark.parametrize("ended", [TaskState.FAILURE, TaskState.CANCELLED, TaskState.SUCCESS])
def test_a_run_cannot_succeed_once_its_task_is_final(ended):
    # Given a task that ended while the model ran (dead-lettered, cancelled, or a duplicate run's success)
    clock, store = FakeClock(), FakeTaskStore()
    task_id = seed_task(store, ended, clock())

    # When the run finishes, Then SUCCESS is refused and the final state stands
    assert store.mark_succeeded(task_id, clock.advance(30)) is False
    task = store.get(task_id)
    assert task is not None
    assert task.state is ended
    assert task.finished_at is None  # untouched


def test_a_write_asking_for_a_move_the_table_does_not_list_is_a_bug():
    with pytest.raises(ValueError, match="does not allow"):
        sources_of(TaskState.SUCCESS, only=TaskState.QUEUED)
