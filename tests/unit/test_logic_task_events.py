"""logic/task_events.py on the typed fakes: which writes are events, in what order, and where a retry resumes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from leyline.logic.task_events import TaskEvent, TaskWrite, publish_changes
from leyline.models import Task, TaskState
from tests.fakes import SETTINGS, FakeMediaStorage, FakeTaskStore

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TASK = Task("t1", TaskState.PENDING, NOW, expires_at=int(NOW.timestamp()) + 3600, queued_seq=1, queued_at=NOW)


class Bus:
    """Publishes up to `capacity` events, then refuses the rest (an EventBridge outage mid-batch)."""

    def __init__(self, capacity: int = 100) -> None:
        self.capacity = capacity
        self.published: list[TaskEvent] = []

    def publish(self, events: list[TaskEvent]) -> int:
        taken = events[: max(0, self.capacity - len(self.published))]
        self.published += taken
        return len(taken)


def moved(task: Task, state: TaskState, **fields: object) -> Task:
    return replace(task, state=state, **fields)  # type: ignore[arg-type]


def writes() -> list[TaskWrite]:
    queued = moved(TASK, TaskState.QUEUED)
    running = moved(queued, TaskState.PROCESSING, started_at=NOW)
    progressed = moved(running, TaskState.PROCESSING, progress=50)
    done = moved(progressed, TaskState.SUCCESS, progress=100, finished_at=NOW)
    return [
        TaskWrite("1", TASK, queued),
        TaskWrite("2", queued, running),
        TaskWrite("3", running, progressed),  # progress: no state change, no event
        TaskWrite("4", None, None),  # the line's own item: no task
        TaskWrite("5", progressed, done),
    ]


def test_each_state_change_is_one_event_in_write_order():
    # Given the writes of one task's run, progress among them
    bus = Bus()

    # When they are published
    failed = publish_changes(FakeTaskStore(), FakeMediaStorage(), SETTINGS, bus, writes(), NOW)

    # Then there is one event per state change, in order, each the status object of that moment
    assert failed is None
    assert [event.status["state"] for event in bus.published] == ["QUEUED", "PROCESSING", "SUCCESS"]
    assert bus.published[2].status["progress"] == 100


def test_a_refused_publish_names_the_write_to_retry_from():
    # Given a bus that takes one event and then fails
    bus = Bus(capacity=1)

    # When the batch is published
    failed = publish_changes(FakeTaskStore(), FakeMediaStorage(), SETTINGS, bus, writes(), NOW)

    # Then the retry must start at the second state change (record 2): nothing after it is skipped
    assert failed == "2"
    assert [event.status["state"] for event in bus.published] == ["QUEUED"]
