"""The HTTP API: every route of the template's HttpApi, on one Powertools resolver.

ApiFunction and StatusFunction both resolve with this app; API Gateway sends each only the routes
template.yaml gives it, so each keeps its own IAM role, and GET /openapi.json documents them all.
(No `from __future__ import annotations` here: Powertools reads the route annotations at runtime.)
"""

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit

from leyline.adapters.media_store import MediaStore
from leyline.adapters.tasks_table import TaskRepository
from leyline.config import ConfigError, Settings
from leyline.errors import Unauthorized
from leyline.handlers.http.request_bodies import create_upload_request, create_upload_request_schema
from leyline.handlers.http.resolver import (
    build_resolver,
    json_object,
    json_response,
    multipart_file,
    multipart_text,
    origin_of,
    page_security_headers,
)
from leyline.logic.emails import parse_notify_email
from leyline.logic.lifecycle import cancel_task, delete_task
from leyline.logic.submit import (
    IDEMPOTENCY_KEY_HEADER,
    KEY_LIFETIME_SECONDS,
    Idempotency,
    parse_idempotency_key,
    submit_form_upload,
    submit_presigned_upload,
)
from leyline.logic.tasks import get_status, list_tasks, page_size, shown_task, video_location
from leyline.logic.webhooks import parse_webhook
from leyline.models import TASK_ID_PATTERN, Caller, Webhook, parse_task_id, task_id_from_video_url, utc_now

if TYPE_CHECKING:
    from leyline.adapters.deliveries_table import DeliveryTable
    from leyline.adapters.idempotency import DynamoDBSubmitRecords
    from leyline.adapters.queues import SqsQueues

settings = Settings.from_env()
tasks = TaskRepository(settings.tasks_table)
media = MediaStore(settings.media_bucket)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build_resolver()
WEB_PAGE = (Path(__file__).parents[2] / "web" / "index.html").read_text(encoding="utf-8")


# Routes name their response body; its pydantic model (handlers/http/schemas.py) is imported, and its JSON
# Schema added, only when /openapi.json is built. Importing pydantic costs about 60 ms, which a cold
# start of either function no longer pays (docs/benchmarks.md).
_SCHEMAS = "#/components/schemas/"


def _json(body: str, description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _SCHEMAS + body}}}}


def _errors(*statuses: int) -> dict[int, OpenAPIResponse]:
    return {status: _json("ErrorBody", "An error object") for status in statuses}


@app.get("/", summary="The web page", include_in_schema=False)
def web_page() -> Response[str]:
    headers = {"Cache-Control": "no-cache", **_page_security_headers()}
    return Response(200, "text/html; charset=utf-8", WEB_PAGE, headers=headers)


@cache  # the storage origins come from presigning (no request is made), once per instance
def _page_security_headers() -> dict[str, str]:
    """accounts mode: the page also signs in, calling the Cognito API GET /config names."""
    cognito = _client_config()["cognito"]
    sign_in = [] if cognito is None else [origin_of(cognito["endpoint"])]
    return page_security_headers(WEB_PAGE, media.browser_origins(), sign_in_origins=sign_in)


