"""Requests exactly as written: no client normalises the path, merges slashes or fixes headers."""

from __future__ import annotations

import json
import socket
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
    with socket.create_connection(_address(api_url), timeout=TIMEOUT_SECONDS) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return RawResponse(int(status_line.split()[1]), headers, body[: int(length)] if length else body)


def _address(api_url: str) -> tuple[str, int]:
    parts = urlsplit(api_url)
    assert parts.hostname, api_url
    assert parts.port, api_url
    return parts.hostname, parts.port
