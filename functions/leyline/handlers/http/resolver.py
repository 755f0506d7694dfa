"""What the two HTTP functions share: JSON responses and the one place domain errors become HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from leyline.errors import BadRequest, LeylineError, TooManyTasks, UploadClosed

logger = Logger()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


class _Resolver(APIGatewayHttpResolver):
    """Adds what Powertools leaves out: 405 with Allow for a wrong method on a known path, HEAD on every
    GET route, and API Gateway's greedy `<name+>` variable (the rest of the path, slashes included)."""

    def __init__(self) -> None:
        super().__init__()
        self._methods_by_path: list[tuple[re.Pattern[str], tuple[str, ...]]] = []

    def route(self, rule: str, method: str | list[str] | tuple[str], *args: Any, **kwargs: Any) -> Any:
        methods = (method,) if isinstance(method, str) else tuple(method)
        self._methods_by_path.append((self._compile_regex(rule), tuple(m.upper() for m in methods)))
        return super().route(rule, method, *args, **kwargs)

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}$") -> re.Pattern[str]:
        greedy = re.fullmatch(r"(.*)<(\w+)\+>", rule)  # API Gateway allows it as the last segment only
        if greedy is None:
            return APIGatewayHttpResolver._compile_regex(rule, base_regex)
        head = APIGatewayHttpResolver._compile_regex(greedy[1], "{}").pattern
        return re.compile(base_regex.format(f"{head}(?P<{greedy[2]}>.+)"))

    def allowed_methods(self, path: str) -> list[str]:
        """The methods of the routes whose path matches `path` (empty: no such path); HEAD wherever GET is."""
        found = {m for pattern, methods in self._methods_by_path if pattern.match(path) for m in methods}
        return sorted(found | {"HEAD"} if "GET" in found else found)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """HEAD answers what GET would, status and headers, without the body (RFC 9110, 9.3.2)."""
        http = event.get("requestContext", {}).get("http", {})
        if http.get("method") != "HEAD":
            return super().resolve(event, context)
        path = APIGatewayProxyEventV2(dict(event)).path
        as_get = "GET" in self.allowed_methods(path)  # else HEAD itself gets the 404/405
        method = "GET" if as_get else "HEAD"
        request = {**event, "requestContext": {**event["requestContext"], "http": {**http, "method": method}}}
        return {**super().resolve(request, context), "body": "", "isBase64Encoded": False}


def build_resolver() -> APIGatewayHttpResolver:
    app = _Resolver()

    @app.exception_handler(LeylineError)
    def _domain_error(exc: LeylineError) -> Response[str]:
        logger.info("request refused", extra={"code": exc.code, "status": exc.status})
        return error_response(exc.status, exc.code, exc.message, _error_headers(exc))

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[str]:
        """What API Gateway's $default route brings here: an unknown path (404) or a wrong method (405)."""
        allowed = app.allowed_methods(app.current_event.path)
        if allowed:
            return error_response(
                405,
                "METHOD_NOT_ALLOWED",
                f"{app.current_event.http_method} is not supported here; use {' or '.join(allowed)}.",
                {"Allow": ", ".join(allowed)},
            )
        return error_response(404, "NOT_FOUND", "No such route.")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return error_response(500, "INTERNAL_ERROR", "Something went wrong on our side; please try again.")

    return app


def _error_headers(exc: LeylineError) -> dict[str, str] | None:
    """What an error tells a client beyond its body: when to retry (429); where the task a replayed submit
    created is (409 UPLOAD_CLOSED)."""
    if isinstance(exc, TooManyTasks):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, UploadClosed):
        return {"Location": f"/status/{exc.task_id}"}
    return None


