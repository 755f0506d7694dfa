"""StatusFunction: GET /status/{task_id} and GET /video/{task_id} (302 to a presigned GET)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.adapters.media_store import MediaStore
from leyline.adapters.tasks_table import TaskRepository
from leyline.config import Settings
from leyline.handlers.http import build_resolver, json_response
from leyline.logic.tasks import get_status, video_location
from leyline.models import parse_task_id, utc_now

settings = Settings.from_env()
tasks = TaskRepository(settings.tasks_table)
media = MediaStore(settings.media_bucket)
logger = Logger()
tracer = Tracer()
app = build_resolver()


@app.get("/status/<task_id>")
@tracer.capture_method
def status(task_id: str) -> Response[str]:
    task_id = parse_task_id(task_id)
    logger.append_keys(task_id=task_id)
    return json_response(200, get_status(tasks, media, settings, task_id, utc_now()).to_json())


@app.get("/video/<task_id>")
@tracer.capture_method
def video(task_id: str) -> Response[str]:
    task_id = parse_task_id(task_id)
    logger.append_keys(task_id=task_id)
    # ?download=1 makes the browser save the file; otherwise it plays in place.
    attachment = app.current_event.get_query_string_value("download") == "1"
    url = video_location(tasks, media, settings, task_id, utc_now(), attachment=attachment)
    return json_response(302, {"video_url": url}, headers={"Location": url})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
