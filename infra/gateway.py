"""The HttpApi, locally: HTTP requests become API Gateway payload format 2.0 events.

Only the routes the template declares are served; CORS follows the HttpApi's CorsConfiguration;
errors are answered the way API Gateway answers them.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.functions import Console, FunctionPool, Invocation, PayloadTooLargeError
from infra.http1 import Connection, ProtocolError, Request
from infra.jwt_authorizer import Authorized, JwtVerifier, Unauthorized
from infra.template import CorsConfig, HttpApiSpec, Stack

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# API Gateway's HTTP API quota "total combined size of request line and header values" (not adjustable).
MAX_REQUEST_LINE_AND_HEADER_VALUES_BYTES = 10240
MAX_HEADERS = 100  # http.server's limit, which the gateway used to have: more is answered 431 too
# How long a request may take to arrive whole, head and body, from its first byte (past it: 408 and the
# connection is closed, so a client trickling bytes holds no thread for long), and how long a connection
# may sit idle between requests. The default is 30 s; Gateway(request_timeout=...) changes it.
REQUEST_TIMEOUT_SECONDS = 30.0
# API Gateway's longest integration wait; also how long a request waits for a free worker.
INTEGRATION_TIMEOUT_SECONDS = 30.0
# Answers whose wording differs from HTTPStatus's phrase on some Python versions (413 is "Content Too Large"
# from 3.13 on); API Gateway's is this.
_MESSAGES = {413: "Request Entity Too Large"}
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
    """A threading TCP server on 127.0.0.1 in front of the functions' pools, speaking HTTP/1.1 through h11."""

    def __init__(
        self,
        stack: Stack,
        api: HttpApiSpec,
        pools: Mapping[str, FunctionPool],
        console: Console,
        port: int,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        aws_endpoint: str | None = None,
    ) -> None:
        """`port` 0 picks a free one (see url); `request_timeout`: see REQUEST_TIMEOUT_SECONDS; `aws_endpoint`: the
        local AWS endpoint, which serves the keys of an AWS token issuer (a Cognito user pool's JWKS)."""
        self.stack = stack
        self.api = api
        self.routes = routes_of(stack)
        self.verifiers = _verifiers(stack, api, aws_endpoint)
        self.pools = pools
        self.console = console
        self.request_timeout = request_timeout
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


def _verifiers(stack: Stack, api: HttpApiSpec, aws_endpoint: str | None) -> dict[str, JwtVerifier]:
    """Route key -> the verifier of the authorizer guarding it; public routes are absent."""
    by_name: dict[str, JwtVerifier] = {}
    guarded: dict[str, JwtVerifier] = {}
    for spec in stack.functions.values():
        for method, path in spec.http_routes:
            authorizer = api.authorizer_of(spec, (method, path))
            if authorizer is None:
                continue
            if authorizer.name not in by_name:
                by_name[authorizer.name] = JwtVerifier(authorizer, aws_endpoint)
            guarded[_route(method, path, spec.logical_id).key] = by_name[authorizer.name]
    return guarded


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver queues only 5 pending connections: a burst of uploads would see connection resets.
    request_queue_size = 128
    gateway: Gateway


class _Handler(socketserver.BaseRequestHandler):
    """One client connection: its requests in turn, until it closes, idles out or a request is refused."""

    request: socket.socket
    server: _Server

    def handle(self) -> None:
        connection = Connection(self.request, self.server.gateway.request_timeout)
        try:
            self._serve(connection)
        except OSError:
            pass  # the client went away, or did not read its answer within the timeout
        finally:
            connection.close()

    def _serve(self, connection: Connection) -> None:
        gateway = self.server.gateway
        try:
            while (request := connection.next_request()) is not None:
                _Exchange(gateway, connection, request, self.client_address[0]).serve()
                if not connection.reusable:
                    return
        except ProtocolError as error:  # what HTTP/1.1 itself refuses: a JSON message like the gateway's others
            gateway.console.line(_SOURCE, f"refused a request: {error.status} {error}")
            connection.refuse(error, [("content-type", "application/json")], _message_body(error.status))


