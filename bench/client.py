"""The user's side of the API: presigned uploads and a light status poller over keep-alive HTTP."""

from __future__ import annotations

import http.client
import io
import json
import time
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.encode import photo_like_image
from leyline.states import FINAL_STATES


@cache
def photo_jpeg() -> bytes:
    """A 1920x1080 JPEG with detail at every scale, like a phone photo (about 1 MB)."""
    buffer = io.BytesIO()
    photo_like_image().save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def upload(api_url: str, image: bytes) -> tuple[str, float]:
    """Creates a task and uploads `image` with its presigned POST; returns the task id and the wall-clock
    time (time.time()) at which the storage answered the upload."""
    ticket = requests.post(f"{api_url}/uploads", json={"content_type": "image/jpeg"}, timeout=30)
    ticket.raise_for_status()
    body = ticket.json()
    stored = requests.post(body["upload"]["url"], data=body["upload"]["fields"], files={"file": image}, timeout=30)
    stored.raise_for_status()
    return str(body["task_id"]), time.time()


class StatusClient:
    """GET /status/<id> on one persistent connection, as a browser polling the page would."""

    def __init__(self, api_url: str, timeout: float = 30.0, headers: dict[str, str] | None = None) -> None:
        """`headers`: sent with every request (e.g. Authorization in accounts mode)."""
        parts = urlsplit(api_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout
        self._headers = headers or {}
        self._connection: http.client.HTTPConnection | None = None

    def get(self, task_id: str) -> tuple[int, dict[str, Any]]:
        """The HTTP status code and JSON body; reconnects once if the server closed the connection."""
        return self.get_path(f"/status/{task_id}")

    def get_path(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET `path` on the connection: the HTTP status code and JSON body."""
        for attempt in (1, 2):
            connection = self._connection or http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._connection = connection
            try:
                connection.request("GET", path, headers=self._headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, json.loads(body)
        raise AssertionError("unreachable")

    def status(self, task_id: str) -> dict[str, Any]:
        code, body = self.get(task_id)
        if code != 200:
            raise RuntimeError(f"GET /status/{task_id} answered {code}: {body}")
        return body

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def epoch(iso_time: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 time from the status JSON."""
    if iso_time is None:
        raise ValueError("the task has no such time yet")
    return datetime.fromisoformat(iso_time).timestamp()


def wait_final(poller: StatusClient, task_id: str, *, every: float = 0.05, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = poller.status(task_id)
        if status["state"] in FINAL_STATES:
            return status
        time.sleep(every)
    raise TimeoutError(f"task {task_id} not finished after {timeout} s")