@app.get("/openapi.json", summary="This document", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(200, "application/json", _openapi_document())


@app.get(
    "/config",
    summary="What a client needs before it calls the API: the access mode and, with accounts, where to sign in",
    responses={200: _json("ConfigBody", "The access mode and the Cognito user pool (null in open mode)")},
)
def client_config() -> Response[str]:
    return json_response(200, _client_config(), headers={"Cache-Control": "max-age=300"})


@cache  # the same for every request of an instance
def _client_config() -> dict[str, Any]:
    cognito = None
    if settings.accounts:
        from leyline.adapters.identity import cognito_endpoint, region

        cognito = {
            "region": region(),
            "user_pool_id": settings.user_pool_id,
            "client_id": settings.user_pool_client_id,
            "endpoint": cognito_endpoint(),
        }
    return {"access_mode": settings.access_mode, "cognito": cognito}


def _caller() -> Caller:
    """Who sends the request. accounts: the user API Gateway's JWT authorizer vouched for (the claims' `sub`,
    never the body); without one (the authorizer lets none through) 401. open: the source IP."""
    source_ip = app.current_event.request_context.http.source_ip
    if not settings.accounts:
        return Caller(source_ip)
    authorizer = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    user = ((authorizer.get("jwt") or {}).get("claims") or {}).get("sub")
    if not user:
        raise Unauthorized("Sign in first: send your access token as Authorization: Bearer <token>.")
    logger.append_keys(user=user)
    return Caller(source_ip, user=str(user))


@app.post(
    "/uploads",
    summary="Create a task and a presigned POST to upload its image straight to storage",
    responses={
        201: _json("UploadTicketBody", "The task and its upload form (a replay: a fresh form for the same task)"),
        **_errors(400, 409, 413, 415, 422, 429),
    },
)
@tracer.capture_method
def create_upload() -> Response[str]:
    caller = _caller()
    idempotency = _idempotency()
    request = create_upload_request(json_object(app.current_event))
    webhook = _webhook(request.webhook_url, request.webhook_events)
    notify_email = parse_notify_email(request.notify_email, accounts=settings.accounts)
    submitted = submit_presigned_upload(
        tasks,
        media,
        settings,
        utc_now(),
        client=caller.client,
        content_type=request.content_type,
        size=request.size,
        idempotency=idempotency,
        owner=caller.user,
        webhook=webhook,
        notify_email=notify_email,
    )
    _task_submitted(submitted.value.task_id, "presigned upload issued", replayed=submitted.replayed)
    return json_response(201, submitted.value.to_json())


@app.post(
    "/upload",
    summary="The original API's form upload: send the image as multipart/form-data in the field `image`",
    responses={202: _json("AcceptedUploadBody", "The task was created"), **_errors(400, 409, 413, 415, 422, 429)},
)
@tracer.capture_method
def upload_form() -> Response[str]:
    caller = _caller()
    idempotency = _idempotency()
    image = multipart_file(app.current_event, "image")
    webhook = _webhook(
        multipart_text(app.current_event, "webhook_url"), multipart_text(app.current_event, "webhook_events")
    )
    notify_email = parse_notify_email(multipart_text(app.current_event, "notify_email"), accounts=settings.accounts)
    submitted = submit_form_upload(
        tasks,
        media,
        settings,
        image,
        utc_now(),
        client=caller.client,
        idempotency=idempotency,
        owner=caller.user,
        webhook=webhook,
        notify_email=notify_email,
    )
    task_id = submitted.value
    _task_submitted(task_id, "image uploaded in a form", replayed=submitted.replayed)
    return json_response(202, {"task_id": task_id, "status_url": f"/status/{task_id}"})


def _webhook(url: object, events: object) -> Webhook | None:
    """The submit's webhook, checked (400 INVALID_WEBHOOK_URL); DNS is only asked when there is one."""
    if url is None and events is None:
        return None
    from leyline.adapters.webhook_http import resolve

    return parse_webhook(url, events, allow_private=settings.webhook_allow_private_targets, resolve=resolve)


def _idempotency() -> Idempotency | None:
    """The request's Idempotency-Key (a 400 if malformed, before anything is read or created), if it has one."""
    key = parse_idempotency_key(app.current_event.headers.get(IDEMPOTENCY_KEY_HEADER))
    if key is None:
        return None
    records = _submit_records()
    records.register_lambda_context(app.lambda_context)
    return Idempotency(records, key)


@cache  # Powertools' idempotency and its DynamoDB client load on the first request with a key, not at cold start
def _submit_records() -> "DynamoDBSubmitRecords":
    from leyline.adapters.idempotency import DynamoDBSubmitRecords

    if settings.idempotency_table is None:
        raise ConfigError("environment variable IDEMPOTENCY_TABLE is required for Idempotency-Key")
    return DynamoDBSubmitRecords(settings.idempotency_table, lifetime_seconds=KEY_LIFETIME_SECONDS)


@app.get(
    "/status/<task_id>",
    summary="A task's state, queue position, ETA, progress and, once done, its video URL",
    responses={200: _json("StatusBody", "The task's status"), **_errors(400, 404, 410)},
)
@tracer.capture_method
def status(task_id: str) -> Response[str]:
    user = _caller().user
    task_id = _logged(parse_task_id(task_id))
    return json_response(200, get_status(tasks, media, settings, task_id, utc_now(), user=user).to_json())


@app.get(
    "/tasks",
    summary="The caller's tasks, newest first, each as GET /status/{task_id} shows it (accounts mode)",
    responses={200: _json("TaskPageBody", "One page and the next page's cursor (null: the last)"), **_errors(400, 401)},
)
@tracer.capture_method
def tasks_of_the_caller() -> Response[str]:
    user = _caller().user
    if user is None:  # open mode: tasks have no owner, so there is no "mine" to list
        raise Unauthorized("GET /tasks lists a user's tasks: it needs accounts (AccessMode=accounts).")
    event = app.current_event
    limit = page_size(event.get_query_string_value("limit"))
    cursor = event.get_query_string_value("cursor") or None
    return json_response(200, list_tasks(tasks, media, settings, user, utc_now(), limit=limit, cursor=cursor).to_json())


@app.get(
    "/video/<task_id>",
    summary="Redirect to the video (`?download=1` to save it instead of playing it)",
    responses={302: _json("VideoRedirectBody", "Location: a presigned GET of the MP4"), **_errors(400, 404, 409, 410)},
)
@tracer.capture_method
def video(task_id: str) -> Response[str]:
    user = _caller().user
    task_id = _logged(task_id_from_video_url(task_id))
    attachment = app.current_event.get_query_string_value("download") == "1"
    url = video_location(tasks, media, settings, task_id, utc_now(), attachment=attachment, user=user)
    return json_response(302, {"video_url": url}, headers={"Location": url})


@app.get("/video/<video_url+>", summary="The original API's GET /video/<video_url>", include_in_schema=False)
@tracer.capture_method
def video_by_its_url(video_url: str) -> Response[str]:
    """A client written for the original API, whose `video_url` was a file name, sends the whole presigned URL back:
    `/video/http://host/bucket/videos/<task_id>.mp4?X-Amz-...`. Its last segment names the task."""
    return video(video_url)


@app.post(
    "/tasks/<task_id>/cancel",
    summary="Cancel a task: one waiting leaves the line at once, one in the model stops within 2 s",
    responses={200: _json("StatusBody", "The cancelled task's status"), **_errors(400, 404, 409, 410)},
)
@tracer.capture_method
def cancel(task_id: str) -> Response[str]:
    user = _caller().user
    task_id = _logged(parse_task_id(task_id))
    cancelled = cancel_task(tasks, media, _slot_wakes(), settings, task_id, utc_now(), user=user)
    logger.info("task cancelled")
    return json_response(200, cancelled.to_json())


@app.delete(
    "/tasks/<task_id>",
    summary="Delete a task: cancel it if unfinished, then remove its upload, its video and its record",
    responses={204: {"description": "Deleted: every route now answers 404 for it"}, **_errors(400, 404)},
)
@tracer.capture_method
def delete(task_id: str) -> Response[str]:
    user = _caller().user
    task_id = _logged(parse_task_id(task_id))
    delete_task(tasks, media, _slot_wakes(), settings, task_id, utc_now(), user=user)
    logger.info("task deleted")
    return Response(204, None, "", headers={"Cache-Control": "no-store"})


@app.get(
    "/tasks/<task_id>/deliveries",
    summary="Every attempt of every webhook delivery of a task, oldest first",
    responses={200: _json("DeliveriesBody", "The task's webhook attempts"), **_errors(400, 404, 410)},
)
@tracer.capture_method
def deliveries(task_id: str) -> Response[str]:
    user = _caller().user
    task_id = _logged(parse_task_id(task_id))
    shown_task(tasks, settings, task_id, utc_now(), user=user)  # 404 / 410 as every route, another user's too
    attempts = sorted(_delivery_log().attempts(task_id), key=lambda attempt: (attempt.at, attempt.attempt))
    return json_response(200, {"task_id": task_id, "attempts": [attempt.to_json() for attempt in attempts]})


@cache  # StatusFunction's, on the first GET /tasks/{task_id}/deliveries
def _delivery_log() -> "DeliveryTable":
    from leyline.adapters.deliveries_table import DeliveryTable

    if settings.deliveries_table is None:
        raise ConfigError("environment variable DELIVERIES_TABLE is required for GET /tasks/{task_id}/deliveries")
    return DeliveryTable(settings.deliveries_table)


@cache  # ApiFunction's, on the first cancel or delete: a cancel frees a running task's model slot at once
def _slot_wakes() -> "SqsQueues":
    from leyline.adapters.queues import SqsQueues

    if settings.slot_wake_queue_url is None:
        raise ConfigError("environment variable SLOT_WAKE_QUEUE_URL is required to cancel or delete a task")
    return SqsQueues()


def _logged(task_id: str) -> str:
    """The task id a route works on, named on every log line of the request."""
    logger.append_keys(task_id=task_id)
    return task_id


def _task_submitted(task_id: str, message: str, *, replayed: bool) -> None:
    logger.append_keys(task_id=task_id)
    if replayed:  # an Idempotency-Key retry: the first request's task, nothing created
        logger.info(f"{message} (replayed for its Idempotency-Key)")
        metrics.add_metric(name="SubmitsReplayed", unit=MetricUnit.Count, value=1)
        return
    logger.info(message)
    metrics.add_metric(name="TasksCreated", unit=MetricUnit.Count, value=1)


@cache  # built on first request, not at cold start: most invocations never need it
def _openapi_document() -> str:
    """Powertools documents the routes; the bodies' schemas and the two request bodies are added here."""
    from leyline.handlers.http.schemas import openapi_components

    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="Leyline Image2Video",
            version="1.0.0",
            description="Upload an image, get a video. Every error is an HTTP status plus an error object.",
        )
    )
    document["components"]["schemas"].update(openapi_components(_SCHEMAS))
    document["paths"]["/uploads"]["post"]["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": create_upload_request_schema(accounts=settings.accounts)}},
    }
    for path, method in (
        ("/status/{task_id}", "get"),
        ("/video/{task_id}", "get"),
        ("/tasks/{task_id}/cancel", "post"),
        ("/tasks/{task_id}", "delete"),
        ("/tasks/{task_id}/deliveries", "get"),
    ):
        for parameter in document["paths"][path][method]["parameters"]:
            if parameter["name"] == "task_id":
                parameter["schema"] = {
                    "type": "string",
                    "pattern": TASK_ID_PATTERN,
                    "description": "A task id (a UUID), or the original API's video file name <task_id>.mp4",
                }
    # Powertools gives every response a body schema from the return annotation; a 204 has no body.
    document["paths"]["/tasks/{task_id}"]["delete"]["responses"]["204"].pop("content", None)
    document["paths"]["/upload"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary", "minLength": 1}},
                }
            }
        },
    }
    for path in ("/uploads", "/upload"):
        document["paths"][path]["post"].setdefault("parameters", []).append(_IDEMPOTENCY_KEY_PARAMETER)
    document["paths"]["/tasks"]["get"]["parameters"] = _PAGE_PARAMETERS
    if settings.accounts:
        _document_the_authorizer(document)
    else:  # open mode: tasks belong to no one, so there is no history to list (GET /tasks answers 401)
        del document["paths"]["/tasks"]
    return json.dumps(document)


