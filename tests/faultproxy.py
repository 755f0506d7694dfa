"""A fault-injection proxy for the local stack's tests (a small, local-only Toxiproxy); not part of the runtime.

    python -m tests.faultproxy --target http://127.0.0.1:4566 --port 4567 [--parent PID]

It is a threaded HTTP reverse proxy on 127.0.0.1 in front of an AWS endpoint (the embedded moto
server). infra.testing's RunningStack(faults=True) starts it in a process of its own and points the
*functions'* AWS endpoint at it (LEYLINE_FUNCTIONS_AWS_ENDPOINT), so every AWS call a handler makes
passes through it; the stack's own provisioning and its SQS pollers keep talking to the endpoint
directly (Lambda's poller is not the function's code). Requests are forwarded untouched (method,
path, headers including Host, body streamed both ways) unless a fault matches them.

Presigned URLs the functions hand out are signed for the endpoint the functions use, so they point
here too: they are forwarded like the rest, and only a fault naming their operation (e.g. s3
`PostObject`, `GetObject` with a `match` on the key) touches them.

Control API, on the proxy itself (no AWS request can reach these paths: S3 bucket names cannot
contain underscores):

  POST   /__leyline/faults   {"service": "s3" | "dynamodb" | "sqs" | ...,
                              "operation": "GetObject" | "UpdateItem" | ... (omitted: any operation),
                              "status": 503, "code": "SlowDown", "message": "..." (defaults per service),
                              "count": N (default 1; null: every matching request until cleared),
                              "match": "a substring of 'METHOD path?query' or of the request body",
                                       or a list of substrings that must all occur}
                             -> 201 with the fault (its "id")
  GET    /__leyline/faults   -> {"faults": [{..., "hits", "remaining"}], "requests": {"s3:GetObject": n, ...}}
  DELETE /__leyline/faults   -> clears every fault and the request counts

A matching request is answered by the proxy with the error body AWS would send for that protocol
(S3 XML `<Error><Code>SlowDown</Code>...`, DynamoDB JSON `{"__type": "com.amazonaws.dynamodb.v20120810#
ProvisionedThroughputExceededException", ...}`, SQS JSON with `x-amzn-query-error`), and never
reaches the endpoint. Request bodies up to MATCH_BODY_LIMIT are read before matching (DynamoDB and
SQS calls are small JSON documents); larger ones (S3 uploads) are streamed and matched by path only.

What it does (faults armed, cleared, injected) is written to stdout, one `[faults] ...` line each, in one
write per line so that it can share an appended log file with the stack. It stops on SIGINT or SIGTERM,
and with --parent PID also when that process, the one that started it, dies.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import signal
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONTROL_PATH = "/__leyline/faults"
MATCH_BODY_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
_UPSTREAM_TIMEOUT_SECONDS = 120.0
_PARENT_CHECK_SECONDS = 0.5
# Connection-level headers: each hop manages its own (RFC 9110 section 7.6.1). Expect is answered here.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}

# What a fault answers when the caller gives no status, code or message.
DEFAULT_ERRORS = {
    "s3": (503, "SlowDown"),
    "dynamodb": (400, "ProvisionedThroughputExceededException"),
    "sqs": (400, "ThrottlingException"),
}
_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "ProvisionedThroughputExceededException": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API."
    ),
    "ThrottlingException": "Rate exceeded",
    "InternalError": "We encountered an internal error. Please try again.",
    "InternalServerError": "Internal server error",
    "ServiceUnavailable": "Service is unable to handle request.",
}
# S3 sub-resources (query keys without a value) that name an operation, e.g. ?tagging -> GetObjectTagging.
_S3_SUBRESOURCES = {
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "versioning",
    "website",
}
_S3_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}


class FaultSpecError(ValueError):
    """A fault the control API cannot accept."""


@dataclass
class Fault:
    id: str
    service: str
    operation: str | None  # None: any operation of the service
    status: int
    code: str
    message: str
    count: int | None  # None: until cleared
    match: list[str]  # every one must occur in the request's line or body
    hits: int = 0

    @classmethod
    def from_spec(cls, spec: Any) -> Fault:
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault is a JSON object")
        unknown = set(spec) - {"service", "operation", "status", "code", "message", "count", "match"}
        if unknown:
            raise FaultSpecError(f"unknown fields {sorted(unknown)}")
        service = spec.get("service")
        if not isinstance(service, str) or not service:
            raise FaultSpecError("'service' is required, e.g. s3, dynamodb or sqs")
        service = service.lower()
        default_status, default_code = DEFAULT_ERRORS.get(service, (500, "InternalError"))
        status, code, count = spec.get("status", default_status), spec.get("code", default_code), spec.get("count", 1)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultSpecError("'status' must be an HTTP error status (400-599)")
        if not isinstance(code, str) or not code:
            raise FaultSpecError("'code' must be an error code such as SlowDown")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultSpecError("'count' must be a positive integer, or null for 'until cleared'")
        for name in ("operation", "message"):
            if spec.get(name) is not None and not isinstance(spec[name], str):
                raise FaultSpecError(f"'{name}' must be a string")
        match = spec.get("match") or []
        match = [match] if isinstance(match, str) else match
        if not isinstance(match, list) or not all(isinstance(part, str) and part for part in match):
            raise FaultSpecError("'match' must be a string or a list of non-empty strings")
        return cls(
            id=uuid.uuid4().hex[:12],
            service=service,
            operation=spec.get("operation") or None,
            status=status,
            code=code,
            message=spec.get("message") or _MESSAGES.get(code, f"Injected fault {code}"),
            count=count,
            match=match,
        )

    @property
    def remaining(self) -> int | None:
        return None if self.count is None else self.count - self.hits

    def applies_to(self, service: str, operation: str, text: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and self.service == service
            and self.operation in (None, operation)
            and all(part in text for part in self.match)
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "remaining": self.remaining}


class FaultTable:
    """The faults in force and how many requests of each operation went by. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: Counter[str] = Counter()

    def add(self, spec: Any) -> Fault:
        fault = Fault.from_spec(spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    def take(self, service: str, operation: str, text: str) -> tuple[Fault, int] | None:
        """Counts the request; the first fault that applies to it, with its hit number, uses one of its count."""
        with self._lock:
            self._requests[f"{service}:{operation}"] += 1
            for fault in self._faults:
                if fault.applies_to(service, operation, text):
                    fault.hits += 1
                    return fault, fault.hits
        return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": [fault.to_json() for fault in self._faults], "requests": dict(self._requests)}


# ---- which AWS operation a request is --------------------------------------------------------------
def identify(method: str, path: str, query: str, headers: Any, body: bytes | None) -> tuple[str, str]:
    """(service, operation) of an AWS request: X-Amz-Target for JSON protocols (DynamoDB, SQS), the
    form's Action for query protocols, else S3's REST shape (method, path, sub-resource)."""
    service = _signing_service(headers.get("Authorization"), query)
    target = headers.get("X-Amz-Target")
    if target:
        prefix, _, operation = target.partition(".")
        if service is None:
            service = "dynamodb" if prefix.startswith("DynamoDB") else "sqs" if prefix == "AmazonSQS" else prefix
        return service.lower(), operation
    if body is not None and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        action = parse_qs(body.decode(errors="replace")).get("Action")
        if action and service not in (None, "s3"):
            return service, action[0]
    return service or "s3", _s3_operation(method, path, query, headers)


def _signing_service(authorization: str | None, query: str) -> str | None:
    """The service of the SigV4 credential scope (<key>/<date>/<region>/<service>/aws4_request)."""
    credential = None
    if authorization and "Credential=" in authorization:
        credential = authorization.split("Credential=", 1)[1].split(",", 1)[0]
    elif "X-Amz-Credential" in query:  # a presigned URL
        credential = parse_qs(query).get("X-Amz-Credential", [""])[0]
    scope = (credential or "").strip().split("/")
    return scope[3].lower() if len(scope) == 5 else None


def _s3_operation(method: str, path: str, query: str, headers: Any) -> str:
    bucket, _, key = path.lstrip("/").partition("/")
    params = parse_qs(query, keep_blank_values=True)
    sub = next((name for name in params if name in _S3_SUBRESOURCES), None)
    verb = _S3_VERBS.get(method, method.title())
    if not bucket:
        return "ListBuckets" if method == "GET" else verb
    if method == "OPTIONS":
        return "PreflightRequest"
    if key:
        if "uploadId" in params:
            return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload"}.get(
                method, "ListParts"
            )
        if "uploads" in params:
            return "CreateMultipartUpload"
        if sub:
            return f"{verb}Object{_camel(sub)}"
        if method == "PUT" and headers.get("x-amz-copy-source"):
            return "CopyObject"
        return f"{verb}Object"
    if method == "POST":
        return "DeleteObjects" if "delete" in params else "PostObject"  # PostObject: a browser-style upload
    if sub:
        return f"{verb}Bucket{_camel(sub)}"
    if method == "GET":
        if "versions" in params:
            return "ListObjectVersions"
        if "uploads" in params:
            return "ListMultipartUploads"
        return "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, verb)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


