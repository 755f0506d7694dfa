"""The simulated model's encode is the run's background work (issue 15): it runs at a lower CPU priority than
the run itself, so that on shared cores (the local stack's N slots on 2 cores) the control work around the
model (progress writes, the ends and starts of the hand-over) is not queued behind the encoders."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leyline.logic.processing import ENCODE_NICENESS, run_model
from leyline.models import TaskState, UploadJob, upload_key
from tests import imagefactory
from tests.fakes import SETTINGS, FakeMediaStorage, FakeSlotWakes, FakeTaskStore, seed_task


def thread_niceness() -> dict[int, int]:
    """Each thread of this process: its nice value (field 19 of /proc/self/task/<tid>/stat, after the name)."""
    niceness = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        niceness[int(task.name)] = int(fields[16])
    return niceness


@pytest.mark.integration  # the model decodes the upload in a forked child
def test_the_encode_runs_at_a_lower_cpu_priority_than_the_run_and_the_run_keeps_its_own():
    # Given a task in the model's line with a real image, and a watcher of every thread's nice value
    now = datetime.now(UTC)
    tasks, media = FakeTaskStore(), FakeMediaStorage()
    task_id = seed_task(tasks, TaskState.PENDING, now)
    assert tasks.mark_queued(task_id, now, opened_since=now - timedelta(hours=1))
    media.put(upload_key(task_id), imagefactory.png(), "image/png")
    run_thread, base = threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[int, int] = {}
    running = threading.Event()
    watcher_ids: list[int] = []

    def watch() -> None:
        watcher_ids.append(threading.get_native_id())
        while running.is_set():
            seen.update({tid: max(nice, seen.get(tid, nice)) for tid, nice in thread_niceness().items()})
            time.sleep(0.005)

    # When the model runs it (1 s of model time, the encode meanwhile)
    running.set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        settings = replace(SETTINGS, model_seconds=1)
        job = UploadJob(task_id=task_id, bucket="media", key=upload_key(task_id), size=1)
        outcome = run_model(tasks, media, settings, job, lambda: datetime.now(UTC), wakes=FakeSlotWakes())
    finally:
        running.clear()
        watcher.join(timeout=10)

    # Then it made its video, and some thread (the encoder's) ran ENCODE_NICENESS lower than the run
    assert outcome.state == "SUCCESS"
    lowered = {tid for tid, nice in seen.items() if nice == min(19, base + ENCODE_NICENESS)}
    assert lowered - {run_thread, *watcher_ids}
    # And the run's own thread kept its priority
    assert seen[run_thread] == base == os.getpriority(os.PRIO_PROCESS, run_thread)
