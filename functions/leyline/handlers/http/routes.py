"""The HTTP API: every route of the template's HttpApi, on one Powertools resolver.

ApiFunction and StatusFunction both resolve with this app; API Gateway sends each only the routes
template.yaml gives it, so each keeps its own IAM role, and GET /openapi.json documents them all.
(No `from __future__ import annotations` here: Powertools reads the route annotations at runtime.)
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit

from leyline.adapters.media_store import MediaStore
from leyline.adapters.tasks_table import TaskRepository
from leyline.config import Settings
from leyline.handlers.http.request_bodies import create_upload_request, create_upload_request_schema
from leyline.handlers.http.resolver import (
    build_resolver,
    json_object,
    json_response,
    multipart_file,
    page_security_headers,
)
from leyline.logic.tasks import create_form_upload, create_presigned_upload, get_status, video_location
from leyline.models import TASK_ID_PATTERN, parse_task_id, task_id_from_video_url, utc_now

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
    return page_security_headers(WEB_PAGE, media.browser_origins())


@app.get("/openapi.json", summary="This document", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(200, "application/json", _openapi_document())


@app.post(
    "/uploads",
    summary="Create a task and a presigned POST to upload its image straight to storage",
    responses={201: _json("UploadTicketBody", "The task and its upload form"), **_errors(400, 413, 415, 429)},
)
@tracer.capture_method
def create_upload() -> Response[str]:
    request = create_upload_request(json_object(app.current_event))
    ticket = create_presigned_upload(
        tasks,
        media,
        settings,
        utc_now(),
        client=app.current_event.request_context.http.source_ip,
        content_type=request.content_type,
        size=request.size,
    )
    _task_created(ticket.task_id, "presigned upload issued")
    return json_response(201, ticket.to_json())


@app.post(
    "/upload",
    summary="The original API's form upload: send the image as multipart/form-data in the field `image`",
    responses={202: _json("AcceptedUploadBody", "The task was created"), **_errors(400, 413, 415, 429)},
)
@tracer.capture_method
def upload_form() -> Response[str]:
    image = multipart_file(app.current_event, "image")
    client = app.current_event.request_context.http.source_ip
    task = create_form_upload(tasks, media, settings, image, utc_now(), client=client)
    _task_created(task.task_id, "image uploaded in a form")
    return json_response(202, {"task_id": task.task_id, "status_url": f"/status/{task.task_id}"})


@app.get(
    "/status/<task_id>",
    summary="A task's state, queue position, ETA, progress and, once done, its video URL",
    responses={200: _json("StatusBody", "The task's status"), **_errors(400, 404, 410)},
)
@tracer.capture_method
def status(task_id: str) -> Response[str]:
    task_id = parse_task_id(task_id)
    logger.append_keys(task_id=task_id)
    return json_response(200, get_status(tasks, media, settings, task_id, utc_now()).to_json())


@app.get(
    "/video/<task_id>",
    summary="Redirect to the video (`?download=1` to save it instead of playing it)",
    responses={302: _json("VideoRedirectBody", "Location: a presigned GET of the MP4"), **_errors(400, 404, 409, 410)},
)
@tracer.capture_method
def video(task_id: str) -> Response[str]:
    task_id = task_id_from_video_url(task_id)
    logger.append_keys(task_id=task_id)
    attachment = app.current_event.get_query_string_value("download") == "1"
    url = video_location(tasks, media, settings, task_id, utc_now(), attachment=attachment)
    return json_response(302, {"video_url": url}, headers={"Location": url})


@app.get("/video/<video_url+>", summary="The original API's GET /video/<video_url>", include_in_schema=False)
@tracer.capture_method
def video_by_its_url(video_url: str) -> Response[str]:
    """A client written for the original API, whose `video_url` was a file name, sends the whole presigned URL back:
    `/video/http://host/bucket/videos/<task_id>.mp4?X-Amz-...`. Its last segment names the task."""
    return video(video_url)


def _task_created(task_id: str, message: str) -> None:
    logger.append_keys(task_id=task_id)
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
        "content": {"application/json": {"schema": create_upload_request_schema()}},
    }
    for path in ("/status/{task_id}", "/video/{task_id}"):
        for parameter in document["paths"][path]["get"]["parameters"]:
            if parameter["name"] == "task_id":
                parameter["schema"] = {
                    "type": "string",
                    "pattern": TASK_ID_PATTERN,
                    "description": "A task id (a UUID), or the original API's video file name <task_id>.mp4",
                }
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
    return json.dumps(document)
