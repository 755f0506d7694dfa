"""Request smuggling and slow clients at the local gateway, over raw sockets.

Each hostile request is followed on its connection by a well-formed probe request. A gateway that reads
the request the way a strict HTTP/1.1 parser (a proxy in front of it, say) does answers it once and closes
the connection; a gateway that reads it another way answers twice, the second answer being to bytes the
client sent as a body or as a header (a desynchronised connection).
"""

from __future__ import annotations

import io
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.functions import Console
from infra.gateway import Gateway
from infra.settings import Settings
from tests.security.rawhttp import RawResponse, exchange, parse_responses

pytestmark = pytest.mark.integration

FIXTURE_TEMPLATE = Path(__file__).parent.parent / "infra" / "fixtures" / "template.yaml"
PROBE = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
# POST /openapi.json: a route ApiFunction answers 405 without side effects, should a request get that far.
POST = b"POST /openapi.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

HOSTILE_REQUESTS = {
    "Transfer-Encoding: Chunked, mixed case": (POST + b"Transfer-Encoding: Chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
    "Transfer-Encoding, then Content-Length": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "Content-Length, then Transfer-Encoding in mixed case": (
        POST + b"Content-Length: 5\r\nTransfer-Encoding: cHuNkEd\r\n\r\n0\r\n\r\n",
        400,
    ),
    "a Transfer-Encoding other than chunked": (
        POST + b"Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}",
        501,
    ),
    "two different Content-Lengths": (POST + b"Content-Length: 2\r\nContent-Length: 41\r\n\r\n{}", 400),
    "one Content-Length of two values": (POST + b"Content-Length: 2, 41\r\n\r\n{}", 400),
    "a header line without a colon": (POST + b"X-No-Colon\r\nContent-Length: 2\r\n\r\n{}", 400),
    "whitespace before a colon": (POST + b"Content-Length : 2\r\n\r\n{}", 400),
    "whitespace before the colon of Transfer-Encoding": (
        POST + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    "an obs-fold continuation line": (POST + b"X-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", 400),
    "an obs-fold continuing Transfer-Encoding": (
        POST + b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bare LF line ends": (b"GET /openapi.json HTTP/1.1\nHost: x\n\n", 400),
    "a bare LF inside the head": (POST + b"X-A: 1\nContent-Length: 2\r\n\r\n{}", 400),
    "a bare CR inside the head": (POST + b"X-A: 1\rContent-Length: 2\r\n\r\n{}", 400),
}


def assert_one_refusal(responses: list[RawResponse], status: int) -> None:
    """Exactly one answer on the connection: the gateway's `{"message"}` refusal with `status`."""
    assert [response.status for response in responses] == [status], [(r.status, r.body[:80]) for r in responses]
    (response,) = responses
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"message"}
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(("request_bytes", "status"), HOSTILE_REQUESTS.values(), ids=HOSTILE_REQUESTS.keys())
def test_requests_whose_framing_is_ambiguous_are_refused_and_the_connection_closed(stack, request_bytes, status):
    # Given a request whose end (or whose headers) parsers could read differently, then a probe request
    # When both are sent on one connection
    responses = exchange(stack.api_url, request_bytes + PROBE)

    # Then the gateway refuses the first with its JSON message and closes: nothing after it is read as a request
    assert_one_refusal(responses, status)


def test_pipelined_keep_alive_requests_are_each_answered_in_order(stack):
    # Given five well-formed requests sent at once on one connection: bodies framed by Content-Length,
    # and a HEAD (whose answer has no body) before the last
    requests = [
        b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /status/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\n\r\n",
        POST + b'Content-Length: 14\r\n\r\n{"size": 1234}',
        b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n",
        PROBE,
    ]

    # When they are sent
    responses = exchange(stack.api_url, b"".join(requests), bodiless={3})

    # Then each gets its own answer, in order, and the HEAD's answer carries no body
    # (a body after it would be read as the next status line)
    statuses = [response.status for response in responses]
    assert statuses[:3] == [200, 404, 405], statuses
    assert statuses[3] in (200, 405), statuses  # HEAD reaches ApiFunction as HEAD; it may or may not take it
    assert statuses[4] == 200, statuses
    assert responses[0].json()["openapi"].startswith("3.1")
    assert responses[1].json()["error"]["code"] == "TASK_NOT_FOUND"
    assert responses[2].json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert responses[4].json() == responses[0].json()


# ---- slow clients --------------------------------------------------------------------------------
REQUEST_TIMEOUT_SECONDS = 2.0
TRICKLE_INTERVAL_SECONDS = 0.5  # a byte more often than the timeout: each read gets something


@pytest.fixture
def quick_gateway() -> Iterator[Gateway]:
    """The fixture template's gateway alone, with a 2 s request timeout instead of 30 s. It has no
    functions: the requests here never reach one (404 is the gateway's own answer)."""
    stack = Settings(template=FIXTURE_TEMPLATE).load_stack()
    assert stack.http_api is not None
    gateway = Gateway(stack, stack.http_api, {}, Console(io.StringIO()), 0, request_timeout=REQUEST_TIMEOUT_SECONDS)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def trickle(url: str, request: bytes) -> tuple[int, bytes]:
    """Sends `request` a byte at a time, TRICKLE_INTERVAL_SECONDS apart, until the server answers or closes.
    Returns how many bytes were sent and everything the server sent back until it closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        for sent in range(1, len(request) + 1):
            try:
                connection.sendall(request[sent - 1 : sent])
            except (BrokenPipeError, ConnectionResetError):
                return sent - 1, b""
            readable, _, _ = select.select([connection], [], [], TRICKLE_INTERVAL_SECONDS)
            if readable:
                received = b""
                while chunk := connection.recv(65536):  # until the server closes (each read bounded by 10 s)
                    received += chunk
                return sent, received
    return len(request), b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"x" * 30 + b"\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n" + b"x" * 30,
    ],
    ids=["headers", "body"],
)
def test_a_request_trickling_in_is_dropped_at_the_request_timeout(quick_gateway, request_bytes):
    # Given a gateway whose requests must arrive whole within 2 s
    # When a client trickles a request (its headers, or its body) a byte every 0.5 s: 20 s or more in all
    sent, received = trickle(quick_gateway.url, request_bytes)

    # Then the gateway answers 408 with its JSON message and closes the connection before the request is whole
    assert sent < len(request_bytes)
    (response,) = parse_responses(received)
    assert response.status == 408
    assert response.json() == {"message": "Request Timeout"}

    # And it goes on serving other clients
    (other,) = exchange(quick_gateway.url, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (other.status, other.json()) == (404, {"message": "Not Found"})