# ---- the error a fault answers with ----------------------------------------------------------------
def error_response(fault: Fault, method: str, request_id: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of the AWS error for the fault's service, as that service's protocol sends it."""
    if fault.service == "s3":
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id, "x-amz-id-2": request_id}
        if method == "HEAD":  # S3 answers HEAD errors with the status alone
            return headers, b""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{_xml(fault.code)}</Code><Message>{_xml(fault.message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        )
        return headers, body.encode()
    namespace = {
        "dynamodb": "com.amazonaws.dynamodb.v20120810",
        "sqs": "com.amazonaws.sqs",
    }.get(fault.service, f"com.amazonaws.{fault.service}")
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
    if fault.service == "sqs":  # SQS is query-compatible: this header carries the query protocol's code
        headers["x-amzn-query-error"] = f"{fault.code};{'Receiver' if fault.status >= 500 else 'Sender'}"
    body = json.dumps({"__type": f"{namespace}#{fault.code}", "message": fault.message})
    return headers, body.encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- the proxy -------------------------------------------------------------------------------------
class FaultProxy:
    """The proxy server, on its own thread. `url` is what the functions get as AWS_ENDPOINT_URL."""

    def __init__(self, upstream: str, *, port: int = 0, log: Callable[[str], None] | None = None) -> None:
        target = urlsplit(upstream)
        if target.scheme != "http" or not target.hostname:
            raise ValueError(f"the fault proxy forwards to a plain http:// endpoint, not {upstream!r}")
        self.upstream = (target.hostname, target.port or 80)
        self.table = FaultTable()
        self.log = log or (lambda _text: None)
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stopping
    request_queue_size = 128  # socketserver's listen backlog of 5 resets connections in a burst

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (e.g. a killed worker) is routine; anything else is logged."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            self.proxy.log(f"proxy error with {client_address}: {error!r}")


class _Handler(BaseHTTPRequestHandler):
    """One client connection (kept alive, as botocore's pools do), with its own upstream connection."""

    protocol_version = "HTTP/1.1"
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # no access log per AWS call
        pass

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def _handle(self) -> None:
        split = urlsplit(self.path)
        if split.path.rstrip("/") == CONTROL_PATH:
            self._control()
            return
        proxy = self.server.proxy
        body, streamed = self._request_body()
        service, operation = identify(self.command, split.path, split.query, self.headers, body)
        text = f"{self.command} {self.path}\n" + (body.decode(errors="replace") if body else "")
        taken = proxy.table.take(service, operation, text)
        if taken is None:
            self._forward(body, streamed)
            return
        fault, hit = taken
        for _ in streamed or ():  # the request must be read to the end to keep the connection usable
            pass
        total = "∞" if fault.count is None else str(fault.count)
        proxy.log(f"{service} {operation}: injected {fault.status} {fault.code} (fault {fault.id}, hit {hit}/{total})")
        headers, payload = error_response(fault, self.command, uuid.uuid4().hex.upper())
        self._respond(fault.status, headers, payload)

    # -- request side
    def _request_body(self) -> tuple[bytes | None, Iterator[bytes] | None]:
        """The body in full when small enough to match on, else a stream of it; (None, None) without one."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return None, self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length == 0:
            return None, None
        if length <= MATCH_BODY_LIMIT:
            return self.rfile.read(length), None
        return None, self._read_exactly(length)

    def _read_exactly(self, length: int) -> Iterator[bytes]:
        while length > 0:
            chunk = self.rfile.read(min(_CHUNK, length))
            if not chunk:
                raise ConnectionError("the client closed the connection mid-body")
            length -= len(chunk)
            yield chunk

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return
            yield from self._read_exactly(size)
            self.rfile.readline()  # the CRLF after each chunk

    # -- forwarding
    def _forward(self, body: bytes | None, streamed: Iterator[bytes] | None) -> None:
        try:
            upstream = self._connection()
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            # A body the client sent chunked goes on chunked; any other keeps its Content-Length.
            rechunk = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and not (rechunk and name.lower() == "content-length"):
                    upstream.putheader(name, value)
            if rechunk:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            if body:
                upstream.send(body)
            for chunk in streamed or ():
                upstream.send(b"%x\r\n%b\r\n" % (len(chunk), chunk) if rechunk else chunk)
            if rechunk:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
        except (OSError, http.client.HTTPException) as error:
            self._drop_upstream()
            self._respond(502, {"Content-Type": "text/plain"}, f"fault proxy: endpoint unreachable: {error}".encode())
            self.close_connection = True
            return
        self._relay(response)
        if response.will_close:
            self._drop_upstream()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        """The endpoint's response, streamed; chunked to the client when its length is unknown."""
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        chunked = not bodiless and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while not bodiless:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        response.close()
        self.wfile.flush()

    def _connection(self) -> http.client.HTTPConnection:
        """This client connection's upstream connection, reopened if the endpoint closed it while idle."""
        if self._upstream is not None and self._upstream.sock is not None:
            readable, _, _ = select.select([self._upstream.sock], [], [], 0)
            if readable:  # an idle connection is only readable once the other side has closed it
                self._drop_upstream()
        if self._upstream is None:
            host, port = self.server.proxy.upstream
            self._upstream = http.client.HTTPConnection(host, port, timeout=_UPSTREAM_TIMEOUT_SECONDS)
        return self._upstream

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _respond(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()

    # -- control API
    def _control(self) -> None:
        table = self.server.proxy.table
        body, _ = self._request_body()
        if self.command == "POST":
            try:
                fault = table.add(json.loads(body or b"null"))
            except (ValueError, FaultSpecError) as error:
                self._json(400, {"error": str(error)})
                return
            self.server.proxy.log(f"fault {fault.id} armed: {json.dumps(fault.to_json())}")
            self._json(201, fault.to_json())
        elif self.command == "DELETE":
            table.clear()
            self.server.proxy.log("faults cleared")
            self._json(200, table.snapshot())
        elif self.command == "GET":
            self._json(200, table.snapshot())
        else:
            self._json(405, {"error": f"{self.command} is not supported; use GET, POST or DELETE"})

    def _json(self, status: int, document: Any) -> None:
        self._respond(status, {"Content-Type": "application/json"}, json.dumps(document).encode())


# ---- python -m tests.faultproxy --------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faultproxy", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", required=True, help="the AWS endpoint to forward to, http://host:port")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--parent", type=int, metavar="PID", help="stop when this parent process dies")
    args = parser.parse_args(argv)
    stop = _stop_event(parent=args.parent)
    log = _stdout_log()
    proxy = FaultProxy(args.target, port=args.port, log=log)
    log(f"{proxy.url} -> {args.target}; faults are set with POST {proxy.url}{CONTROL_PATH}")
    proxy.start()
    while not stop.wait(_PARENT_CHECK_SECONDS):
        pass
    proxy.stop()
    return 0


def _stdout_log() -> Callable[[str], None]:
    lock = threading.Lock()

    def log(text: str) -> None:
        with lock:  # one whole line per write: other processes append to the same file
            sys.stdout.write(f"[faults] {text}\n")
            sys.stdout.flush()

    return log


def _stop_event(*, parent: int | None) -> threading.Event:
    """Set on SIGINT or SIGTERM, or when `parent` is no longer the parent process (it died).

    The parent's PID is given, not read at start: it may have died before this process got that far.
    """
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def watch_parent(parent: int) -> None:
        while os.getppid() == parent and not stop.wait(_PARENT_CHECK_SECONDS):
            pass
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    if parent is not None:
        threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    return stop


if __name__ == "__main__":
    sys.exit(main())
