"""The network side of webhooks: DNS, and an HTTP(S) POST to the one address the caller checked.

http.client is given the URL's host (for the Host header, SNI and the certificate check) but connects to the
checked address itself, so no second DNS answer (a rebinding) can send the request elsewhere; it follows no
redirect. Standard library only."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit


def resolve(host: str) -> Sequence[str]:
    """Every address of `host` (an IP literal is its own), as the connection would use them."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class PinnedHttpTarget:
    """Satisfies logic.webhooks.WebhookTarget."""

    def post(self, url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        parts = urlsplit(url)
        host = parts.hostname or ""
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = kind(host, parts.port, address, timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)  # a little of the body, then close: receivers answer nothing we use
            return response.status
        except (http.client.HTTPException, ssl.SSLError) as exc:
            raise OSError(str(exc) or type(exc).__name__) from exc
        finally:
            connection.close()
