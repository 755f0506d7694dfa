"""The simulated model: one uploaded image in, one video out, in exactly the configured model time."""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from leyline.adapters.media_store import MediaStore
from leyline.adapters.tasks_table import TaskRepository
from leyline.config import Settings
from leyline.errors import InvalidImage
from leyline.logic.jobs import queue_sequence
from leyline.media.isolation import load_image_within
from leyline.media.video import render_video
from leyline.models import TaskState, UploadJob, utc_now, video_key

PROGRESS_TICK_SECONDS = 0.5
# Progress stops short of 100 until the video is stored and the task is SUCCESS.
LAST_WORKING_PERCENT = 99


@dataclass(frozen=True)
class Outcome:
    task_id: str
    state: str
    error_code: str | None = None
    ran: bool = True  # False when there was nothing to do (unknown or already finished task)
    queue_wait_seconds: float | None = None  # from upload seen to model start, for this run


def run_model(tasks: TaskRepository, media: MediaStore, settings: Settings, job: UploadJob) -> Outcome:
    """Runs one task through the model. Permanent input problems end in FAILURE; anything else raises
    so that the queue retries it. Calling it again for a finished task changes nothing."""
    task = tasks.get(job.task_id)
    if task is None:
        return Outcome(job.task_id, "UNKNOWN_TASK", ran=False)
    if task.state.is_final:
        return Outcome(job.task_id, task.state.value, ran=False)
    now = utc_now()
    waited = (now - task.queued_at).total_seconds() if task.queued_at else None
    tasks.mark_processing(job.task_id, queue_sequence(now), now)
    progress = ProgressReporter(tasks, job.task_id, floor=task.progress)
    started = time.monotonic()
    try:
        image = _load_upload(media, settings, job)
        video = _render_in_model_time(image, settings, progress, started)
    except InvalidImage as exc:
        tasks.mark_failed(job.task_id, exc.code, exc.message, utc_now())
        return Outcome(job.task_id, TaskState.FAILURE.value, exc.code, queue_wait_seconds=waited)
    media.put(video_key(job.task_id), video, "video/mp4")
    tasks.mark_succeeded(job.task_id, utc_now())
    return Outcome(job.task_id, TaskState.SUCCESS.value, queue_wait_seconds=waited)


class ProgressStore(Protocol):
    def set_progress(self, task_id: str, progress: int) -> None: ...


class ProgressReporter:
    """Writes progress at least once a second and never lets the user see it go backwards,
    even when a retry after a crash starts the work again."""

    def __init__(self, tasks: ProgressStore, task_id: str, floor: int) -> None:
        self._tasks = tasks
        self._task_id = task_id
        self._shown = floor
        self._written_at = 0.0

    def report(self, fraction: float) -> None:
        percent = max(self._shown, min(LAST_WORKING_PERCENT, math.floor(fraction * 100)))
        now = time.monotonic()
        if percent != self._shown or now - self._written_at >= 1.0:
            self._tasks.set_progress(self._task_id, percent)
            self._shown, self._written_at = percent, now


def _load_upload(media: MediaStore, settings: Settings, job: UploadJob) -> Image.Image:
    # The presigned POST policy caps the size on AWS, but emulators do not enforce it: check the object.
    stored = media.head(job.key)
    if stored is None:
        raise InvalidImage("The uploaded file is gone; upload it again.", code="UPLOAD_MISSING")
    if stored.size > settings.max_upload_bytes:
        raise InvalidImage(
            f"The image is {stored.size} bytes; the limit is {settings.max_upload_bytes} bytes.",
            code="FILE_TOO_LARGE",
        )
    # Decoded in a child under a time budget: no upload may hold the single model for long.
    return load_image_within(media.read(job.key))


def _render_in_model_time(image: Image.Image, settings: Settings, progress: ProgressReporter, started: float) -> bytes:
    """Encodes in the background while the simulated model time runs; done when both are."""
    encoded = _Fraction()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode") as pool:
        video: Future[bytes] = pool.submit(render_video, image, on_progress=encoded.set)
        while True:
            elapsed = time.monotonic() - started
            work = 1.0 if video.done() else encoded.value
            progress.report(min(elapsed / settings.model_seconds, work))
            if video.done() and (elapsed >= settings.model_seconds or video.exception() is not None):
                return video.result()
            time.sleep(min(PROGRESS_TICK_SECONDS, max(0.01, settings.model_seconds - elapsed)))


class _Fraction:
    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value
