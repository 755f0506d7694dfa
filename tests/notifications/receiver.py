"""A webhook receiver on 127.0.0.1 for tests: records every request, answers from a script of responses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived


@dataclass
class Receiver:
    """Answers each request to a path with the next (status, delay seconds) of its script, then 200."""

    url: str
    scripts: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, path: str, *answers: tuple[int, float]) -> str:
        self.scripts[path] = list(answers)
        return f"{self.url}{path}"

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.path == path]


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                script = state.scripts.get(self.path, [])
                status, delay = script.pop(0) if script else (200, 0.0)
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:  # the sender timed out and closed
                pass

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
