"""ProcessorFunction: the model. One job at a time from the FIFO queue, idempotent per task."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from leyline.handlers.init_phase import init_phase

# After a crash the job reappears this long after the invocation would have timed out.
CRASH_GRACE_SECONDS = 10

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.job_queue import JobQueue
    from leyline.adapters.media_store import MediaStore
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord
    from leyline.logic.jobs import retry_backoff_seconds
    from leyline.logic.processing import run_model
    from leyline.models import UploadJob

    settings = Settings.from_env()
    if settings.idempotency_table is None:
        raise ConfigError("environment variable IDEMPOTENCY_TABLE is required")
    tasks = TaskRepository(settings.tasks_table)
    media = MediaStore(settings.media_bucket)
    jobs = JobQueue()
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    processor = SqsFifoPartialProcessor(model=UploadedRecord)
    idempotency = IdempotencyConfig(event_key_jmespath="task_id", expires_after_seconds=settings.retention_days * 86400)
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


@idempotent_function(
    data_keyword_argument="job", persistence_store=persistence, config=idempotency, key_prefix="model-run"
)
def process_job(job: UploadJob) -> dict[str, Any]:
    outcome = run_model(tasks, media, settings, job)
    if outcome.ran:
        metrics.add_metric(name="TasksStarted", unit=MetricUnit.Count, value=1)
        result = "TasksSucceeded" if outcome.state == "SUCCESS" else "TasksFailed"
        metrics.add_metric(name=result, unit=MetricUnit.Count, value=1)
    if outcome.queue_wait_seconds is not None:
        metrics.add_metric(name="QueueWait", unit=MetricUnit.Seconds, value=outcome.queue_wait_seconds)
    logger.info("task finished", extra=asdict(outcome))
    return asdict(outcome)


def record_handler(record: UploadedRecord, lambda_context: LambdaContext) -> None:
    job = record.job()
    if job is None:
        return
    # The queue hides a received job for 6 x the timeout; a crashed run should come back sooner.
    crash_retry = math.ceil(lambda_context.get_remaining_time_in_millis() / 1000) + CRASH_GRACE_SECONDS
    _hide(record, crash_retry)
    try:
        process_job(job=job)
    except Exception:
        attempt = int(record.attributes.ApproximateReceiveCount)
        _hide(record, retry_backoff_seconds(attempt))
        logger.exception("task failed; the queue will retry it", extra={"attempt": attempt})
        raise


def _hide(record: UploadedRecord, seconds: int) -> None:
    """Best effort: if SQS refuses, the job keeps the queue's own visibility, which is slower but safe;
    failing the job over it would hide it for 6 x the Timeout and hold up everyone behind it."""
    try:
        jobs.hide_for(record.eventSourceARN, record.receiptHandle, seconds)
    except Exception:
        logger.warning("could not change the job's visibility", extra={"seconds": seconds}, exc_info=True)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
