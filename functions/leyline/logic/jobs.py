"""A job's life outside the model: read from its upload event, placed in line, given up on.

Kept apart from leyline.logic.processing so that the functions around the model (IntakeFunction,
DeadLetterFunction) start without importing the encoder, which only ProcessorFunction's layer carries.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_plus

from leyline.adapters.tasks_table import TaskRepository
from leyline.models import UploadJob, task_id_from_upload_key


def upload_job(bucket: str, raw_key: str, size: float | None) -> UploadJob:
    """S3 URL-encodes keys in its events; ours are uploads/<task_id>, so anything else is rejected."""
    key = unquote_plus(raw_key)
    return UploadJob(task_id=task_id_from_upload_key(key), bucket=bucket, key=key, size=int(size or 0))


def retry_backoff_seconds(attempt: int) -> int:
    """How long a failed message stays hidden before its next attempt: 2, 4, 8 s (attempt = receive count).
    Short, because one FIFO message group is one line: a failed message holds up everything behind it."""
    return 2**attempt


def queue_sequence(moment: datetime) -> int:
    """Place in line: microseconds since the epoch at which the upload was seen."""
    return int(moment.timestamp() * 1_000_000)


def take_place_in_line(tasks: TaskRepository, job: UploadJob, now: datetime) -> bool:
    return tasks.mark_queued(job.task_id, queue_sequence(now), now)


def give_up(tasks: TaskRepository, job: UploadJob, now: datetime) -> bool:
    """The job exhausted its retries. False if its task had already finished (or never existed)."""
    return tasks.mark_failed(
        job.task_id,
        "PROCESSING_FAILED",
        "We could not make a video from this image after several attempts. Please try again.",
        now,
    )
