"""IntakeFunction: an upload landed, so its task is QUEUED and takes its place in line."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.adapters.tasks_table import TaskRepository
from leyline.config import Settings
from leyline.handlers.events import UploadedRecord
from leyline.logic.jobs import take_place_in_line
from leyline.models import utc_now

settings = Settings.from_env()
tasks = TaskRepository(settings.tasks_table)
logger = Logger()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS, model=UploadedRecord)


def record_handler(record: UploadedRecord) -> None:
    job = record.job()
    if job is None:
        return
    queued = take_place_in_line(tasks, job, utc_now())
    logger.info("task queued" if queued else "task was already past PENDING")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
