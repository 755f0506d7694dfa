"""In-memory fakes of the ports of leyline.logic (logic/ports.py), for fast tests of the domain.

They keep the adapters' semantics, not just their signatures: FakeTaskStore moves a task only along the
transitions leyline.states allows (as TaskRepository's conditional writes do), keeps the same sparse "in
line" summary (LineSummary, moved with each transition as the adapter's transactions do) and "waiting
client" index, and answers line_summary and client_backlog from them. mypy checks
that each fake satisfies its port (the assignments at the end of this module).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from leyline.config import Settings
from leyline.errors import BadRequest, IdempotencyKeyReused, RequestInProgress
from leyline.logic.emails import EmailMessage
from leyline.logic.ports import (
    Clock,
    JobLine,
    MediaStorage,
    MessageVisibility,
    SlotLines,
    SlotWakes,
    SubmitRecords,
    TaskStore,
)
from leyline.models import (
    ClientBacklog,
    LineSummary,
    OwnedTasks,
    PresignedPost,
    StoredObject,
    Task,
    TaskState,
    new_task_id,
)
from leyline.states import sources_of

SETTINGS = Settings(
    tasks_table="tasks",
    media_bucket="media",
    model_seconds=30,
    max_upload_bytes=10 * 1024 * 1024,
    max_form_upload_bytes=4 * 1024 * 1024,
    retention_days=7,
    upload_url_seconds=900,  # + 5 min grace: a 20-minute upload window
    video_url_seconds=3600,
    max_waiting_tasks_per_client=2,
)
"""The template's defaults, with an allowance of 2 tasks per client."""


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class _Record:
    task: Task
    waiting_client: str | None = None  # the sparse ClientIndex: unfinished tasks of a client


class FakeTaskStore:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._last_place = 0  # TaskRepository's line#last-place item
        self._line = LineSummary()  # its line#summary#<shard> items (identical copies)
        self._lock = threading.Lock()  # the model runs in a thread in some tests, beside the test's writes

    def create(self, task: Task) -> None:
        with self._lock:
            if task.task_id in self._records:
                raise ValueError(f"task {task.task_id} exists")  # as the adapter's attribute_not_exists
            self._records[task.task_id] = _Record(replace(task), waiting_client=task.client)

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            record = self._records.get(task_id)
            return replace(record.task) if record else None  # a copy, as a read from the table is

    def mark_queued(self, task_id: str, now: datetime, *, opened_since: datetime) -> bool:
        with self._lock:
            record = self._movable(task_id, TaskState.QUEUED)
            if record is None or _ms(record.task.created_at) < _ms(opened_since):
                return False
            self._last_place += 1
            record.task.state = TaskState.QUEUED
            record.task.queued_seq, record.task.queued_at = self._last_place, _ms(now)
            return True

    def mark_processing(self, task_id: str, now: datetime) -> bool:
        with self._lock:
            record = self._movable(task_id, TaskState.PROCESSING)
            if record is None:
                return False
            self._start(record.task, now, slot=None)
            return True

    def take_slot(self, task_id: str, now: datetime, *, slots: int) -> int | None:
        with self._lock:
            record = self._movable(task_id, TaskState.PROCESSING, only=TaskState.QUEUED)
            if record is None:
                return None
            slot = self._line.free_slot(slots) if record.task.queued_seq is not None else 1
            if slot is None:
                return None
            self._start(record.task, now, slot=slot)
            return record.task.slot

    def _start(self, task: Task, now: datetime, *, slot: int | None) -> None:
        """Into the model: the summary's running tasks and slots, as the adapter's transaction."""
        if task.queued_seq is not None:
            started = self._line.after_move(task.state, TaskState.PROCESSING, task.queued_seq, _ms(now), slot=slot)
            assert started is not None  # a move into the model always changes the line
            self._line = started
            task.slot = self._line.slots[task.queued_seq]
        task.state, task.started_at = TaskState.PROCESSING, _ms(now)

    def set_progress(self, task_id: str, progress: int) -> bool:
        with self._lock:
            record = self._movable(task_id, TaskState.PROCESSING, only=TaskState.PROCESSING)
            if record is None:
                return False
            record.task.progress = progress
            return True

    def mark_succeeded(self, task_id: str, now: datetime) -> bool:
        return self._finish(task_id, TaskState.SUCCESS, now, progress=100)

    def mark_failed(self, task_id: str, code: str, message: str, now: datetime) -> bool:
        return self._finish(task_id, TaskState.FAILURE, now, error_code=code, error_message=message)

    def mark_cancelled(self, task_id: str, now: datetime) -> bool:
        return self._finish(task_id, TaskState.CANCELLED, now)

    def _finish(self, task_id: str, target: TaskState, now: datetime, **fields: Any) -> bool:
        """A move to a final state: out of the line and out of the client's count, as the adapter's REMOVE."""
        with self._lock:
            record = self._movable(task_id, target)
            if record is None:
                return False
            self._move_line(record.task, target, now)
            record.task = replace(record.task, state=target, finished_at=_ms(now), **fields)
            record.waiting_client = None
            return True

    def delete(self, task_id: str) -> None:
        with self._lock:
            self._records.pop(task_id, None)

    def line_summary(self, task_id: str) -> LineSummary:
        with self._lock:
            return self._line

    def client_backlog(self, client: str, pending_since: datetime) -> ClientBacklog:
        with self._lock:
            waiting = [r.task for r in self._records.values() if r.waiting_client == client]
            in_line = tuple(task.task_id for task in waiting if task.state is not TaskState.PENDING)
            tickets = sorted(
                task.created_at
                for task in waiting
                if task.state is TaskState.PENDING and _ms(task.created_at) >= _ms(pending_since)
            )
            return ClientBacklog(
                in_line_ids=in_line, open_tickets=len(tickets), oldest_ticket_at=tickets[0] if tickets else None
            )

    def owned_by(self, owner: str, *, limit: int, cursor: str | None) -> OwnedTasks:
        """As OwnerIndex reads them: newest first; the cursor is the last shown task's id (opaque to callers)."""
        with self._lock:
            owned = sorted(
                (r.task for r in self._records.values() if r.task.owner == owner),
                key=lambda task: (_ms(task.created_at), task.task_id),
                reverse=True,
            )
            start = 0
            if cursor is not None:
                ids = [task.task_id for task in owned]
                if cursor not in ids:
                    raise BadRequest("The cursor is not one a GET /tasks gave you.", code="INVALID_CURSOR")
                start = ids.index(cursor) + 1
            shown = [replace(task) for task in owned[start : start + limit]]
            more = start + limit < len(owned)
            return OwnedTasks(tasks=tuple(shown), next_cursor=shown[-1].task_id if more and shown else None)

    def _move_line(self, task: Task, target: TaskState, now: datetime) -> None:
        """The summary's part of the move, as the adapter writes it in the same transaction."""
        if task.queued_seq is not None:
            self._line = self._line.after_move(task.state, target, task.queued_seq, _ms(now)) or self._line

    def _movable(self, task_id: str, target: TaskState, *, only: TaskState | None = None) -> _Record | None:
        """The record, if the transition table lets it move to `target` (from `only`, when given)."""
        record = self._records.get(task_id)
        return record if record is not None and record.task.state in sources_of(target, only=only) else None


