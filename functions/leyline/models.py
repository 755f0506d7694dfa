"""The task and the views of it the API returns. Plain dataclasses: no boto3, no HTTP.

Its states, and the moves between them, are leyline.states (standard library only, shared with the CLI)."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from leyline.errors import InvalidTaskId
from leyline.states import TaskState

UPLOAD_PREFIX = "uploads/"
VIDEO_PREFIX = "videos/"
_TASK_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# What parse_task_id accepts, as the OpenAPI document states it: any case, optionally the original API's `.mp4`.
TASK_ID_PATTERN = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}" r"(\.[mM][pP]4)?$"
)


def new_task_id() -> str:
    return str(uuid.uuid4())


def parse_task_id(raw: str) -> str:
    """Accepts a task id, or the original API's video file name `<task_id>.mp4`."""
    candidate = raw.lower().removesuffix(".mp4")
    if not _TASK_ID.fullmatch(candidate):  # fullmatch: `$` alone would let a trailing newline through
        raise InvalidTaskId("Task ids are UUIDs such as 3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c.")
    return candidate


def upload_key(task_id: str) -> str:
    """Storage keys derive from the task id only, never from anything the user named."""
    return f"{UPLOAD_PREFIX}{task_id}"


def video_key(task_id: str) -> str:
    return f"{VIDEO_PREFIX}{task_id}.mp4"


def task_id_from_upload_key(key: str) -> str:
    """Only the exact key a task's presigned POST names, `uploads/<task_id>`, starts that task: unlike the
    API's lenient parse_task_id, no other case and no `.mp4` (another key is another object, never the upload)."""
    task_id = key.removeprefix(UPLOAD_PREFIX)
    if task_id == key or not _TASK_ID.fullmatch(task_id):
        raise InvalidTaskId(f"{key!r} is not an upload key ({UPLOAD_PREFIX}<task_id>)")
    return task_id


def task_id_from_video_url(path: str) -> str:
    """The task id in the last segment of a video URL (`.../videos/<task_id>.mp4?...`), as the original API's clients
    send it back in `GET /video/<video_url>`; `path` is what follows `/video/`, percent-decoded or not."""
    return parse_task_id(unquote(path).partition("?")[0].rpartition("/")[2])


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Task:
    task_id: str
    state: TaskState
    created_at: datetime
    expires_at: int  # epoch seconds, DynamoDB TTL: retention deletes the task, its upload and its video
    client: str | None = None  # what the per-client cap counts it for: its user in accounts mode, else the source IP
    progress: int = 0
    queued_seq: int | None = None  # its place in line: 1, 2, 3... in the order the intake saw the uploads
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    owner: str | None = None  # the user who created it (accounts mode: the token's `sub`); None: anonymous
    webhook: Webhook | None = None  # where its events are delivered, if it asked
    notify_email: bool = False  # its owner asked for an email when it ends (accounts mode only)
    slot: int | None = None  # the model slot (1..ModelSlots) it took when it left the line


@dataclass(frozen=True)
class Webhook:
    """A task's webhook: its URL (checked at submit) and the events it asked for (logic/webhooks.py)."""

    url: str
    events: tuple[str, ...]


@dataclass(frozen=True)
class Caller:
    """Who sends a request: in accounts mode the user API Gateway's authorizer vouched for (the token's `sub`,
    never anything of the body); in open mode an anonymous client, known by its source IP."""

    source_ip: str
    user: str | None = None

    @property
    def client(self) -> str:
        """Whom the per-client cap counts and Idempotency-Keys belong to: the user, else the source IP."""
        return f"user:{self.user}" if self.user else self.source_ip


