"""What the two HTTP functions share: JSON responses and the one place domain errors become HTTP."""

from __future__ import annotations

import base64
import json
from email.parser import BytesParser
from email.policy import HTTP
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


def build_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()

    @app.exception_handler(LeylineError)
    def _domain_error(exc: LeylineError) -> Response[str]:
        logger.info("request refused", extra={"code": exc.code, "status": exc.status})
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyTasks) else None
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[str]:
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
    """The request's JSON object; an absent body is an empty object."""
    body = raw_body(event)
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise BadRequest("The request body is not valid JSON.", code="MALFORMED_JSON") from exc
    if not isinstance(parsed, dict):
        raise BadRequest("The request body must be a JSON object.")
    return parsed


def multipart_file(event: APIGatewayProxyEventV2, field: str) -> bytes:
    """The bytes of one file field of a multipart/form-data body. Its file name is ignored on purpose."""
    content_type = event.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(f"Send the image as multipart/form-data in the field '{field}'.", code="MISSING_IMAGE")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw_body(event)
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise BadRequest(f"The form has no '{field}' field; send the image in it.", code="MISSING_IMAGE")
