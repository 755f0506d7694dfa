"""The HttpApi, locally: HTTP requests become API Gateway payload format 2.0 events.

Only the routes the template declares are served; CORS follows the HttpApi's CorsConfiguration;
errors are answered the way API Gateway answers them.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.functions import Console, FunctionPool, Invocation, PayloadTooLargeError
from infra.template import CorsConfig, HttpApiSpec, Stack

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# API Gateway's HTTP API quota "total combined size of request line and header values" (not adjustable).
MAX_REQUEST_LINE_AND_HEADER_VALUES_BYTES = 10240
# How long a connection may sit idle or trickle its request before it is dropped.
SOCKET_TIMEOUT_SECONDS = 30.0
# API Gateway's longest integration wait; also how long a request waits for a free worker.
INTEGRATION_TIMEOUT_SECONDS = 30.0
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
_SOURCE = "HttpApi"


@dataclass(frozen=True)
class Route:
    """One `METHOD /path` route and the function behind it."""

    method: str
    path: str
    function: str
    pattern: re.Pattern[str]
    greedy: bool
    variables: int

    @property
    def key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: unquote(v) for k, v in found.groupdict().items()}


def routes_of(stack: Stack) -> list[Route]:
    """The template's routes, most specific first (API Gateway's route selection order)."""
    routes = [
        _route(method, path, spec.logical_id) for spec in stack.functions.values() for method, path in spec.http_routes
    ]
    return sorted(routes, key=lambda r: (r.path == "$default", r.greedy, r.variables, r.method == "ANY"))


def _route(method: str, path: str, function: str) -> Route:
    if path == "$default":
        return Route(method, path, function, re.compile(r"/.*"), greedy=True, variables=0)
    regex, variables, greedy = "", 0, False
    for literal, name, plus in re.findall(r"([^{]*)(?:\{(\w+)(\+?)\})?", path):
        regex += re.escape(literal)
        if name:
            variables += 1
            greedy = greedy or bool(plus)
            regex += f"(?P<{name}>.+)" if plus else f"(?P<{name}>[^/]+)"
    return Route(method, path, function, re.compile(regex), greedy, variables)


class Gateway:
    """A ThreadingHTTPServer on 127.0.0.1 in front of the functions' pools."""

    def __init__(
        self,
        stack: Stack,
        api: HttpApiSpec,
        pools: Mapping[str, FunctionPool],
        console: Console,
        port: int,
    ) -> None:
        self.stack = stack
        self.api = api
        self.routes = routes_of(stack)
        self.pools = pools
        self.console = console
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.gateway = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # http.server queues only 5 pending connections: a burst of uploads would see connection resets.
    request_queue_size = 128
    gateway: Gateway


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = SOCKET_TIMEOUT_SECONDS
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK
    # (about 40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True

    def do_ANY(self) -> None:
        started = time.monotonic()
        self.request_id = str(uuid.uuid4())  # requestContext.requestId and apigw-requestid alike
        gateway = self.server.gateway
        if _request_line_and_header_values_bytes(self) > MAX_REQUEST_LINE_AND_HEADER_VALUES_BYTES:
            self.close_connection = True  # any body stays unread
            cors = gateway.api.cors
            status = self._message(431, "Request Header Fields Too Large", cors, self.headers.get("origin"))
            function = None
        else:
            status, function = self._dispatch(gateway)
        elapsed = (time.monotonic() - started) * 1000
        via = f" via {function}" if function else ""
        gateway.console.line(_SOURCE, f"{self.command} {self._target()} -> {status}{via} ({elapsed:.0f} ms)")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_ANY

    if not TYPE_CHECKING:  # (hidden from mypy, which would otherwise accept any attribute of the handler)

        def __getattr__(self, name: str) -> Any:
            """Any other method (TRACE, CONNECT, ...) is routed too: an ANY route ($default) takes it."""
            if name.startswith("do_"):
                return self.do_ANY
            raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: do_ANY logs one line per request."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, a header line over 64 KiB, over 100
        headers, a timeout) as a JSON `{"message"}` like the gateway's other answers, not an HTML page."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unreadable request line: answer with a status line all the same
            self.request_version = "HTTP/1.1"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        body = json.dumps({"message": phrase}).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("connection", "close")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)
        self.server.gateway.console.line(_SOURCE, f"refused a request: {code} {message or phrase}")

    def _dispatch(self, gateway: Gateway) -> tuple[int, str | None]:
        cors = gateway.api.cors
        origin = self.headers.get("origin")
        if cors and self.command == "OPTIONS" and "access-control-request-method" in self.headers:
            return self._reply(204, _preflight_headers(cors, origin), b""), None
        raw_path, raw_query = _split_target(self._target())
        found = gateway.find_route(self.command, raw_path)
        if found is None:
            return self._message(404, "Not Found", cors, origin), None
        route, params = found
        declared_length = (self.headers.get("content-length") or "0").strip()
        if not declared_length.isdigit() or not declared_length.isascii():
            self.close_connection = True  # where the body ends is unknown
            return self._message(400, "Bad Request", cors, origin), route.function
        length = int(declared_length)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread
            return self._message(413, "Request Entity Too Large", cors, origin), route.function
        if "chunked" in self.headers.get("transfer-encoding", ""):
            self.close_connection = True
            return self._message(411, "Length Required", cors, origin), route.function
        event = self._event(gateway, route, params, raw_path, raw_query, self.rfile.read(length))
        try:
            invocation = gateway.pools[route.function].invoke(event, wait_seconds=INTEGRATION_TIMEOUT_SECONDS)
        except PayloadTooLargeError:
            return self._message(413, "Request Entity Too Large", cors, origin), route.function
        return self._respond(invocation, cors, origin), route.function

    def _target(self) -> str:
        """The request target as sent: http.server collapses a leading `//` in self.path, API Gateway does not."""
        words = self.requestline.split()
        return words[1] if len(words) == 3 else self.path

    def _event(
        self, gateway: Gateway, route: Route, params: dict[str, str], raw_path: str, raw_query: str, body: bytes
    ) -> dict[str, Any]:
        headers = self._event_headers()
        cookies = headers.pop("cookie", None)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": self._request_context(gateway, route, raw_path, headers),
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = [c.strip() for c in cookies.replace(",", ";").split(";") if c.strip()]
        query = _query_parameters(raw_query)
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            text = _text_body(body, headers.get("content-type", ""), headers.get("content-encoding"))
            event["isBase64Encoded"] = text is None
            event["body"] = base64.b64encode(body).decode() if text is None else text
        return event

    def _request_context(
        self, gateway: Gateway, route: Route, raw_path: str, headers: dict[str, str]
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        host = headers.get("host", "")
        return {
            "accountId": gateway.stack.account_id,
            "apiId": gateway.api.api_id,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": self.command,
                "path": raw_path,
                "protocol": self.request_version,
                "sourceIp": self.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": self.request_id,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }

    def _event_headers(self) -> dict[str, str]:
        """Lower-cased; repeated headers joined with commas; plus what API Gateway adds."""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host_port = headers.get("host", "").rpartition(":")[2]
        headers.setdefault("x-forwarded-for", self.client_address[0])
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-forwarded-port", host_port if host_port.isdigit() else "80")
        return headers

    def _respond(self, invocation: Invocation, cors: CorsConfig | None, origin: str | None) -> int:
        if not invocation.ok:
            error_type = (invocation.error or {}).get("errorType", "")
            if error_type in ("Sandbox.Timedout", "TooManyRequestsException"):
                return self._message(503, "Service Unavailable", cors, origin)
            return self._message(500, "Internal Server Error", cors, origin)
        try:
            status, headers, cookies, body = _http_response(invocation)
        except (TypeError, ValueError, KeyError) as error:
            self.server.gateway.console.line(_SOURCE, f"malformed Lambda proxy response: {error}")
            return self._message(500, "Internal Server Error", cors, origin)
        if cors:  # API Gateway answers CORS itself and ignores the function's CORS headers
            headers = {k: v for k, v in headers.items() if not k.lower().startswith("access-control-")}
            headers.update(_cors_headers(cors, origin))
        return self._reply(status, headers, body, cookies)

    def _message(self, status: int, message: str, cors: CorsConfig | None, origin: str | None) -> int:
        headers = {"content-type": "application/json", **(_cors_headers(cors, origin) if cors else {})}
        return self._reply(status, headers, json.dumps({"message": message}).encode())

    def _reply(self, status: int, headers: Mapping[str, str], body: bytes, cookies: tuple[str, ...] = ()) -> int:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(body)))
        self.send_header("apigw-requestid", self.request_id)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status


