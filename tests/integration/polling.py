"""Client-side helpers the integration tests share: upload both ways, poll until a task is done."""

from __future__ import annotations

import time
from typing import Any

import requests

from leyline.states import FINAL_STATES


def upload_form(api_url: str, image: bytes) -> str:
    response = requests.post(f"{api_url}/upload", files={"image": ("photo.png", image)}, timeout=10)
    response.raise_for_status()
    return str(response.json()["task_id"])


def upload_presigned(api_url: str, image: bytes, content_type: str | None = "image/png") -> str:
    body = {"content_type": content_type} if content_type else {}
    # 30 s: a burst of uploads (tests/reliability/test_load.py) meets a 2-core machine running every function
    # of the stack and the emulator they all call (docs/benchmark-findings.md, burst latency)
    ticket = requests.post(f"{api_url}/uploads", json=body, timeout=30)
    ticket.raise_for_status()
    upload = ticket.json()["upload"]
    fields = dict(upload["fields"])
    fields.setdefault("Content-Type", "image/png")
    stored = requests.post(upload["url"], data=fields, files={"file": image}, timeout=30)
    stored.raise_for_status()
    return str(ticket.json()["task_id"])


def status(api_url: str, task_id: str) -> dict[str, Any]:
    response = requests.get(f"{api_url}/status/{task_id}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def poll_until_final(api_url: str, task_id: str, *, timeout: float = 120.0, every: float = 0.1) -> list[dict[str, Any]]:
    """Every status seen, in order, until a final state (leyline.states); fails the test past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen.append(status(api_url, task_id))
        if seen[-1]["state"] in FINAL_STATES:
            return seen
        time.sleep(every)
    raise AssertionError(f"task {task_id} not final after {timeout}s; last status {seen[-1] if seen else None}")