def page_security_headers(
    page: str, storage_origins: Iterable[str], *, sign_in_origins: Iterable[str] = ()
) -> dict[str, str]:
    """A Content-Security-Policy for `page`: its own inline <script> and <style> by hash (nothing else runs),
    fetches to the API itself, to storage (presigned uploads and videos) and, in accounts mode, to the Cognito
    API it signs in with (`sign_in_origins`), no framing anywhere."""
    scripts = " ".join(_sha256_sources(page, "script"))
    styles = " ".join(_sha256_sources(page, "style"))
    storage_origins = tuple(storage_origins)
    storage = " ".join(storage_origins)
    connect = " ".join(dict.fromkeys(["'self'", *storage_origins, *sign_in_origins]))  # each origin once
    policy = (
        f"default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self' data:;"
        f" connect-src {connect}; media-src 'self' {storage}; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


def origin_of(url: str) -> str:
    """scheme://host[:port] of `url`, as a CSP source names an origin (no path: Cognito's API is POST /)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _sha256_sources(page: str, tag: str) -> list[str]:
    """CSP hash sources of each inline <tag> element's text, exactly as the page carries it."""
    bodies = re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", page, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies]


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        return base64.b64decode(event.body)
    return event.body.encode()


def json_object(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    """The request's JSON object; an absent (empty) body is an empty object, whitespace alone is no JSON."""
    body = raw_body(event)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise BadRequest("The request body is not valid JSON.", code="MALFORMED_JSON") from exc
    if not isinstance(parsed, dict):
        raise BadRequest("The request body must be a JSON object.")
    return parsed


# A form for POST /upload needs one part; a few more are tolerated (a client may add its own fields). The cap
# and the header size bound the parser's work whatever the body: 300,000 empty parts are refused at once.
MAX_FORM_PARTS = 16
MAX_PART_HEADER_BYTES = 8 * 1024
_BLANK_LINE = re.compile(rb"\n\r?\n")


def multipart_file(event: APIGatewayProxyEventV2, field: str) -> bytes:
    """The bytes of one file field of a multipart/form-data body. Its file name is ignored on purpose."""
    # Only the form upload (POST /upload) reads a form: the HTTP header policy its parser needs (email.policy,
    # about 3 ms to import) stays out of every cold start.
    from email.parser import BytesHeaderParser
    from email.policy import HTTP

    content_type = event.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(f"Send the image as multipart/form-data in the field '{field}'.", code="MISSING_IMAGE")
    unreadable = BadRequest(f"The form cannot be read; send the image in the field '{field}'.", code="MISSING_IMAGE")
    parse_headers = BytesHeaderParser(policy=HTTP).parsebytes
    try:
        boundary = parse_headers(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n").get_boundary()
        if not boundary or len(boundary) > 70:  # RFC 2046: 1 to 70 characters
            raise unreadable
        for headers, content in _form_parts(raw_body(event), boundary.encode("latin-1"), unreadable):
            if parse_headers(headers).get_param("name", header="content-disposition") == field:
                return content
    except UnicodeEncodeError as exc:  # a non-Latin-1 Content-Type or boundary
        raise unreadable from exc
    raise BadRequest(f"The form has no '{field}' field; send the image in it.", code="MISSING_IMAGE")


def multipart_text(event: APIGatewayProxyEventV2, field: str) -> str | None:
    """A text field of the form POST /upload sends (None: absent), e.g. webhook_url; a 400 if not UTF-8."""
    from email.parser import BytesHeaderParser
    from email.policy import HTTP

    content_type = event.headers.get("content-type", "")
    parse_headers = BytesHeaderParser(policy=HTTP).parsebytes
    boundary = parse_headers(b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n").get_boundary()
    if not boundary:
        return None
    unreadable = BadRequest(f"The form's '{field}' field cannot be read.", code="BAD_REQUEST")
    for headers, content in _form_parts(raw_body(event), boundary.encode("latin-1"), unreadable):
        if parse_headers(headers).get_param("name", header="content-disposition") == field:
            try:
                return content.decode()
            except UnicodeDecodeError as exc:
                raise unreadable from exc
    return None


def _form_parts(body: bytes, boundary: bytes, unreadable: BadRequest) -> list[tuple[bytes, bytes]]:
    """(headers, content) of each part of a form (RFC 7578): at most MAX_FORM_PARTS, or a 400 before any.

    Only the outer parts are split, in C (bytes.split); a part's content is never parsed further: form-data
    has no nesting, so a nested multipart is only bytes that are not an image. The preamble before the first
    delimiter and the epilogue after the last are ignored, as RFC 2046 says."""
    pieces = (b"\n" + body).split(b"\n--" + boundary, MAX_FORM_PARTS + 1)
    if len(pieces) == MAX_FORM_PARTS + 2 and not pieces[-1].startswith(b"--"):
        raise BadRequest(f"The form has more than {MAX_FORM_PARTS} parts; send the image alone.", code="TOO_MANY_PARTS")
    parts: list[tuple[bytes, bytes]] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # the close delimiter
            break
        line_end = piece.find(b"\n", 0, 1024)
        if line_end < 0 or piece[:line_end].strip(b" \t\r"):  # the boundary went on: it is in the content
            raise unreadable
        part = piece[line_end + 1 :]
        window = b"\n" + part[:MAX_PART_HEADER_BYTES]
        blank = _BLANK_LINE.search(window)
        if blank is None:  # headers that never end, or longer than any real client sends
            raise unreadable
        content = part[blank.end() - 1 :]
        parts.append((window[1 : blank.start() + 1], content.removesuffix(b"\r")))  # CRLF before a delimiter
    return parts