def _split_target(target: str) -> tuple[str, str]:
    """Path and query of the request target, the path as sent (urlsplit would read `//a/b` as host `a`)."""
    if target.lower().startswith(("http://", "https://")):  # absolute form: drop scheme and host
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def _request_line_and_header_values_bytes(handler: BaseHTTPRequestHandler) -> int:
    values = handler.headers.values()
    return len(handler.requestline.encode("latin-1", "replace")) + sum(
        len(value.encode("latin-1", "replace")) for value in values
    )


def _http_response(invocation: Invocation) -> tuple[int, dict[str, str], tuple[str, ...], bytes]:
    """Payload format 2.0 response; without a statusCode the whole result is a 200 JSON body."""
    result = invocation.result()
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, {"content-type": "application/json"}, (), (invocation.result_json or "").encode()
    headers = {str(k): _header_value(v) for k, v in (result.get("headers") or {}).items()}
    cookies = tuple(str(cookie) for cookie in result.get("cookies") or ())
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise TypeError(f"body must be a string, got {type(body).__name__}")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return int(result["statusCode"]), headers, cookies, raw


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query_parameters(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def _text_body(body: bytes, content_type: str, content_encoding: str | None) -> str | None:
    """The body as text if API Gateway passes it as text (verified on AWS: text/*, JSON, XML,
    JavaScript, without Content-Encoding); None if it base64-encodes it."""
    media_type = content_type.split(";")[0].strip().lower()
    if content_encoding or not (media_type.startswith("text/") or media_type in _TEXT_TYPES):
        return None
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def _origin_allowed(cors: CorsConfig, origin: str | None) -> bool:
    return origin is not None and any(
        allowed == "*" or fnmatch.fnmatchcase(origin, allowed) for allowed in cors.allow_origins
    )


def _cors_headers(cors: CorsConfig, origin: str | None) -> dict[str, str]:
    if not _origin_allowed(cors, origin):
        return {}
    headers = {"access-control-allow-origin": "*" if cors.allow_origins == ("*",) else str(origin)}
    if cors.expose_headers:
        headers["access-control-expose-headers"] = ",".join(cors.expose_headers)
    if cors.allow_credentials:
        headers["access-control-allow-credentials"] = "true"
    return headers


def _preflight_headers(cors: CorsConfig, origin: str | None) -> dict[str, str]:
    headers = _cors_headers(cors, origin)
    if headers:
        headers["access-control-allow-methods"] = ",".join(cors.allow_methods)
        if cors.allow_headers:
            headers["access-control-allow-headers"] = ",".join(cors.allow_headers)
        if cors.max_age is not None:
            headers["access-control-max-age"] = str(cors.max_age)
    return headers
