"""The two local backends side by side: what each installs (and how long it takes), how long the stack takes to
start on it, and what the original curl flow costs on it beyond the model's own time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.stack import bench_stack
from bench.stats import ms, summary
from infra.backends import PYTHON313
from infra.settings import REPO_ROOT

BACKENDS = ("moto", "localstack")
MODEL_SECONDS = 3.0  # the encode of examples/image.png fits inside it, as in the idle-queue overhead
_POLL_SECONDS = 0.02
EXAMPLE = REPO_ROOT / "examples" / "image.png"


def _moto_requirement() -> str:
    """moto's pin, as pyproject.toml's `local` extra declares it."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return next(r for r in pyproject["project"]["optional-dependencies"]["local"] if r.startswith("moto"))


def _install(backend: str) -> dict[str, Any]:
    """What the backend adds to the product's .venv, installed into a fresh venv (pip's cache as it is)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"leyline-bench-install-{backend}-"))
    venv = workdir / "venv"
    if backend == "moto":
        python, what = sys.executable, [_moto_requirement()]
    else:
        if PYTHON313 is None:
            raise RuntimeError("no python3.13 for LocalStack")
        python, what = PYTHON313, ["-r", str(REPO_ROOT / "infra" / "localstack-requirements.txt")]
    began = time.monotonic()
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *what], check=True)
        seconds = time.monotonic() - began
        size = sum(path.stat().st_size for path in venv.rglob("*") if path.is_file() and not path.is_symlink())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"what": " ".join(what).replace(str(REPO_ROOT) + "/", ""), "seconds": round(seconds, 1), "bytes": size}


def _curl_flow(api_url: str) -> tuple[float, float]:
    """The original README's calls, timed: POST /upload, GET /status until SUCCESS, GET /video/<id> followed.
    Returns (the flow's time beyond the model, the part of it outside the task's run: started_at to finished_at
    holds the model and what the encode takes past it, which depends on the CPU, not on the backend)."""
    with requests.Session() as http:
        began = time.monotonic()
        with EXAMPLE.open("rb") as image:
            task_id = http.post(f"{api_url}/upload", files={"image": image}, timeout=30).json()["task_id"]
        deadline = began + MODEL_SECONDS + 60
        while (status := http.get(f"{api_url}/status/{task_id}", timeout=30).json())["state"] != "SUCCESS":
            if status["state"] == "FAILURE" or time.monotonic() > deadline:
                raise RuntimeError(f"task {task_id}: {status['state']}")
            time.sleep(_POLL_SECONDS)
        video = http.get(f"{api_url}/video/{task_id}", timeout=30)
        if video.status_code != 200 or video.content[4:8] != b"ftyp":
            raise RuntimeError(f"task {task_id}: no video ({video.status_code})")
        total = time.monotonic() - began
        run = (_epoch(status["finished_at"]) - _epoch(status["started_at"])).total_seconds()
        return total - MODEL_SECONDS, total - run


def _epoch(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _measure(backend: str, starts: int, samples: int) -> dict[str, Any]:
    start_seconds: list[float] = []
    timed: list[tuple[float, float]] = []
    env = {"LEYLINE_BACKEND": backend}
    for number in range(starts):
        began = time.monotonic()
        with bench_stack(MODEL_SECONDS, f"backend-{backend}", env=env) as stack:
            start_seconds.append(time.monotonic() - began)
            if number == 0:
                _curl_flow(stack.api_url)  # a warm-up: the figures are of warm functions
                timed = [_curl_flow(stack.api_url) for _ in range(samples)]
    return {
        "install": _install(backend),
        "start_s": summary(start_seconds, 2),
        "curl_flow_overhead_ms": summary(ms([beyond_model for beyond_model, _ in timed]), 1),
        "outside_the_run_ms": summary(ms([outside for _, outside in timed]), 1),
    }


def backends(starts: int, flows: int) -> dict[str, Any]:
    return {
        "model_seconds": MODEL_SECONDS,
        "poll_every_ms": _POLL_SECONDS * 1000,
        "backends": {backend: _measure(backend, starts, flows) for backend in BACKENDS},
    }