def _ms(moment: datetime) -> datetime:
    """Times as the table stores them: ISO 8601 to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class FakeMediaStorage:
    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def presigned_upload(self, key: str, *, content_type: str | None, max_bytes: int, expires_in: int) -> PresignedPost:
        fields = {"key": key, "Content-Type": content_type or "image/*", "max": str(max_bytes), "ttl": str(expires_in)}
        return PresignedPost(url="https://storage.test/bucket", fields=fields)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)

    def head(self, key: str) -> StoredObject | None:
        stored = self.objects.get(key)
        return StoredObject(size=len(stored[0]), content_type=stored[1]) if stored else None

    def read(self, key: str) -> bytes:
        return self.objects[key][0]  # KeyError, as S3's NoSuchKey, for a missing object

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def presigned_download(self, key: str, *, expires_in: int, filename: str, attachment: bool = False) -> str:
        disposition = "attachment" if attachment else "inline"
        return f"https://storage.test/bucket/{key}?expires={expires_in}&disposition={disposition}&name={filename}"


@dataclass
class FakeQueues:
    """The model's line and the visibility of received messages, as lists a test can read."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (queue_url, body, task_id)
    hidden: list[tuple[str, str, int]] = field(default_factory=list)  # (queue_arn, receipt_handle, seconds)
    slotted: list[tuple[str, str, int]] = field(default_factory=list)  # (queue_url, task_id, slot)

    def send_job(self, queue_url: str, body: str, task_id: str) -> None:
        if task_id not in {sent_id for _, _, sent_id in self.sent}:  # deduplicated by task id, as the FIFO queue
            self.sent.append((queue_url, body, task_id))

    def send_to_slot(self, queue_url: str, body: str, task_id: str, slot: int) -> None:
        if task_id not in {sent_id for _, sent_id, _ in self.slotted}:  # deduplicated by task id, as the FIFO queue
            self.slotted.append((queue_url, task_id, slot))

    def hide_for(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.hidden.append((queue_arn, receipt_handle, seconds))

    def hide_all_for(self, queue_arn: str, receipt_handles: list[str], seconds: int) -> None:
        self.hidden.extend((queue_arn, handle, seconds) for handle in receipt_handles)


class FakeSlotWakes:
    """SlotWakeQueue as a count of waiting wakes. A wait with none there lets the test's `while_waiting` pass the
    time (it may end runs, which wake); it returns as soon as one came, or after `seconds`, as a long poll does.
    `refuse` makes both calls raise, as SQS does when it is down."""

    def __init__(self, while_waiting: Callable[[float], None] | None = None) -> None:
        self.waiting = 0  # sent and not yet received
        self.received = 0  # received by a wait
        self.deleted = 0  # received and then deleted
        self.sent: list[str] = []  # the queue URL of each wake sent
        self.waits: list[float] = []  # the `seconds` of each wait
        self.refuse = False
        self._while_waiting = while_waiting

    def wake(self, queue_url: str) -> None:
        if self.refuse:
            raise ConnectionError("SQS is unreachable")
        self.sent.append(queue_url)
        self.waiting += 1

    def wait_for_wake(self, queue_url: str, seconds: float) -> list[str]:
        if self.refuse:
            raise ConnectionError("SQS is unreachable")
        self.waits.append(seconds)
        if not self.waiting and self._while_waiting is not None:
            self._while_waiting(seconds)
        received = [f"wake-{n}" for n in range(self.waiting)]
        self.received += len(received)
        self.waiting = 0
        return received

    def delete_wakes(self, queue_url: str, received: list[str]) -> None:
        if self.refuse:
            raise ConnectionError("SQS is unreachable")
        self.deleted += len(received)


# mypy checks here that each fake satisfies its port.
_store: TaskStore = FakeTaskStore()
_media: MediaStorage = FakeMediaStorage()
_line: JobLine = FakeQueues()
_visibility: MessageVisibility = FakeQueues()
_slots: SlotLines = FakeQueues()
_wakes: SlotWakes = FakeSlotWakes()
_clock: Clock = FakeClock()


# Each write that moves a task to a state, as logic calls it, for tests that walk the transition table
# over a store (the fake here, the real table in tests/handlers).
TRANSITION_WRITES: dict[TaskState, Callable[[TaskStore, str, datetime], bool]] = {
    TaskState.QUEUED: lambda store, task_id, now: store.mark_queued(
        task_id, now, opened_since=now - timedelta(hours=1)
    ),
    TaskState.PROCESSING: lambda store, task_id, now: store.mark_processing(task_id, now),
    TaskState.SUCCESS: lambda store, task_id, now: store.mark_succeeded(task_id, now),
    TaskState.FAILURE: lambda store, task_id, now: store.mark_failed(task_id, "PROCESSING_FAILED", "Failed.", now),
    TaskState.CANCELLED: lambda store, task_id, now: store.mark_cancelled(task_id, now),
}


def seed_task(store: TaskStore, state: TaskState, now: datetime, *, client: str | None = "198.51.100.1") -> str:
    """A task created at `now` and recorded in `state` (test data: as the table would hold it)."""
    task = Task(
        task_id=new_task_id(),
        state=state,
        created_at=now,
        expires_at=int((now + timedelta(days=7)).timestamp()),
        client=client,
    )
    store.create(task)
    return task.task_id


class FakeSubmitRecords:
    """Idempotency-Key records as Powertools keeps them: in progress while the submit runs, its result once it
    returns, nothing when it raises; the fingerprint is compared first, whatever the record's state."""

    IN_PROGRESS = object()

    def __init__(self) -> None:
        self.records: dict[str, tuple[dict[str, Any], object]] = {}  # key -> (fingerprint, result or IN_PROGRESS)
        self._lock = threading.Lock()

    def once(self, key: str, fingerprint: dict[str, Any], submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if key in self.records:
                stored_fingerprint, result = self.records[key]
                if stored_fingerprint != fingerprint:
                    raise IdempotencyKeyReused("another request")
                if result is self.IN_PROGRESS:
                    raise RequestInProgress("in progress")
                assert isinstance(result, dict)
                return dict(result)
            self.records[key] = (dict(fingerprint), self.IN_PROGRESS)
        try:
            result = submit()
        except Exception:
            with self._lock:
                del self.records[key]
            raise
        with self._lock:
            self.records[key] = (dict(fingerprint), dict(result))
        return result


_submits: SubmitRecords = FakeSubmitRecords()  # mypy checks this fake against its port too


class FakeUserDirectory:
    """A user pool: each user's address and whether it is verified (logic.emails.UserDirectory)."""

    def __init__(self) -> None:
        self._users: dict[str, tuple[str, bool]] = {}

    def add(self, user: str, email: str, *, verified: bool = True) -> None:
        self._users[user] = (email, verified)

    def verified_email(self, user: str) -> str | None:
        email, verified = self._users.get(user, ("", False))
        return email if verified else None


class FakeMailer:
    """Keeps what it is asked to send (logic.emails.Mailer)."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> str:
        self.sent.append(message)
        return f"message-{len(self.sent)}"