class _Exchange:
    """One request: its API Gateway event, the function's answer, or the gateway's own."""

    def __init__(self, gateway: Gateway, connection: Connection, request: Request, source_ip: str) -> None:
        self.gateway = gateway
        self.connection = connection
        self.request = request
        self.source_ip = source_ip
        self.request_id = str(uuid.uuid4())  # requestContext.requestId and apigw-requestid alike
        self.cors = gateway.api.cors
        self.origin = request.header("origin")

    def serve(self) -> None:
        started = time.monotonic()
        status, function = self._dispatch()
        elapsed = (time.monotonic() - started) * 1000
        via = f" via {function}" if function else ""
        line = f"{self.request.method} {self.request.target} -> {status}{via} ({elapsed:.0f} ms)"
        self.gateway.console.line(_SOURCE, line)

    def _dispatch(self) -> tuple[int, str | None]:
        refusal = _refusal(self.request)
        if refusal is not None:  # answered before the body is read: the connection closes after it
            return self._message(refusal, close=True), None
        body = self.connection.read_body()
        if self.cors and self.request.method == "OPTIONS" and _has(self.request, "access-control-request-method"):
            return self._reply(204, _preflight_headers(self.cors, self.origin), b""), None
        raw_path, raw_query = _split_target(self.request.target)
        found = self.gateway.find_route(self.request.method, raw_path)
        if found is None:
            return self._message(404), None
        route, params = found
        verifier = self.gateway.verifiers.get(route.key)
        authorized = None
        if verifier is not None:  # API Gateway checks the token before the function is invoked
            try:
                authorized = verifier.authorize(self._event_headers())
            except Unauthorized as refused:
                self.gateway.console.line(_SOURCE, f"authorizer refused {route.key}: {refused}")
                return self._message(401, extra={"www-authenticate": refused.header}), None
        event = self._event(route, params, raw_path, raw_query, body, authorized)
        try:
            invocation = self.gateway.pools[route.function].invoke(event, wait_seconds=INTEGRATION_TIMEOUT_SECONDS)
        except PayloadTooLargeError:
            return self._message(413), route.function
        return self._respond(invocation), route.function

    def _event(
        self,
        route: Route,
        params: dict[str, str],
        raw_path: str,
        raw_query: str,
        body: bytes,
        authorized: Authorized | None = None,
    ) -> dict[str, Any]:
        headers = self._event_headers()
        cookies = headers.pop("cookie", None)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": self._request_context(route, raw_path, headers),
            "isBase64Encoded": False,
        }
        if authorized is not None:
            event["requestContext"]["authorizer"] = authorized.request_context()
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

    def _request_context(self, route: Route, raw_path: str, headers: dict[str, str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        host = headers.get("host", "")
        return {
            "accountId": self.gateway.stack.account_id,
            "apiId": self.gateway.api.api_id,
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": self.request.method,
                "path": raw_path,
                "protocol": self.request.protocol,
                "sourceIp": self.source_ip,
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
        for key, value in self.request.headers:
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        host_port = headers.get("host", "").rpartition(":")[2]
        headers.setdefault("x-forwarded-for", self.source_ip)
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-forwarded-port", host_port if host_port.isdigit() else "80")
        return headers

    def _respond(self, invocation: Invocation) -> int:
        if not invocation.ok:
            error_type = (invocation.error or {}).get("errorType", "")
            if error_type in ("Sandbox.Timedout", "TooManyRequestsException"):
                return self._message(503)
            return self._message(500)
        try:
            status, headers, cookies, body = _http_response(invocation)
            if self.cors:  # API Gateway answers CORS itself and ignores the function's CORS headers
                headers = {k: v for k, v in headers.items() if not k.lower().startswith("access-control-")}
                headers.update(_cors_headers(self.cors, self.origin))
            return self._reply(status, headers, body, cookies)
        except (TypeError, ValueError, KeyError) as error:  # ValueError too: a status or header HTTP cannot carry
            self.gateway.console.line(_SOURCE, f"malformed Lambda proxy response: {error}")
            return self._message(500)

    def _message(self, status: int, *, close: bool = False, extra: Mapping[str, str] | None = None) -> int:
        """The gateway's own answer: `{"message": ...}` as API Gateway words it."""
        headers = {
            "content-type": "application/json",
            **(extra or {}),
            **(_cors_headers(self.cors, self.origin) if self.cors else {}),
        }
        return self._reply(status, headers, _message_body(status), close=close)

    def _reply(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        cookies: tuple[str, ...] = (),
        *,
        close: bool = False,
    ) -> int:
        fields = [*headers.items(), *(("set-cookie", cookie) for cookie in cookies)]
        fields.append(("apigw-requestid", self.request_id))
        self.connection.respond(status, fields, body, close=close)
        return status


def _refusal(request: Request) -> int | None:
    """The status API Gateway refuses `request` with before reading its body, if it does."""
    too_long = _request_line_and_header_values_bytes(request) > MAX_REQUEST_LINE_AND_HEADER_VALUES_BYTES
    if too_long or len(request.headers) > MAX_HEADERS:
        return 431
    if _has(request, "transfer-encoding"):
        # Both framings at once is the shape of request smuggling (RFC 9112 section 6.1); a chunked body
        # alone h11 could read, but API Gateway wants a length.
        return 400 if _has(request, "content-length") else 411
    if int(request.header("content-length") or "0") > MAX_BODY_BYTES:  # digits only: h11 checked
        return 413
    return None


def _has(request: Request, name: str) -> bool:
    return request.header(name) is not None


def _message_body(status: int) -> bytes:
    return json.dumps({"message": _MESSAGES.get(status) or HTTPStatus(status).phrase}).encode()


def _split_target(target: str) -> tuple[str, str]:
    """Path and query of the request target, the path as sent (urlsplit would read `//a/b` as host `a`)."""
    if target.lower().startswith(("http://", "https://")):  # absolute form: drop scheme and host
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def _request_line_and_header_values_bytes(request: Request) -> int:
    request_line = f"{request.method} {request.target} {request.protocol}"
    return len(request_line.encode("latin-1")) + sum(len(value.encode("latin-1")) for _, value in request.headers)


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
