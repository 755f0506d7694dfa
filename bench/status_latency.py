"""GET /status as a polling page sees it: one client in a loop, then many at once.

The task polled is QUEUED behind one in the model: the most work a status costs (the task, the count of
tasks ahead and the head's start time for the ETA). The model's encode is over before measuring starts,
so the figures are of the API path, not of a CPU shared with the encoder.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.client import StatusClient, photo_jpeg, upload
from bench.stack import bench_stack
from bench.stats import ms, summary

# Long enough that the polled task stays QUEUED for the whole measurement.
MODEL_SECONDS = 80
ENCODE_SETTLE_SECONDS = 4.0


def _timed_gets(api_url: str, task_id: str, count: int, start: threading.Barrier | None = None) -> dict[str, Any]:
    client = StatusClient(api_url)
    seconds: list[float] = []
    errors: list[str] = []
    states: set[str] = set()
    if start is not None:
        start.wait()
    for _ in range(count):
        began = time.perf_counter()
        try:
            code, body = client.get(task_id)
        except Exception as error:  # a failed request is an error of the figure, not of the benchmark
            errors.append(repr(error))
            continue
        seconds.append(time.perf_counter() - began)
        if code == 200:
            states.add(body["state"])
        else:
            errors.append(f"HTTP {code}: {body}")
    client.close()
    return {"seconds": seconds, "errors": errors, "states": states}


def status_latency(sequential: int, clients: int, per_client: int) -> dict[str, Any]:
    with bench_stack(MODEL_SECONDS, "status") as stack:
        running, _ = upload(stack.api_url, photo_jpeg())
        waiting, _ = upload(stack.api_url, photo_jpeg())
        poller = StatusClient(stack.api_url)
        deadline = time.monotonic() + 30
        while poller.status(running)["state"] != "PROCESSING" or poller.status(waiting)["state"] != "QUEUED":
            if time.monotonic() > deadline:
                raise TimeoutError("the first task never entered the model with the second one queued behind it")
            time.sleep(0.05)
        time.sleep(ENCODE_SETTLE_SECONDS)
        queued = poller.status(waiting)
        poller.close()
        _timed_gets(stack.api_url, waiting, 20)  # warm the connection path
        one = _timed_gets(stack.api_url, waiting, sequential)
        barrier = threading.Barrier(clients)
        results: list[dict[str, Any]] = []
        threads = [
            threading.Thread(target=lambda: results.append(_timed_gets(stack.api_url, waiting, per_client, barrier)))
            for _ in range(clients)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    many = [second for result in results for second in result["seconds"]]
    errors = [error for result in results for error in result["errors"]]
    states = set().union(one["states"], *(result["states"] for result in results))
    return {
        "polled_task": {"state": queued["state"], "queue_position": queued["queue_position"]},
        "states_seen": sorted(states),
        "sequential_ms": summary(ms(one["seconds"]), 2),
        "sequential_errors": len(one["errors"]),
        "clients": clients,
        "concurrent_ms": summary(ms(many), 2),
        "concurrent_errors": len(errors),
        "concurrent_error_examples": errors[:3],
        "concurrent_requests_per_second": round(len(many) / elapsed, 1),
        "sequential_samples_ms": [round(value, 2) for value in ms(one["seconds"])],
        "concurrent_samples_ms": [round(value, 2) for value in ms(many)],
    }
