"""Task events: every change of a task's state, as an event others can subscribe to (TaskEventBus).

They are read from the task table's stream (TaskEventsFunction), not published by the code that writes the
state: the stream holds each write, in order per task, for 24 h, so a crash between a write and its event
delays the event instead of losing it, and no writer can forget one. A write that does not change the state
(progress, a retry re-entering PROCESSING) is no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from leyline.config import Settings
from leyline.logic.ports import MediaStorage, TaskStore
from leyline.logic.tasks import status_of
from leyline.models import Task, TaskState

SOURCE = "leyline.tasks"
DETAIL_TYPE = "Task State Changed"


@dataclass(frozen=True)
class TaskEvent:
    status: dict[str, Any]  # the task's status object, as GET /status/{task_id} answered at that moment
    time: datetime  # when the state changed


class TaskEventSink(Protocol):
    def publish(self, events: list[TaskEvent]) -> int:
        """Publishes `events` in order; how many were, before the first that could not be."""
        ...


@dataclass(frozen=True)
class TaskWrite:
    """One write of a task, as the stream records it: the task before and after (None: not a task)."""

    record_id: str
    old: Task | None
    new: Task | None


def state_changed(write: TaskWrite) -> bool:
    return write.old is not None and write.new is not None and write.old.state is not write.new.state


def event_of(tasks: TaskStore, media: MediaStorage, settings: Settings, task: Task, now: datetime) -> TaskEvent:
    changed_at = {TaskState.QUEUED: task.queued_at, TaskState.PROCESSING: task.started_at}.get(
        task.state, task.finished_at
    )
    return TaskEvent(status_of(tasks, media, settings, task, now).to_json(), changed_at or now)


def publish_changes(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    sink: TaskEventSink,
    writes: Sequence[TaskWrite],
    now: datetime,
) -> str | None:
    """Publishes the state changes among `writes`, in their order. None when all were; else the record id
    of the first that was not: it and every write after it must be retried, in order."""
    changes = [write for write in writes if state_changed(write)]
    events = [event_of(tasks, media, settings, write.new, now) for write in changes if write.new is not None]
    published = sink.publish(events)
    return None if published == len(changes) else changes[published].record_id
