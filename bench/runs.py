"""How each benchmark is run: (quick, the results so far) -> its result. Heavy modules are imported on use."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from infra.settings import REPO_ROOT


def encode(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    """bench.encode in its own process: it pins itself to one core."""
    runs = "3" if quick else "5"
    command = [sys.executable, "-m", "bench.encode", "--runs", runs, "--json"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def package(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.package import package_sizes

    return package_sizes()


def coldstart(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.coldstart import coldstart

    return coldstart(samples=3 if quick else 10, warm=10 if quick else 20)


def status(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.status_latency import status_latency

    return status_latency(sequential=200 if quick else 500, clients=20, per_client=10 if quick else 25)


def overhead(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline import idle_overhead

    return idle_overhead(samples=5 if quick else 10, model_seconds=3, every=0.02)


def backlog(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.pipeline import backlog

    return backlog(tasks=8 if quick else 12, model_seconds=3, every=0.02, rounds=1 if quick else 3)


def backlog_scale(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.backlog_scale import backlog_scale

    return backlog_scale(sizes=(10, 100, 1_000) if quick else (10, 100, 1_000, 10_000), samples=100 if quick else 300)


def webhooks(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.webhook_latency import webhook_latency

    return webhook_latency(samples=10 if quick else 30)


def slots(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.slots import slots_throughput

    return slots_throughput(slot_counts=(1, 2, 4), tasks_per_slot=3 if quick else 4)


def cost(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    """Uses this run's (or the JSON's) processor time beyond the model and video size, when there are any."""
    from bench.cost import cost

    overhead_result = data.get("overhead", {}).get("result", {})
    encode_result = data.get("encode", {}).get("result", {})
    beyond = overhead_result.get("beyond_model_time_ms", {}).get("median", 100.0) / 1000
    return cost(beyond_model_seconds=beyond, video_bytes=int(encode_result.get("output_bytes", 1_500_000)))


def accounts(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.accounts import accounts as measured

    return measured(samples=100 if quick else 300)


def backends(quick: bool, data: dict[str, Any]) -> dict[str, Any]:
    from bench.backends import backends

    return backends(starts=2 if quick else 3, flows=3 if quick else 5)
