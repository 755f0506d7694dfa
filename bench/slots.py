"""Throughput against ModelSlots (issue 15): N = 1, 2, 4 simulated models on the local stack, and the error of the
ETA each task showed when it joined the line.

The model is the product's simulated one (a fixed ModelSeconds per image, the video encoded meanwhile), so the
throughput is what the line, the dispatcher and the slots deliver around it, not a real model's. On this
machine's 2 cores the encodes of 4 slots share the CPU with the stack; the model time, being a wait, does not.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from bench.client import StatusClient, epoch, photo_jpeg, upload, wait_final
from bench.stack import bench_stack
from bench.stats import ms, summary

MODEL_SECONDS = 12.0  # so the whole-second ETA (rounded up) can be within 10% of even the first wave's wait
TASKS_PER_SLOT = 4


def slots_throughput(slot_counts: tuple[int, ...], tasks_per_slot: int = TASKS_PER_SLOT) -> dict[str, Any]:
    points = [_one(slots, tasks_per_slot) for slots in slot_counts]
    return {"model_seconds": MODEL_SECONDS, "tasks_per_slot": tasks_per_slot, "points": points}


def _one(slots: int, tasks_per_slot: int) -> dict[str, Any]:
    tasks = slots * tasks_per_slot
    with bench_stack(MODEL_SECONDS, f"slots-{slots}", env={"LEYLINE_MODEL_SLOTS": str(slots)}) as stack:
        poller = StatusClient(stack.api_url)
        _warm_up(stack.api_url, poller, slots)
        # The tickets first, then the files back to back, each task's ETA read as soon as it is in line: the
        # burst lands in a few seconds rather than one task's worth of API calls each.
        tickets = [_ticket(stack.api_url) for _ in range(tasks)]
        joined: list[tuple[str, float, int]] = []  # task, when its first in-line status was read, the ETA it showed
        for task_id, form in tickets:
            _send(form, photo_jpeg())
            joined.append((task_id, *_first_eta(poller, task_id)))
        final = {task_id: wait_final(poller, task_id, timeout=tasks * MODEL_SECONDS + 120) for task_id, _, _ in joined}
        poller.close()
    if any(status["state"] != "SUCCESS" for status in final.values()):
        raise RuntimeError(f"a task failed: {[status['state'] for status in final.values()]}")
    starts = sorted(epoch(status["started_at"]) for status in final.values())
    finishes = sorted(epoch(status["finished_at"]) for status in final.values())
    span = finishes[-1] - starts[0]
    # A slot that frees takes the next start: the (N + i)-th start follows the i-th finish.
    gaps = [start - finish for start, finish in zip(starts[slots:], finishes, strict=False)]
    errors = [
        (eta - (epoch(final[task_id]["finished_at"]) - read_at)) / (epoch(final[task_id]["finished_at"]) - read_at)
        for task_id, read_at, eta in joined
    ]
    return {
        "slots": slots,
        "tasks": tasks,
        "span_s": round(span, 3),
        "videos_per_hour": round(tasks / span * 3600, 1),
        "ideal_videos_per_hour": round(slots * 3600 / MODEL_SECONDS, 1),
        "efficiency": round(tasks * MODEL_SECONDS / slots / span, 4),
        "gap_ms": summary(ms(gaps), 1) if gaps else None,
        "eta_error_pct": summary([abs(error) * 100 for error in errors], 2),
        "eta_error_signed_pct": [round(error * 100, 2) for error in errors],
    }


def _warm_up(api_url: str, poller: StatusClient, slots: int) -> None:
    """One task per slot through every function first, all at once, so that each slot's worker has started
    before the measured burst (a cold worker's init, on a loaded machine, would add seconds to its first run).
    A cold init that overruns Lambda's 10 s on a loaded machine answers 500 once; the pool replaces the
    worker, so try again."""
    tasks = [_upload_retrying(api_url) for _ in range(slots)]
    for task_id in tasks:
        wait_final(poller, task_id)


def _upload_retrying(api_url: str, attempts: int = 3) -> str:
    for _ in range(attempts - 1):
        try:
            return upload(api_url, photo_jpeg())[0]
        except requests.HTTPError:
            time.sleep(1)
    return upload(api_url, photo_jpeg())[0]


def _ticket(api_url: str) -> tuple[str, dict[str, Any]]:
    response = requests.post(f"{api_url}/uploads", json={"content_type": "image/jpeg"}, timeout=30)
    response.raise_for_status()
    return str(response.json()["task_id"]), response.json()["upload"]


def _send(form: dict[str, Any], image: bytes) -> None:
    requests.post(form["url"], data=form["fields"], files={"file": image}, timeout=30).raise_for_status()


def _first_eta(poller: StatusClient, task_id: str) -> tuple[float, int]:
    """When the task's first status with an ETA (in line, or already in a slot) was read, and that ETA."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        read_at = time.time()
        status = poller.status(task_id)
        if status["eta_seconds"] is not None:
            return read_at, int(status["eta_seconds"])
        time.sleep(0.01)
    raise TimeoutError(f"task {task_id} never joined the line")
