"""What the domain needs from the outside world, as typing.Protocol ports.

leyline.logic is written against these, never against leyline.adapters (a test fails if it imports them):
the adapters (DynamoDB, S3, SQS) satisfy them on AWS, the in-memory fakes of tests/fakes.py in fast tests,
and mypy checks both. A task store's transitions obey leyline.states.TRANSITIONS: each mark_* write
succeeds only from a state the table allows to move to its target, and says False otherwise; a move in or out
of the line updates the LineSummary in the same atomic write (LineSummary.after_move).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from leyline.models import ClientBacklog, LineSummary, OwnedTasks, PresignedPost, StoredObject, Task

Clock = Callable[[], datetime]
"""The current time, timezone-aware UTC (models.utc_now on AWS; a settable one in tests)."""


class TaskStore(Protocol):
    def create(self, task: Task) -> None: ...

    def get(self, task_id: str) -> Task | None: ...

    def mark_queued(self, task_id: str, now: datetime, *, opened_since: datetime) -> bool:
        """PENDING -> QUEUED with the next place in line (1, 2, 3...: no gap, no repeat), only while its upload
        window is open (created at `opened_since` or later). False if the table refuses, the window closed or
        the task is unknown."""
        ...

    def mark_processing(self, task_id: str, now: datetime) -> bool:
        """Enters the model (again, after a crash: progress, place and slot are kept, the clock restarts)."""
        ...

    def take_slot(self, task_id: str, now: datetime, *, slots: int) -> int | None:
        """A QUEUED task enters the model in the lowest free one of `slots` model slots (1..slots), atomically
        with the line summary: the slot, or None when every slot is taken or the task is no longer QUEUED."""
        ...

    def set_progress(self, task_id: str, progress: int) -> bool:
        """Only while PROCESSING."""
        ...

    def mark_succeeded(self, task_id: str, now: datetime) -> bool: ...

    def mark_failed(self, task_id: str, code: str, message: str, now: datetime) -> bool: ...

    def mark_cancelled(self, task_id: str, now: datetime) -> bool:
        """An unfinished task leaves the line at once and ends CANCELLED, its progress as it was."""
        ...

    def delete(self, task_id: str) -> None:
        """Removes the task's record; nothing happens if there is none."""
        ...

    def line_summary(self, task_id: str) -> LineSummary:
        """The line as every move in and out of it left it (LineSummary), in one small read; `task_id` only
        spreads the reads over the summary's copies."""
        ...

    def client_backlog(self, client: str, pending_since: datetime) -> ClientBacklog:
        """`client`'s unfinished tasks, leaving out those PENDING since before `pending_since`."""
        ...

    def owned_by(self, owner: str, *, limit: int, cursor: str | None) -> OwnedTasks:
        """Up to `limit` of `owner`'s tasks, newest first, from where `cursor` (a next_cursor this store gave
        for `owner`) left off. Raises errors.BadRequest (INVALID_CURSOR) for any other cursor."""
        ...


class MediaStorage(Protocol):
    def presigned_upload(
        self, key: str, *, content_type: str | None, max_bytes: int, expires_in: int
    ) -> PresignedPost: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def head(self, key: str) -> StoredObject | None: ...

    def read(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None:
        """Removes the object; nothing happens if there is none."""
        ...

    def presigned_download(self, key: str, *, expires_in: int, filename: str, attachment: bool = False) -> str: ...


class JobLine(Protocol):
    """The model's line: a FIFO queue that hands the model one job at a time, in the order they were sent."""

    def send_job(self, queue_url: str, body: str, task_id: str) -> None: ...


class SlotLines(Protocol):
    """The model slots' own queue: one FIFO message group per slot, so each slot runs one job at a time."""

    def send_to_slot(self, queue_url: str, body: str, task_id: str, slot: int) -> None: ...


class SlotWakes(Protocol):
    """Wake-ups of the dispatch that waits for a free model slot (SlotWakeQueue, a standard queue): whoever takes
    a task out of a slot sends one, and the dispatch waits on them instead of reading the line summary over and
    over. A wake says only "look again": a stale one costs one read, a lost one the dispatch's fallback re-read."""

    def wake(self, queue_url: str) -> None: ...

    def wait_for_wake(self, queue_url: str, seconds: float) -> list[str]:
        """Waits until at least one wake is there or `seconds` (rounded up to a whole second) pass: the wakes
        it received (their receipt handles), hidden from other waits until deleted or their visibility ends."""
        ...

    def delete_wakes(self, queue_url: str, received: list[str]) -> None:
        """Takes the wakes a wait received off the queue, once they have been acted on."""
        ...


class MessageVisibility(Protocol):
    """When a received queue message comes back if it is not deleted."""

    def hide_for(self, queue_arn: str, receipt_handle: str, seconds: int) -> None: ...

    def hide_all_for(self, queue_arn: str, receipt_handles: list[str], seconds: int) -> None: ...


class SubmitRecords(Protocol):
    """Idempotency-Key records of task submits (POST /upload, POST /uploads), kept for a fixed lifetime."""

    def once(self, key: str, fingerprint: dict[str, Any], submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """What `submit` returned the first time `key` was used, running it only then.

        The same `key` with another `fingerprint` raises IdempotencyKeyReused; while the first call still
        runs, RequestInProgress. When `submit` raises, nothing is kept: a retry runs it again."""
        ...
