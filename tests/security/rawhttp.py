"""Requests exactly as written: no client normalises the path, merges slashes or fixes headers."""

from __future__ import annotations

import json
import socket
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    api_url: str, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> RawResponse:
    """One HTTP/1.1 request with `target` sent verbatim (bytes as given, UTF-8 for text), on its own connection."""
    host, port = _address(api_url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return send_bytes(api_url, "\r\n".join(lines).encode() + b"\r\n\r\n" + body)


def send_bytes(api_url: str, request: bytes) -> RawResponse:
    """`request` as it is, then the whole answer until the server closes (bounded by TIMEOUT_SECONDS)."""
    received = _exchange_bytes(api_url, request)
    response, _ = _parse_response(received, bodiless=False)
    return response


def exchange(api_url: str, requests: bytes, bodiless: Collection[int] = ()) -> list[RawResponse]:
    """`requests` (one or several, pipelined) as they are on one connection, then every response the server
    sends until it closes. `bodiless`: the indexes of the responses that have no body (answers to HEAD)."""
    return parse_responses(_exchange_bytes(api_url, requests), bodiless)


def parse_responses(received: bytes, bodiless: Collection[int] = ()) -> list[RawResponse]:
    """Every response in `received`, in order (`bodiless` as for exchange)."""
    responses: list[RawResponse] = []
    while received:
        response, received = _parse_response(received, bodiless=len(responses) in bodiless)
        responses.append(response)
    return responses


def _exchange_bytes(api_url: str, request: bytes) -> bytes:
    with socket.create_connection(_address(api_url), timeout=TIMEOUT_SECONDS) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _parse_response(received: bytes, bodiless: bool) -> tuple[RawResponse, bytes]:
    """The first response in `received` (framed by its Content-Length, else running to the end) and the rest."""
    head, separator, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert separator, f"no end of a response head: {received[:200]!r}"
    assert status_line.startswith("HTTP/1."), f"not an HTTP/1.x response: {received[:200]!r}"
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if bodiless else int(headers.get("content-length", len(rest)))
    return RawResponse(int(status_line.split()[1]), headers, rest[:length]), rest[length:]


def _address(api_url: str) -> tuple[str, int]:
    parts = urlsplit(api_url)
    assert parts.hostname, api_url
    assert parts.port, api_url
    return parts.hostname, parts.port
