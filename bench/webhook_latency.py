"""Webhook delivery latency: from a task's SUCCESS (its finished_at, written by the model) to the moment a
receiver on 127.0.0.1 answers 200 to the signed task.succeeded delivery.

The path measured: TasksTable's stream -> TaskEventsFunction -> TaskEventBus -> WebhookRule -> WebhookQueue
-> WebhookFunction -> the receiver. Tasks run one at a time (the line is empty), so the figure is the
notification path's own, not a queue's."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from bench.client import photo_jpeg
from bench.stack import bench_stack
from bench.stats import ms, summary
from leyline.models import parse_iso

MODEL_SECONDS = 1.0


class _Receiver:
    def __init__(self) -> None:
        self.answered: dict[str, float] = {}  # task id -> time.time() when the 200 was sent
        self.ready = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.ready:
                    receiver.answered[body["data"]["task_id"]] = time.time()
                    receiver.ready.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, task_id: str, timeout: float) -> float:
        with self.ready:
            if not self.ready.wait_for(lambda: task_id in self.answered, timeout):
                raise TimeoutError(f"no webhook for {task_id} within {timeout} s")
            return self.answered[task_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def webhook_latency(samples: int) -> dict[str, Any]:
    receiver = _Receiver()
    image = photo_jpeg()
    latencies: list[float] = []
    try:
        with bench_stack(MODEL_SECONDS, "webhooks") as stack:
            for _ in range(samples + 1):  # the first warms every function of the path: not counted
                ticket = requests.post(
                    f"{stack.api_url}/uploads",
                    json={"content_type": "image/jpeg", "webhook_url": receiver.url},
                    timeout=30,
                ).json()
                requests.post(
                    ticket["upload"]["url"], data=ticket["upload"]["fields"], files={"file": image}, timeout=30
                )
                answered = receiver.wait_for(ticket["task_id"], timeout=120)
                final = requests.get(f"{stack.api_url}/status/{ticket['task_id']}", timeout=30).json()
                finished = parse_iso(final["finished_at"])
                assert finished is not None
                latencies.append(answered - finished.timestamp())
    finally:
        receiver.close()
    return {"model_seconds": MODEL_SECONDS, "samples": samples, "latency_ms": summary(ms(latencies[1:]), 1)}
