"""What the two HTTP functions share: JSON responses and the one place domain errors become HTTP."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from leyline.errors import BadRequest, LeylineError, TooManyTasks

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


# A <variable> path segment, as Powertools matches it (its _SAFE_URI, _UNSAFE_URI and word characters).
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


class _Resolver(APIGatewayHttpResolver):
    """Remembers which methods each route path takes, so that a wrong method answers 405 with Allow."""

    def __init__(self) -> None:
        super().__init__()
        self._methods_by_path: list[tuple[re.Pattern[str], tuple[str, ...]]] = []

    def route(self, rule: str, method: str | list[str] | tuple[str], *args: Any, **kwargs: Any) -> Any:
        methods = (method,) if isinstance(method, str) else tuple(method)
        pattern = re.compile(
            "".join(
                _SEGMENT if re.fullmatch(r"<\w+>", part) else re.escape(part) for part in re.split(r"(<\w+>)", rule)
            )
        )
        self._methods_by_path.append((pattern, tuple(m.upper() for m in methods)))
        return super().route(rule, method, *args, **kwargs)

    def allowed_methods(self, path: str) -> list[str]:
        """The methods of the routes whose path matches `path` (empty: no such path)."""
        found = {m for pattern, methods in self._methods_by_path if pattern.fullmatch(path) for m in methods}
        return sorted(found)


def build_resolver() -> APIGatewayHttpResolver:
    app = _Resolver()

    @app.exception_handler(LeylineError)
    def _domain_error(exc: LeylineError) -> Response[str]:
        logger.info("request refused", extra={"code": exc.code, "status": exc.status})
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyTasks) else None
        return error_response(exc.status, exc.code, exc.message, headers)

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


def multipart_file(event: APIGatewayProxyEventV2, field: str) -> bytes:
    """The bytes of one file field of a multipart/form-data body. Its file name is ignored on purpose."""
    # Only the seed's POST /upload reads a form: the HTTP header policy its parser needs (email.policy,
    # about 3 ms to import) stays out of every cold start.
    from email.parser import BytesParser
    from email.policy import HTTP

    content_type = event.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(f"Send the image as multipart/form-data in the field '{field}'.", code="MISSING_IMAGE")
    try:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw_body(event)
        )
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == field:
                payload = part.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else b""
    except (RecursionError, UnicodeEncodeError) as exc:  # parts nested too deep; a non-Latin-1 Content-Type
        raise BadRequest(
            f"The form cannot be read; send the image in the field '{field}'.", code="MISSING_IMAGE"
        ) from exc
    raise BadRequest(f"The form has no '{field}' field; send the image in it.", code="MISSING_IMAGE")
