"""Creating tasks and reporting on them: the domain behind the API and status functions."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from leyline.config import Settings
from leyline.errors import (
    BadRequest,
    InvalidImage,
    PayloadTooLarge,
    TaskCancelled,
    TaskExpired,
    TaskFailed,
    TaskNotFound,
    TooManyTasks,
    VideoNotReady,
)
from leyline.logic.ports import MediaStorage, TaskStore
from leyline.media.formats import ACCEPTED_NAMES, ALLOWED_UPLOAD_TYPES, sniff
from leyline.models import (
    ClientBacklog,
    LineSummary,
    Task,
    TaskPage,
    TaskState,
    TaskStatus,
    UploadTicket,
    Webhook,
    from_epoch,
    new_task_id,
    upload_key,
    video_key,
)

# A presigned POST is checked when the upload starts; a slow upload may still land a little later.
UPLOAD_GRACE = timedelta(minutes=5)
UPLOAD_EXPIRED = "UPLOAD_EXPIRED"
# GET /tasks pages.
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
UPLOAD_EXPIRED_MESSAGE = "No image was uploaded before the upload link expired. Please start a new upload."


def create_presigned_upload(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    now: datetime,
    *,
    client: str,
    content_type: str | None = None,
    size: int | None = None,
    owner: str | None = None,
    webhook: Webhook | None = None,
    notify_email: bool = False,
) -> UploadTicket:
    """`content_type` and `size`, when the client declares them, are checked before any task exists."""
    if size is not None:
        _check_size(size, settings.max_upload_bytes, "POST /uploads")
    if content_type is not None and content_type not in ALLOWED_UPLOAD_TYPES:
        raise InvalidImage(
            f"Content type {content_type!r} is not accepted; use one of {', '.join(ALLOWED_UPLOAD_TYPES)}.",
            code="UNSUPPORTED_FORMAT",
            status=415,
        )
    _check_client_allowance(tasks, settings, client, now)
    task = _new_task(settings, client, now, owner, webhook, notify_email)
    post = media.presigned_upload(
        upload_key(task.task_id),
        content_type=content_type,
        max_bytes=settings.max_upload_bytes,
        expires_in=settings.upload_url_seconds,
    )
    tasks.create(task)
    return UploadTicket(
        task_id=task.task_id,
        url=post.url,
        fields=post.fields,
        expires_in=settings.upload_url_seconds,
        max_bytes=settings.max_upload_bytes,
    )


def create_form_upload(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    image: bytes,
    now: datetime,
    *,
    client: str,
    owner: str | None = None,
    webhook: Webhook | None = None,
    notify_email: bool = False,
) -> Task:
    """The form upload (the original API's POST /upload): the bytes go to the same key a presigned upload would use."""
    _check_size(len(image), settings.max_form_upload_bytes, "POST /upload")
    image_format = sniff(image)
    if image_format is None:
        raise InvalidImage(f"The file is not a {ACCEPTED_NAMES} image.", code="UNSUPPORTED_FORMAT", status=415)
    _check_client_allowance(tasks, settings, client, now)
    task = _new_task(settings, client, now, owner, webhook, notify_email)
    tasks.create(task)
    media.put(upload_key(task.task_id), image, image_format.mime_type)
    return task


def get_status(
    tasks: TaskStore, media: MediaStorage, settings: Settings, task_id: str, now: datetime, *, user: str | None = None
) -> TaskStatus:
    """A CANCELLED task has no place in line, no ETA and no error: finished_at says when it was cancelled.
    `user`: the signed-in caller (accounts mode), who sees only their own tasks; None: anyone sees any task."""
    return status_of(tasks, media, settings, shown_task(tasks, settings, task_id, now, user=user), now)


def list_tasks(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    user: str,
    now: datetime,
    *,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> TaskPage:
    """GET /tasks: one page of `user`'s tasks, newest first, each as GET /status shows it. One index read for
    the page and at most one line-summary read for all its waiting tasks, whatever the table holds. Expired
    tasks that retention has not removed yet are left out, as every route treats them as gone."""
    owned = tasks.owned_by(user, limit=limit, cursor=cursor)
    shown = [task for task in owned.tasks if task.expires_at > now.timestamp()]
    for task in shown:
        show(task, settings, now)
    waiting = [task for task in shown if task.state is TaskState.QUEUED and task.queued_seq is not None]
    summary = tasks.line_summary(waiting[0].task_id) if waiting else None  # every copy of the summary is the same
    statuses = tuple(status_of(tasks, media, settings, task, now, summary=summary) for task in shown)
    return TaskPage(tasks=statuses, next_cursor=owned.next_cursor)


def page_size(raw: str | None) -> int:
    """`?limit=`: a whole number from 1 to MAX_PAGE_SIZE; DEFAULT_PAGE_SIZE when absent."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.", code="INVALID_LIMIT")
    return int(raw)


def status_of(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    task: Task,
    now: datetime,
    *,
    summary: LineSummary | None = None,
) -> TaskStatus:
    """The status object of a task already read and shown (shown_task), as GET /status and GET /tasks answer it;
    `summary`: the line summary if already read (else read here when the task waits in line)."""
    queue_position: int | None = None
    eta: float | None = None
    if task.state in (TaskState.QUEUED, TaskState.PROCESSING) and task.queued_seq is not None:
        if summary is None or task.state is TaskState.PROCESSING:
            queue_position, eta = _place_in_line(tasks, settings, task, now)
        else:
            queue_position, eta = _place(task, summary, settings, now)
    video_url = None
    if task.state is TaskState.SUCCESS:
        video_url = _video_url(media, settings, task.task_id)
    error = None
    if task.state is TaskState.FAILURE:
        error = {"code": task.error_code or "INTERNAL_ERROR", "message": task.error_message or "The task failed."}
    return TaskStatus(
        task_id=task.task_id,
        state=task.state,
        progress=task.progress,
        queue_position=queue_position,
        eta_seconds=None if eta is None else math.ceil(eta),
        video_url=video_url,
        error=error,
        created_at=task.created_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
        expires_at=from_epoch(task.expires_at),
        slot=task.slot if task.state is TaskState.PROCESSING else None,
    )


def video_location(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    task_id: str,
    now: datetime,
    *,
    attachment: bool,
    user: str | None = None,
) -> str:
    task = shown_task(tasks, settings, task_id, now, user=user)
    if task.state is TaskState.CANCELLED:
        raise TaskCancelled("This task was cancelled, so it has no video and never will.")
    if task.state is TaskState.FAILURE:
        reason = task.error_message or "The task failed."
        raise TaskFailed(f"This task failed, so it has no video and never will: {reason}")
    if task.state is not TaskState.SUCCESS:
        raise VideoNotReady(f"The video is not ready yet: the task is {task.state.value}.")
    return _video_url(media, settings, task.task_id, attachment=attachment)


def _check_size(size: int, limit: int, route: str) -> None:
    if size <= 0:
        raise InvalidImage("The uploaded file is empty.", code="EMPTY_FILE", status=400)
    if size > limit:
        raise PayloadTooLarge(f"The image is {size} bytes; {route} takes at most {limit} bytes.")


def upload_window_closed_at(task: Task, settings: Settings, now: datetime) -> datetime | None:
    """When the upload window of a task still waiting for its upload closed; None while it is open, or
    once the upload has landed."""
    closed_at = task.created_at + upload_window(settings)
    if task.state is not TaskState.PENDING or now <= closed_at:
        return None
    return closed_at


def _give_up_if_upload_window_closed(task: Task, settings: Settings, now: datetime) -> None:
    """A task whose upload link expired unused can never start: report it as failed, not PENDING forever.

    Only the view changes: the record keeps PENDING until an upload lands too late (the intake then records
    this same FAILURE, logic.jobs.admit_upload) or it expires with its retention period."""
    closed_at = upload_window_closed_at(task, settings, now)
    if closed_at is None:
        return
    task.state = TaskState.FAILURE
    task.finished_at = closed_at
    task.error_code = UPLOAD_EXPIRED
    task.error_message = UPLOAD_EXPIRED_MESSAGE


def _check_client_allowance(tasks: TaskStore, settings: Settings, client: str, now: datetime) -> None:
    """Caps the unfinished tasks of one client, so one client cannot fill the queue for everyone.

    Two requests racing can both pass the check: the cap is a fairness guard, not an exact quota."""
    limit = settings.max_waiting_tasks_per_client
    backlog = tasks.client_backlog(client, pending_since=now - upload_window(settings))
    if backlog.unfinished >= limit:
        wait = _seconds_until_a_slot_frees(tasks, backlog, settings, now)
        raise TooManyTasks(
            f"You already have {limit} videos waiting for their upload or for the model;"
            f" one of them frees its place in about {wait} s.",
            retry_after=wait,
        )


def _seconds_until_a_slot_frees(tasks: TaskStore, backlog: ClientBacklog, settings: Settings, now: datetime) -> int:
    """Retry-After: the soonest moment one of the client's places frees.

    An unused upload ticket frees its place when its upload window closes; a task in line frees one when it
    finishes, at its ETA. Reading each of the client's tasks in line costs at most the cap's number of reads,
    and only on a refusal."""
    candidates: list[float] = []
    if backlog.in_line_ids:
        summary = tasks.line_summary(backlog.in_line_ids[0])  # one read: every copy of the summary is the same
        in_line = (tasks.get(task_id) for task_id in backlog.in_line_ids)
        candidates += [_place(task, summary, settings, now)[1] for task in in_line if task and _is_in_line(task)]
    if backlog.oldest_ticket_at is not None:
        candidates.append((backlog.oldest_ticket_at + upload_window(settings) - now).total_seconds())
    return max(1, math.ceil(min(candidates, default=settings.model_seconds)))


def _is_in_line(task: Task) -> bool:
    """Still waiting for the model or inside it (it may have finished between the index read and this one)."""
    return task.state in (TaskState.QUEUED, TaskState.PROCESSING) and task.queued_seq is not None


def upload_window(settings: Settings) -> timedelta:
    """How long after its creation a task can still receive its upload."""
    return timedelta(seconds=settings.upload_url_seconds) + UPLOAD_GRACE


def _new_task(
    settings: Settings,
    client: str,
    now: datetime,
    owner: str | None,
    webhook: Webhook | None = None,
    notify_email: bool = False,
) -> Task:
    expires = now + timedelta(days=settings.retention_days)
    return Task(
        task_id=new_task_id(),
        state=TaskState.PENDING,
        created_at=now,
        expires_at=int(expires.timestamp()),
        client=client,
        owner=owner,
        webhook=webhook,
        notify_email=notify_email,
    )


def shown_task(tasks: TaskStore, settings: Settings, task_id: str, now: datetime, *, user: str | None = None) -> Task:
    """The task as every route shows it: 404 unknown (or another user's), 410 expired, a PENDING task whose
    upload window closed shown as the FAILURE UPLOAD_EXPIRED it has become."""
    task = find_task(tasks, task_id, now, user=user)
    show(task, settings, now)
    return task


def visible_to(task: Task, user: str | None) -> bool:
    """In accounts mode (`user` given) a user sees their own tasks only; in open mode anyone sees any task."""
    return user is None or task.owner == user


def show(task: Task, settings: Settings, now: datetime) -> None:
    """A task read from the store as the routes show it (see shown_task)."""
    _give_up_if_upload_window_closed(task, settings, now)


def find_task(tasks: TaskStore, task_id: str, now: datetime, *, user: str | None = None) -> Task:
    """The task, if `user` may see it (None: anyone may). Another user's task, or an anonymous one in accounts
    mode, is refused exactly as an unknown one: same error, same words, before anything else is looked at."""
    task = tasks.get(task_id)
    if task is None or not visible_to(task, user):
        raise TaskNotFound(f"No task {task_id} exists.")
    # DynamoDB deletes expired items lazily (within days); until then the task is gone all the same.
    if task.expires_at <= now.timestamp():
        raise TaskExpired(f"Task {task_id} has expired: videos and their tasks are kept for a limited time.")
    return task


def _place_in_line(tasks: TaskStore, settings: Settings, task: Task, now: datetime) -> tuple[int, float]:
    """Tasks ahead, and seconds until this task's video is ready: two reads (the task, one line summary)
    however long the line is."""
    summary = None if task.state is TaskState.PROCESSING else tasks.line_summary(task.task_id)
    return _place(task, summary, settings, now)


def _place(task: Task, summary: LineSummary | None, settings: Settings, now: datetime) -> tuple[int, float]:
    """As _place_in_line, with the line summary already read (a running task needs none)."""
    if task.state is TaskState.PROCESSING:
        return 0, _remaining(task.started_at, settings.model_seconds, now)
    assert summary is not None
    assert task.queued_seq is not None
    return line_position(summary, task.queued_seq, settings.model_seconds, now, slots=settings.model_slots)


def line_position(
    summary: LineSummary, place: int, model_seconds: float, now: datetime, *, slots: int = 1
) -> tuple[int, float]:
    """The tasks that start before the waiting task at `place`, and when its video is ready, with `slots`
    models side by side and a fixed model time T.

    Each slot frees when its running task ends (now for an idle slot); the waiting tasks ahead take the
    slots in order, so the q-th of them (from 0) starts at free[q mod N] + (q div N) * T, and this task,
    the one after the q ahead, the same way: exact while T is fixed (every remaining time is at most T)."""
    waiting = summary.waiting_ahead(place)
    # Only the runs of earlier places: the task itself may have started between its read and the summary's.
    ahead_running = [started for running, started in summary.running.items() if running < place]
    busy = [_remaining(started, model_seconds, now) for started in ahead_running]
    free = sorted(busy + [0.0] * max(0, slots - len(busy)))  # an idle slot is free now
    lanes = len(free) or 1
    start = free[waiting % lanes] + (waiting // lanes) * model_seconds
    return len(ahead_running) + waiting, start + model_seconds


def _remaining(started_at: datetime | None, model_seconds: float, now: datetime) -> float:
    if started_at is None:
        return model_seconds
    return max(0.0, model_seconds - (now - started_at).total_seconds())


def _video_url(media: MediaStorage, settings: Settings, task_id: str, *, attachment: bool = False) -> str:
    return media.presigned_download(
        video_key(task_id), expires_in=settings.video_url_seconds, filename=f"{task_id}.mp4", attachment=attachment
    )
