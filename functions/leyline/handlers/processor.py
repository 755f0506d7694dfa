"""ProcessorFunction: the model slots. Each slot (a message group of SlotsQueue.fifo) runs one job at a time;
ReservedConcurrentExecutions is ModelSlots. Idempotent per task."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from leyline.handlers.init_phase import init_phase

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

    from leyline.adapters.media_store import MediaStore
    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord, hide
    from leyline.logic.processing import run_model
    from leyline.logic.retries import crash_retry_seconds, retry_backoff_seconds
    from leyline.models import TaskState, UploadJob, utc_now

    settings = Settings.from_env()
    if settings.idempotency_table is None:
        raise ConfigError("environment variable IDEMPOTENCY_TABLE is required")
    if settings.slot_wake_queue_url is None:
        raise ConfigError("environment variable SLOT_WAKE_QUEUE_URL is required")
    tasks = TaskRepository(settings.tasks_table)
    media = MediaStore(settings.media_bucket)
    queues = SqsQueues()  # re-times its own job; wakes the dispatcher when a run frees its slot
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    processor = SqsFifoPartialProcessor(model=UploadedRecord)
    idempotency = IdempotencyConfig(event_key_jmespath="task_id", expires_after_seconds=settings.retention_days * 86400)
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


# How a run that started ended; a run stopped by a cancel counts as TasksCancelled (a task cancelled before the
# model reached it is not run at all, so it is not counted here).
_RESULT_METRICS = {
    TaskState.SUCCESS.value: "TasksSucceeded",
    TaskState.FAILURE.value: "TasksFailed",
    TaskState.CANCELLED.value: "TasksCancelled",
}


@idempotent_function(
    data_keyword_argument="job", persistence_store=persistence, config=idempotency, key_prefix="model-run"
)
def process_job(job: UploadJob, retry: bool = False) -> dict[str, Any]:
    outcome = run_model(tasks, media, settings, job, utc_now, wakes=queues, retry=retry)
    if outcome.ran:
        metrics.add_metric(name="TasksStarted", unit=MetricUnit.Count, value=1)
        result = _RESULT_METRICS.get(outcome.state)  # a task deleted meanwhile counts as none of them
        if result:
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
    hide(
        queues,
        record.eventSourceARN,
        record.receiptHandle,
        crash_retry_seconds(lambda_context.get_remaining_time_in_millis()),
    )
    attempt = int(record.attributes.ApproximateReceiveCount)
    try:
        process_job(job=job, retry=attempt > 1)
    except Exception:
        hide(queues, record.eventSourceARN, record.receiptHandle, retry_backoff_seconds(attempt))
        logger.exception("task failed; the queue will retry it", extra={"attempt": attempt})
        raise


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
