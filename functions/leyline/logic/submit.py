"""Submitting a task, with or without an Idempotency-Key (IETF httpapi draft, as Stripe does it).

With a key, a retry of the same request answers what the first one did and creates nothing; the same key
with another request is refused (422); a retry while the first is still being handled gets 409. The
records live behind the SubmitRecords port (Powertools' idempotency utility on DynamoDB on AWS); this
module decides what a key is, whose it is, what makes two requests "the same", and what a replay answers.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from leyline.config import Settings
from leyline.errors import InvalidIdempotencyKey, TaskNotFound, UploadClosed
from leyline.logic.ports import MediaStorage, SubmitRecords, TaskStore
from leyline.logic.tasks import create_form_upload, create_presigned_upload
from leyline.models import TaskState, UploadTicket, Webhook, upload_key

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
KEY_LIFETIME_SECONDS = 24 * 60 * 60  # as Stripe: long enough for any client's retries, short enough to forget
T = TypeVar("T")
_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII; HTTP has already trimmed the value's ends


@dataclass(frozen=True)
class Submitted(Generic[T]):
    """What a submit answers, and whether it is a replay (no task was created: the first request's)."""

    value: T
    replayed: bool


@dataclass(frozen=True)
class Idempotency:
    """A request's Idempotency-Key and where keys are kept."""

    records: SubmitRecords
    key: str


def parse_idempotency_key(value: str | None) -> str | None:
    """The header's value (None: no header, the request is not idempotent); a 400 if it is not 1 to 255
    printable ASCII characters."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return value


def key_scope(client: str) -> str:
    """Whose keys these are: one client's key never meets another's. The client is the one the per-client cap
    counts (models.Caller.client): the signed-in user in accounts mode (`user:<sub>`, whatever device or IP
    sends it), the source IP in open mode."""
    return f"client:{client}"


def submit_presigned_upload(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    now: datetime,
    *,
    client: str,
    content_type: str | None,
    size: int | None,
    idempotency: Idempotency | None,
    owner: str | None = None,
    webhook: Webhook | None = None,
    notify_email: bool = False,
) -> Submitted[UploadTicket]:
    """POST /uploads. A replay gets a fresh upload form for the same task while it still waits for its upload.
    `owner`: the signed-in user the task belongs to (accounts mode)."""

    def create() -> UploadTicket:
        return create_presigned_upload(
            tasks,
            media,
            settings,
            now,
            client=client,
            content_type=content_type,
            size=size,
            owner=owner,
            webhook=webhook,
            notify_email=notify_email,
        )

    if idempotency is None:
        return Submitted(create(), replayed=False)
    created: list[UploadTicket] = []

    def first() -> dict[str, Any]:
        created.append(create())
        return {"task_id": created[0].task_id}

    fingerprint = presigned_fingerprint(content_type, size) | _notifications_fingerprint(webhook, notify_email)
    stored = idempotency.records.once(scoped_key(client, idempotency.key), fingerprint, first)
    if created:
        return Submitted(created[0], replayed=False)
    return Submitted(_fresh_ticket(tasks, media, settings, str(stored["task_id"]), content_type, now), replayed=True)


def submit_form_upload(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    image: bytes,
    now: datetime,
    *,
    client: str,
    idempotency: Idempotency | None,
    owner: str | None = None,
    webhook: Webhook | None = None,
    notify_email: bool = False,
) -> Submitted[str]:
    """POST /upload: the task id. The request is its image (and its webhook): the form's other parts and file name
    do not count."""

    created: list[str] = []

    def create() -> dict[str, Any]:
        created.append(
            create_form_upload(
                tasks,
                media,
                settings,
                image,
                now,
                client=client,
                owner=owner,
                webhook=webhook,
                notify_email=notify_email,
            ).task_id
        )
        return {"task_id": created[0]}

    if idempotency is None:
        return Submitted(str(create()["task_id"]), replayed=False)
    fingerprint = form_fingerprint(image) | _notifications_fingerprint(webhook, notify_email)
    stored = idempotency.records.once(scoped_key(client, idempotency.key), fingerprint, create)
    return Submitted(str(stored["task_id"]), replayed=not created)


def scoped_key(client: str, key: str) -> str:
    """The key as stored: its client's scope and the key (a key has no newline, so no two pairs meet)."""
    return f"{key_scope(client)}\n{key}"


def presigned_fingerprint(content_type: str | None, size: int | None) -> dict[str, Any]:
    """What makes two POST /uploads the same request: the validated fields, not the body's text ({} and
    {"size": null} are the same). The route is part of it: a key sent to the other route is a reuse."""
    return {"route": "POST /uploads", "content_type": content_type, "size": size}


def form_fingerprint(image: bytes) -> dict[str, Any]:
    """What makes two POST /upload the same request: the image's bytes (the form's other parts and the file
    name do not count). A hash: the record must not hold the image."""
    return {"route": "POST /upload", "image_sha256": hashlib.sha256(image).hexdigest()}


def _notifications_fingerprint(webhook: Webhook | None, notify_email: bool) -> dict[str, Any]:
    """A webhook and an email are part of the request (another URL is another request); none adds nothing, so
    records made before notifications existed still match."""
    webhook_part = {} if webhook is None else {"webhook_url": webhook.url, "webhook_events": list(webhook.events)}
    return webhook_part | ({"notify_email": True} if notify_email else {})


def _fresh_ticket(
    tasks: TaskStore, media: MediaStorage, settings: Settings, task_id: str, content_type: str | None, now: datetime
) -> UploadTicket:
    """A new form for the task the first request created, valid until the first form's own deadline: the
    intake takes an upload only within the task's window, so a replay must not stretch it. The form is
    signed anew rather than stored: a presigned POST is a credential, and the record outlives it."""
    task = tasks.get(task_id)
    if task is None or task.expires_at <= now.timestamp():
        raise TaskNotFound(
            f"Task {task_id}, which the first request with this Idempotency-Key created, no longer exists;"
            " use a new key to create another."
        )
    deadline = task.created_at + timedelta(seconds=settings.upload_url_seconds)
    expires_in = math.floor((deadline - now).total_seconds())
    if task.state is not TaskState.PENDING or expires_in < 1:
        why = "its upload link expired" if task.state is TaskState.PENDING else f"it is {task.state.value}"
        raise UploadClosed(
            f"The first request with this Idempotency-Key created task {task_id}, which takes no upload any more"
            f" ({why}); follow it at /status/{task_id}.",
            task_id=task_id,
        )
    post = media.presigned_upload(
        upload_key(task_id), content_type=content_type, max_bytes=settings.max_upload_bytes, expires_in=expires_in
    )
    return UploadTicket(
        task_id=task_id, url=post.url, fields=post.fields, expires_in=expires_in, max_bytes=settings.max_upload_bytes
    )