_PUBLIC_PATHS = ("/config",)  # with / and /openapi.json, which the document leaves out


def _document_the_authorizer(document: dict[str, Any]) -> None:
    """accounts mode: every task route needs a Cognito access token (API Gateway's JWT authorizer)."""
    document["components"]["securitySchemes"] = {
        "CognitoUser": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Cognito access token of the user pool GET /config names; a missing or invalid one is"
            ' API Gateway\'s 401 {"message": "Unauthorized"}.',
        }
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path not in _PUBLIC_PATHS:
                operation["security"] = [{"CognitoUser": []}]
                operation["responses"].setdefault("401", {"description": "No valid access token"})


_PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Tasks per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The previous page's next_cursor (opaque); without it, the newest tasks.",
        "schema": {"type": "string", "minLength": 1},
    },
]


_IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes the submit safe to retry (IETF httpapi Idempotency-Key draft). A retry with the same key and the same"
        " request answers as the first did, with the same task, and creates nothing (POST /uploads: a fresh upload"
        " form while the task still waits for its upload, else 409 UPLOAD_CLOSED); the same key with another"
        " request: 422 IDEMPOTENCY_KEY_REUSED; while the first is still handled: 409 REQUEST_IN_PROGRESS."
        " Keys are the client's own and kept 24 hours."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
}
