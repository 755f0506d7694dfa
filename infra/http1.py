"""HTTP/1.1 server connections for the local gateway, parsed by h11.

h11 refuses what request smuggling hides in (two different Content-Lengths, a header line without a
colon or with whitespace before it, unknown transfer codings, a bare CR) and reads Transfer-Encoding
case-insensitively. Two things it tolerates are refused here too, each being read differently by other
parsers: a bare LF as a line end, and obs-fold continuation lines (RFC 9112 lets a server refuse both).
Every request must arrive whole within a time limit, so a client trickling bytes cannot hold a thread.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import h11

# A request head h11 may buffer before it answers 431 (http.server read header lines of up to 64 KiB).
MAX_HEAD_BYTES = 64 * 1024
_RECEIVE_BYTES = 64 * 1024
# After a refusal the client may still be sending; reading (and dropping) a little of it before closing
# lets it read the refusal instead of a connection reset.
_LINGER_SECONDS = 1.0
_LOOSE_LINE = re.compile(rb"(?<!\r)\n|\n[ \t]")  # a bare LF, or an obs-fold line
_VERSIONS = ("1.0", "1.1")
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}


class ProtocolError(Exception):
    """A request the connection cannot carry: `status` is the answer, and the connection closes after it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class Request:
    """A request's head: the target as sent, header names lower-cased, values as latin-1 text."""

    method: str
    target: str
    protocol: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case)."""
        return next((value for key, value in self.headers if key == name), None)


class Connection:
    """One client connection: requests in, responses out.

    A request must arrive whole, head and body, within `timeout` seconds of its first byte; a connection
    with no request under way is closed after `timeout` seconds idle.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._socket = sock
        self._timeout = timeout
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._deadline: float | None = None
        self._head: bytearray | None = None  # the bytes of the head being read, for the line check
        self._method: str | None = None  # of the request being answered
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def next_request(self) -> Request | None:
        """The next request's head; None once the client closed, or stayed idle for the timeout."""
        if self._h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._h11.start_next_cycle()
        pending = self._h11.trailing_data[0]  # what a client pipelined after the last request
        self._head = bytearray(pending)
        self._deadline = time.monotonic() + self._timeout if pending else None
        self._method = None
        event = self._next_event()
        if not isinstance(event, h11.Request):
            return None
        self._method = event.method.decode("ascii")
        head_length = len(self._head) - len(self._h11.trailing_data[0])
        loose = _LOOSE_LINE.search(self._head, 0, head_length)
        self._head = None
        if loose:
            raise ProtocolError(400, "a bare LF or an obs-fold line in the request head")
        protocol = event.http_version.decode()
        if protocol not in _VERSIONS:
            raise ProtocolError(505, f"HTTP/{protocol}")
        return Request(
            method=self._method,
            target=event.target.decode("latin-1"),
            protocol=f"HTTP/{protocol}",
            headers=tuple((name.decode("ascii"), value.decode("latin-1")) for name, value in event.headers),
        )

    def read_body(self) -> bytes:
        """The body of the request whose head next_request returned (framed by its Content-Length)."""
        if self._h11.they_are_waiting_for_100_continue:
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[], reason="Continue")))
        body = bytearray()
        while isinstance(event := self._next_event(), h11.Data):
            body += event.data
        if not isinstance(event, h11.EndOfMessage):
            raise ProtocolError(400, "the connection closed inside the body")
        return bytes(body)

    def respond(self, status: int, headers: Sequence[tuple[str, str]], body: bytes, *, close: bool = False) -> None:
        """Sends a response: `body` is left out where HTTP has none (HEAD, 204, 304); the framing headers are
        this layer's (any in `headers` are dropped). Raises ValueError, having sent nothing, for a status or
        header HTTP cannot carry (h11 validates the response before it changes any state)."""
        fields = [(name, value.strip(" \t")) for name, value in headers if name.lower() not in _FRAMING_HEADERS]
        fields += [("content-length", str(len(body))), ("date", formatdate(usegmt=True))]
        if close:
            fields.append(("connection", "close"))
        try:
            encoded = [(name.encode("ascii"), value.encode("latin-1")) for name, value in fields]
            response = h11.Response(status_code=status, headers=encoded, reason=_phrase(status))
        except (h11.LocalProtocolError, UnicodeEncodeError) as error:
            raise ValueError(f"cannot send status {status} with these headers: {error}") from error
        data = self._h11.send(response) or b""
        if body and status not in (204, 304) and self._method != "HEAD":
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        self._write(data)

    def refuse(self, error: ProtocolError, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        """Answers a request the connection cannot carry (unless a response is under way already)."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.respond(error.status, headers, body, close=True)

    @property
    def reusable(self) -> bool:
        """Whether another request may follow on this connection (keep-alive, the last one read whole)."""
        return self._h11.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}

    def close(self) -> None:
        """Half-closes, then drops what the client still sends for up to _LINGER_SECONDS, so that it reads
        the last response rather than a reset."""
        try:
            self._socket.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            while (remaining := deadline - time.monotonic()) > 0:
                self._socket.settimeout(remaining)
                if not self._socket.recv(_RECEIVE_BYTES):
                    break
        except OSError:  # reset, timed out or gone already
            pass

    def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] | None:
        """h11's next event, reading as needed; None if the connection stayed idle for the timeout."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                raise ProtocolError(error.error_status_hint, str(error)) from error
            if event is not h11.NEED_DATA:
                return event
            if not self._receive():
                return None

    def _receive(self) -> bool:
        """Feeds h11 what arrives next; False if no byte of a request came within the idle timeout."""
        idle = self._deadline is None
        remaining = self._timeout if self._deadline is None else self._deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError(408, f"the request took over {self._timeout:g} s to arrive")
        self._socket.settimeout(remaining)
        try:
            data = self._socket.recv(_RECEIVE_BYTES)
        except TimeoutError:
            if idle:
                return False
            raise ProtocolError(408, f"the request took over {self._timeout:g} s to arrive") from None
        except ConnectionError:
            data = b""  # a reset reads as the client closing
        if idle:
            self._deadline = time.monotonic() + self._timeout
        if self._head is not None:
            self._head += data
        self._h11.receive_data(data)
        return True

    def _write(self, data: bytes) -> None:
        """Sends `data`; a client that does not read it within the timeout is dropped."""
        self._socket.settimeout(self._timeout)
        self._socket.sendall(data)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
