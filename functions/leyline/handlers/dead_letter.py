"""DeadLetterFunction: a job that exhausted its retries ends its task in FAILURE, never PROCESSING forever."""

from __future__ import annotations

from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord
    from leyline.logic.jobs import give_up
    from leyline.models import utc_now

    settings = Settings.from_env()
    if settings.slot_wake_queue_url is None:
        raise ConfigError("environment variable SLOT_WAKE_QUEUE_URL is required")
    tasks = TaskRepository(settings.tasks_table)
    queues = SqsQueues()  # wakes the dispatcher when a failed task leaves its model slot
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    processor = SqsFifoPartialProcessor(model=UploadedRecord)


def record_handler(record: UploadedRecord) -> None:
    job = record.job()
    if job is None:
        return
    if give_up(tasks, queues, settings, job, utc_now()):
        metrics.add_metric(name="TasksDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("task failed after exhausting its retries")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
