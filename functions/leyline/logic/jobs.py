"""A job's life outside the model: read from its upload event, admitted to the line, given up on.

Kept apart from leyline.logic.processing so that the functions around the model (IntakeFunction,
DeadLetterFunction) start without importing the encoder, which only ProcessorFunction's layer carries.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from urllib.parse import unquote_plus

from leyline.config import Settings
from leyline.logic.ports import MediaStorage, SlotWakes, TaskStore
from leyline.logic.slots import slot_freed
from leyline.logic.tasks import UPLOAD_EXPIRED, UPLOAD_EXPIRED_MESSAGE, upload_window, upload_window_closed_at
from leyline.models import TaskState, UploadJob, task_id_from_upload_key


class Admission(Enum):
    QUEUED = "queued"  # took its place in line: its job goes to the model
    IN_LINE = "in line"  # already in line (a retry, a repeated S3 event): its job is handed on again
    IGNORED = "ignored"  # no task waits for it (unknown, finished, or its upload window closed): never run


def upload_job(bucket: str, raw_key: str, size: float | None) -> UploadJob:
    """S3 URL-encodes keys in its events; ours are uploads/<task_id>, so anything else is rejected."""
    key = unquote_plus(raw_key)
    return UploadJob(task_id=task_id_from_upload_key(key), bucket=bucket, key=key, size=int(size or 0))


def admit_upload(tasks: TaskStore, media: MediaStorage, settings: Settings, job: UploadJob, now: datetime) -> Admission:
    """A landed upload takes its task's place in line, only while the task waits for it within the upload
    window /status applies. A late upload (to a finished task, or after the window, when /status already
    shows FAILURE UPLOAD_EXPIRED) is ignored and its object removed: a final state stays final."""
    opened_since = now - upload_window(settings)
    if tasks.mark_queued(job.task_id, now, opened_since=opened_since):
        return Admission.QUEUED
    task = tasks.get(job.task_id)
    if task is not None and task.state in (TaskState.QUEUED, TaskState.PROCESSING):
        return Admission.IN_LINE
    if task is not None and task.state is TaskState.PENDING:
        closed_at = upload_window_closed_at(task, settings, now)
        if closed_at is None:  # refused while open: the record changed under us; the queue retries
            raise RuntimeError(f"task {job.task_id} could not be queued; retrying")
        # Recorded as /status has been showing it, so the record too is final from now on.
        tasks.mark_failed(job.task_id, UPLOAD_EXPIRED, UPLOAD_EXPIRED_MESSAGE, closed_at)
    media.delete(job.key)
    return Admission.IGNORED


def give_up(tasks: TaskStore, wakes: SlotWakes, settings: Settings, job: UploadJob, now: datetime) -> bool:
    """The job exhausted its retries. False if its task had already finished (or never existed). A task whose
    run kept crashing held its slot until now: the dispatcher is woken after the write."""
    if not tasks.mark_failed(
        job.task_id,
        "PROCESSING_FAILED",
        "We could not make a video from this image after several attempts. Please try again.",
        now,
    ):
        return False
    slot_freed(wakes, settings)
    return True