@dataclass(frozen=True)
class LineSummary:
    """The whole line in a few numbers, so that a task's place in it costs one small read at any length.

    Places are consecutive (the intake gives 1, 2, 3... in the model's order). `cursor` is the highest place
    the model has taken; `running` the tasks inside the model (place -> started_at; at most one per model
    slot) and `slots` which slot each of them holds (place -> slot, 1..N); `removed` the places after the
    cursor that left the line without running (cancelled, failed), dropped once the cursor passes them. So
    for a waiting task at place p, the tasks that start before it are the running ones plus the places
    between the cursor and p that did not leave: no scan of the line."""

    cursor: int = 0
    running: Mapping[int, datetime] = field(default_factory=dict)
    removed: tuple[int, ...] = ()
    slots: Mapping[int, int] = field(default_factory=dict)

    def waiting_ahead(self, place: int) -> int:
        """Tasks still waiting that the model takes before `place`."""
        left = sum(1 for r in self.removed if self.cursor < r < place)
        return max(0, place - self.cursor - 1 - left)

    def free_slot(self, slots: int) -> int | None:
        """The lowest of the slots 1..`slots` no running task holds; None when every one is taken."""
        lowest = _lowest_free(self.slots.values())
        return lowest if len(self.running) < slots and lowest <= slots else None

    def after_move(
        self, source: TaskState, target: TaskState, place: int, now: datetime, *, slot: int | None = None
    ) -> LineSummary | None:
        """The summary once the task at `place` moves from `source` to `target` (into `slot` when it starts);
        None when the move does not change the line (PENDING moves, progress)."""
        if target is TaskState.PROCESSING and source in (TaskState.QUEUED, TaskState.PROCESSING):
            return self._started(place, now, slot)  # from PROCESSING: a retry after a crash, its clock restarts
        if source is TaskState.PROCESSING and target.is_final:
            running = {p: t for p, t in self.running.items() if p != place}
            slots = {p: s for p, s in self.slots.items() if p != place}
            return LineSummary(self.cursor, running, self.removed, slots)
        if source is TaskState.QUEUED and target.is_final:
            removed = self.removed if place <= self.cursor else tuple(sorted({*self.removed, place}))
            return LineSummary(self.cursor, self.running, removed, self.slots)
        return None

    def _started(self, place: int, now: datetime, slot: int | None) -> LineSummary:
        """A retry keeps the slot it held; a start without a slot given takes the lowest free one."""
        cursor = max(self.cursor, place)
        held = slot or self.slots.get(place) or _lowest_free(self.slots.values())
        return LineSummary(
            cursor,
            {**self.running, place: now},
            tuple(r for r in self.removed if r > cursor),
            {**self.slots, place: held},
        )


def _lowest_free(taken: Iterable[int]) -> int:
    held = set(taken)
    return next(slot for slot in itertools.count(1) if slot not in held)


@dataclass(frozen=True)
class ClientBacklog:
    """One client's unfinished tasks, as the cap on them counts them."""

    in_line_ids: tuple[str, ...]  # uploaded: waiting for the model or inside it
    open_tickets: int  # PENDING, their upload window still open
    oldest_ticket_at: datetime | None  # when the oldest of those open tickets was created

    @property
    def in_line(self) -> int:
        return len(self.in_line_ids)

    @property
    def unfinished(self) -> int:
        return self.in_line + self.open_tickets


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: TaskState
    progress: int
    queue_position: int | None
    eta_seconds: int | None
    video_url: str | None
    error: dict[str, str] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime  # when retention deletes the task, its upload and its video
    slot: int | None = None  # which model slot runs it, while PROCESSING

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state.value,
            "progress": self.progress,
            "queue_position": self.queue_position,
            "eta_seconds": self.eta_seconds,
            "video_url": self.video_url,
            "error": self.error,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "expires_at": iso(self.expires_at),
            "slot": self.slot,
        }


@dataclass(frozen=True)
class OwnedTasks:
    """One page of a user's tasks as the store reads them, newest first, and the opaque cursor of the next page
    (None: this is the last)."""

    tasks: tuple[Task, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class TaskPage:
    """GET /tasks: the status objects of one page of the caller's tasks, newest first."""

    tasks: tuple[TaskStatus, ...]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"tasks": [status.to_json() for status in self.tasks], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class UploadTicket:
    task_id: str
    url: str
    fields: dict[str, str]
    expires_in: int
    max_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "upload": {"url": self.url, "fields": self.fields},
            "expires_in": self.expires_in,
            "max_bytes": self.max_bytes,
            "status_url": f"/status/{self.task_id}",
        }


@dataclass(frozen=True)
class PresignedPost:
    """A form that uploads one object straight to storage: where to POST it, and the fields to send first."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str


@dataclass(frozen=True)
class UploadJob:
    """One uploaded object, as the S3 'Object Created' event describes it."""

    task_id: str
    bucket: str
    key: str
    size: int
