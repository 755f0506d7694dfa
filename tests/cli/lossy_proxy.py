"""A TCP proxy on 127.0.0.1 that loses the API's first answer to a submit: a real network error, made on purpose.

The first `POST /uploads` is forwarded whole and its answer read whole, so the API did create the task; then the
client's connection is reset instead of being handed that answer. Every other request passes through. Requests
are read with h11 (so the proxy knows where each ends) and recorded, headers and all.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import h11

_TIMEOUT_SECONDS = 30.0
_READ = 64 * 1024


@dataclass(frozen=True)
class SeenRequest:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    dropped: bool  # its answer was lost on purpose


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[SeenRequest] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # so the accept loop sees the stop flag
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LossyProxy:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=_TIMEOUT_SECONDS)
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port), timeout=_TIMEOUT_SECONDS) as upstream:
            client.settimeout(_TIMEOUT_SECONDS)
            raw, request = _read_request(client)
            with self._lock:
                drop = (request.method, request.target) == (b"POST", b"/uploads") and not any(
                    seen.dropped for seen in self.requests
                )
                self.requests.append(_seen(request, dropped=drop))
            upstream.sendall(raw)
            answer = _read_to_end(upstream)  # the client (urllib) asked for Connection: close
            if drop:
                # SO_LINGER 0: close() sends a RST, so the client sees "connection reset", as on a flaky network.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            with contextlib.suppress(OSError):
                client.sendall(answer)


def _read_request(client: socket.socket) -> tuple[bytes, h11.Request]:
    """The request's bytes, exactly as sent, up to the end of its body, and its parsed head."""
    parser = h11.Connection(h11.SERVER)
    raw = b""
    head: h11.Request | None = None
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            chunk = client.recv(_READ)
            raw += chunk
            parser.receive_data(chunk)
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return raw, head
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("the client closed the connection mid-request")


def _read_to_end(upstream: socket.socket) -> bytes:
    answer = b""
    while chunk := upstream.recv(_READ):
        answer += chunk
    return answer


def _seen(request: h11.Request, *, dropped: bool) -> SeenRequest:
    headers = {name.decode().lower(): value.decode() for name, value in request.headers}
    return SeenRequest(request.method.decode(), request.target.decode(), headers, dropped)
