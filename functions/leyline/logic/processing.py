"""The simulated model: one uploaded image in, one video out, in exactly the configured model time."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from leyline.config import Settings
from leyline.errors import InvalidImage
from leyline.logic.ports import Clock, MediaStorage, SlotWakes, TaskStore
from leyline.logic.slots import slot_freed
from leyline.media.isolation import load_image_within
from leyline.media.video import render_video
from leyline.models import TaskState, UploadJob, video_key

# How often the run writes its progress, and so how soon it notices that its task was cancelled: the write is
# allowed only while the task is PROCESSING. A cancelled run stops within about this time plus one frame.
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


def run_model(
    tasks: TaskStore,
    media: MediaStorage,
    settings: Settings,
    job: UploadJob,
    clock: Clock,
    *,
    wakes: SlotWakes,
    retry: bool = False,
) -> Outcome:
    """Runs one task through the model. Permanent input problems end in FAILURE; anything else raises
    so that the queue retries it. Calling it again for a finished task changes nothing, and a run whose
    task ended otherwise meanwhile (failed, cancelled, deleted) stops at its next progress write and leaves it
    so, with no video and no more model time spent.

    A task the dispatch started in a slot (PROCESSING) keeps that start: its model time counts from the moment
    it took the slot, which is what its ETA said. A `retry` (after a crash) restarts the clock. The run's own
    end (SUCCESS, or FAILURE for a bad input) frees its slot: it wakes the dispatcher right after that write."""
    task = tasks.get(job.task_id)
    if task is None:
        return Outcome(job.task_id, "UNKNOWN_TASK", ran=False)
    if task.state.is_final:
        return Outcome(job.task_id, task.state.value, ran=False)
    now = clock()
    started_at = task.started_at if task.state is TaskState.PROCESSING and not retry else None
    waited = ((started_at or now) - task.queued_at).total_seconds() if task.queued_at else None
    if started_at is None and not tasks.mark_processing(job.task_id, now):
        return _as_it_stands(tasks, job.task_id, ran=False)  # it ended between the read and the write
    progress = ProgressReporter(tasks, job.task_id, floor=task.progress)
    # The slot has been this task's since started_at (a hand-over of milliseconds), never more than its model time.
    in_slot = min(settings.model_seconds, max(0.0, (now - started_at).total_seconds())) if started_at else 0.0
    started = time.monotonic() - in_slot
    try:
        image = _load_upload(media, settings, job)
        video = _render_in_model_time(image, settings, progress, started)
    except RunStopped:
        return _as_it_stands(tasks, job.task_id, waited=waited)
    except InvalidImage as exc:
        if not tasks.mark_failed(job.task_id, exc.code, exc.message, clock()):
            return _as_it_stands(tasks, job.task_id, waited=waited)
        slot_freed(wakes, settings)
        return Outcome(job.task_id, TaskState.FAILURE.value, exc.code, queue_wait_seconds=waited)
    # Storing the video and SUCCESS cannot be one atomic write: store it, then take the transition, and
    # remove the video again if the table refused it (the task ended otherwise while the model ran).
    media.put(video_key(job.task_id), video, "video/mp4")
    if not tasks.mark_succeeded(job.task_id, clock()):
        media.delete(video_key(job.task_id))
        return _as_it_stands(tasks, job.task_id, waited=waited)
    slot_freed(wakes, settings)
    return Outcome(job.task_id, TaskState.SUCCESS.value, queue_wait_seconds=waited)


def _as_it_stands(tasks: TaskStore, task_id: str, *, ran: bool = True, waited: float | None = None) -> Outcome:
    """The task reached a final state some other way (failed, cancelled, deleted) than this run: it stands."""
    task = tasks.get(task_id)
    return Outcome(task_id, task.state.value if task else "UNKNOWN_TASK", ran=ran, queue_wait_seconds=waited)


class RunStopped(Exception):
    """The task left PROCESSING while the model ran (cancelled, failed, deleted): the run stops, storing nothing."""


class ProgressStore(Protocol):
    def set_progress(self, task_id: str, progress: int) -> bool:
        """False when the task is no longer PROCESSING."""
        ...


class ProgressReporter:
    """Writes progress at least every PROGRESS_TICK_SECONDS and never lets the user see it go backwards,
    even when a retry after a crash starts the work again. Raises RunStopped when the store refuses a write."""

    def __init__(self, tasks: ProgressStore, task_id: str, floor: int) -> None:
        self._tasks = tasks
        self._task_id = task_id
        self._shown = floor
        self._written_at = 0.0

    def report(self, fraction: float) -> None:
        percent = max(self._shown, min(LAST_WORKING_PERCENT, math.floor(fraction * 100)))
        now = time.monotonic()
        if percent != self._shown or now - self._written_at >= PROGRESS_TICK_SECONDS:
            if not self._tasks.set_progress(self._task_id, percent):
                raise RunStopped(self._task_id)
            self._shown, self._written_at = percent, now


def _load_upload(media: MediaStorage, settings: Settings, job: UploadJob) -> Image.Image:
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
    """Encodes in the background while the simulated model time runs; done when both are. A stopped run stops
    the encoder too (its progress callback raises at the next frame), so no CPU is spent on a dropped video."""
    encoded = _EncodeProgress()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode") as pool:
        video: Future[bytes] = pool.submit(render_video, image, seconds=settings.video_seconds, on_progress=encoded.set)
        try:
            while True:
                elapsed = time.monotonic() - started
                work = 1.0 if video.done() else encoded.value
                progress.report(min(elapsed / settings.model_seconds, work))
                if video.done() and (elapsed >= settings.model_seconds or video.exception() is not None):
                    return video.result()
                time.sleep(min(PROGRESS_TICK_SECONDS, max(0.01, settings.model_seconds - elapsed)))
        except RunStopped:
            encoded.stop()  # leaving the pool waits for the encoder: it ends at its next frame
            raise


class _EncodeProgress:
    """The encoder's progress, and the switch that aborts it (render_video lets its callback raise)."""

    def __init__(self) -> None:
        self.value = 0.0
        self._stopped = threading.Event()

    def set(self, value: float) -> None:
        if self._stopped.is_set():
            raise RunStopped("the run was stopped")
        self.value = value

    def stop(self) -> None:
        self._stopped.set()
