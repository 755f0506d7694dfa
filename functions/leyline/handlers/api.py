"""ApiFunction: the web page, POST /uploads (presigned upload) and POST /upload (the seed's multipart call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.adapters.media_store import MediaStore
from leyline.adapters.tasks_table import TaskRepository
from leyline.config import Settings
from leyline.errors import BadRequest
from leyline.handlers.http import build_resolver, json_object, json_response, multipart_file
from leyline.logic.tasks import create_inline_upload, create_presigned_upload
from leyline.models import utc_now

settings = Settings.from_env()
tasks = TaskRepository(settings.tasks_table)
media = MediaStore(settings.media_bucket)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build_resolver()
WEB_PAGE = (Path(__file__).parents[1] / "web" / "index.html").read_text(encoding="utf-8")


@app.get("/")
def web_page() -> Response[str]:
    return Response(
        status_code=200, content_type="text/html; charset=utf-8", body=WEB_PAGE, headers={"Cache-Control": "no-cache"}
    )


@app.post("/uploads")
@tracer.capture_method
def create_upload() -> Response[str]:
    request = json_object(app.current_event)
    content_type = request.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise BadRequest("content_type must be a string such as 'image/png'.")
    size = request.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise BadRequest("size must be the file's size in bytes, a whole number.")
    ticket = create_presigned_upload(tasks, media, settings, utc_now(), content_type=content_type, size=size)
    logger.append_keys(task_id=ticket.task_id)
    logger.info("presigned upload issued")
    metrics.add_metric(name="TasksCreated", unit=MetricUnit.Count, value=1)
    return json_response(201, ticket.to_json())


@app.post("/upload")
@tracer.capture_method
def upload_inline() -> Response[str]:
    task = create_inline_upload(tasks, media, settings, multipart_file(app.current_event, "image"), utc_now())
    logger.append_keys(task_id=task.task_id)
    logger.info("image uploaded inline")
    metrics.add_metric(name="TasksCreated", unit=MetricUnit.Count, value=1)
    return json_response(202, {"task_id": task.task_id, "status_url": f"/status/{task.task_id}"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
