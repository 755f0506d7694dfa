"""GET /status of the last waiting task as the line grows to 10, 100, 1,000 and 10,000 tasks (issue 13).

One task is uploaded through the API and enters the model (80 s, the template's longest model time; it may
finish while the longest line is built, and then the line simply has no running head). The rest are written
through the intake's own path, the adapter's create and mark_queued (the write IntakeFunction makes for each
landed upload), from many clients (127.0.0.x), without the model-side traffic of real uploads: 10,000 real
uploads would take far longer to build here than the measurement itself. Their jobs never reach the model's
queue, so nothing behind the head ever starts. The DynamoDB requests each status call makes are counted from
the emulator's request recorder (moto), switched on only while those calls are counted.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import requests

from bench.client import StatusClient, photo_jpeg, upload
from bench.cost import _entries
from bench.stack import bench_stack
from bench.stats import ms, percentile, summary
from infra.testing import RunningStackError

MODEL_SECONDS = 80  # the template's maximum: the head runs while the short lines are measured
CLIENTS = 250  # 127.0.0.1 .. 127.0.0.250
COUNTED_CALLS = 20
READS = ("GetItem", "BatchGetItem", "Query", "Scan")


def backlog_scale(sizes: tuple[int, ...], samples: int) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    recording = Path(tempfile.mkdtemp(prefix="leyline-bench-backlog-scale-")) / "moto_recording.jsonl"
    recorder = {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)}
    result: dict[str, Any] = {}
    try:
        return _measured(sizes, samples, recording, recorder, result)
    except RunningStackError as error:
        if not result:
            raise
        # Measured in full; only the emulator's exit after a large table was slow: kept, and said.
        return result | {"stack_stop": str(error).splitlines()[0]}


def _measured(
    sizes: tuple[int, ...], samples: int, recording: Any, recorder: dict[str, str], result: dict[str, Any]
) -> dict[str, Any]:
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.models import Task, TaskState, new_task_id, utc_now

    with bench_stack(MODEL_SECONDS, "backlog-scale", env=recorder) as stack:
        _recorder(stack.aws_endpoint, "stop-recording")
        head, _ = upload(stack.api_url, photo_jpeg())
        poller = StatusClient(stack.api_url)
        deadline = time.monotonic() + 60
        while poller.status(head)["state"] != "PROCESSING":
            if time.monotonic() > deadline:
                raise TimeoutError("the first task never entered the model")
            time.sleep(0.05)
        tasks = TaskRepository(stack.physical_name("TasksTable"), stack.client("dynamodb"))
        waiting, points = 1, []  # the head counts as in line: it is ahead of everyone
        for size in sizes:
            began = time.perf_counter()
            last = ""
            while waiting < size:
                now = utc_now()
                task = Task(
                    task_id=new_task_id(),
                    state=TaskState.PENDING,
                    created_at=now,
                    expires_at=int((now + timedelta(days=1)).timestamp()),
                    client=f"127.0.0.{waiting % CLIENTS + 1}",
                )
                tasks.create(task)
                if not tasks.mark_queued(task.task_id, now, opened_since=now - timedelta(hours=1)):
                    raise RuntimeError(f"task {task.task_id} could not be queued")
                last, waiting = task.task_id, waiting + 1
            built = time.perf_counter() - began
            shown = poller.status(last)
            for _ in range(20):  # warm the path
                poller.get(last)
            seconds = []
            for _ in range(samples):
                start = time.perf_counter()
                code, _ = poller.get(last)
                seconds.append(time.perf_counter() - start)
                if code != 200:
                    raise RuntimeError(f"GET /status answered {code}")
            points.append(
                {
                    "waiting": size,
                    "queue_position": shown["queue_position"],
                    "eta_seconds": shown["eta_seconds"],
                    "latency_ms": summary(ms(seconds)) | {"p95": round(percentile(ms(seconds), 95), 4)},
                    "build_seconds": round(built, 1),
                    "requests_per_call": _requests_per_call(stack.aws_endpoint, poller, last, recording),
                }
            )
        poller.close()
        result.update(model_seconds=MODEL_SECONDS, clients=CLIENTS, samples=samples, points=points)
    return result


def _requests_per_call(endpoint: str, poller: StatusClient, task_id: str, recording: Any) -> dict[str, float]:
    """DynamoDB requests per status call, by operation: each GetItem reads one item; a Query reads every item it
    scans (none are left since issue 13)."""
    _recorder(endpoint, "reset-recording")
    _recorder(endpoint, "start-recording")
    for _ in range(COUNTED_CALLS):
        poller.get(task_id)
    _recorder(endpoint, "stop-recording")
    counts: Counter[str] = Counter()
    for entry in _entries(recording):
        target = entry["target"] or ""
        operation = target.split(".")[-1]
        if target.startswith("DynamoDB") and operation in READS:  # the model's progress writes go on meanwhile
            counts[operation] += 1
    return {operation: count / COUNTED_CALLS for operation, count in sorted(counts.items())}


def _recorder(endpoint: str, action: str) -> None:
    requests.post(f"{endpoint}/moto-api/recorder/{action}", timeout=10).raise_for_status()
