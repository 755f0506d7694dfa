"""DispatchFunction: takes the line's jobs in order (JobsQueue.fifo, one message group, up to one job per slot
per invocation) and gives each task the next free model slot, handing its job to that slot's message group on
SlotsQueue.fifo (logic/slots.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord, hide_all, process_in_line_order
    from leyline.logic.slots import BatchLease, dispatch
    from leyline.models import utc_now

    settings = Settings.from_env()
    if settings.slots_queue_url is None:
        raise ConfigError("environment variable SLOTS_QUEUE_URL is required")
    if settings.slot_wake_queue_url is None:
        raise ConfigError("environment variable SLOT_WAKE_QUEUE_URL is required")
    tasks = TaskRepository(settings.tasks_table)
    queues = SqsQueues()  # sends to the slots' queue; waits for the slots' wakes; leases its batch's messages
    logger = Logger()
    tracer = Tracer()
    processor = SqsFifoPartialProcessor(model=UploadedRecord)

# Time kept at the end of an invocation to hand the message back rather than be cut off by the Timeout.
_MARGIN_SECONDS = 2.0


def lease_of(event: dict[str, Any]) -> BatchLease:
    """The lease of the invocation's jobs (up to one per slot, in line order), which re-times them all, those
    already handed to their slots included. Until the function returns they are all in flight, and an in-flight
    FIFO message holds up its group: after a crash they must all come back within the lease, not after
    JobsQueue's visibility timeout (six times this function's Timeout)."""
    records = event["Records"]
    queue_arn, receipt_handles = records[0]["eventSourceARN"], [record["receiptHandle"] for record in records]
    return BatchLease(lambda seconds: hide_all(queues, queue_arn, receipt_handles, seconds), utc_now)


def dispatch_job(record: UploadedRecord, lease: BatchLease, lambda_context: LambdaContext) -> None:
    job = record.job()
    if job is None:
        return
    remaining = lambda_context.get_remaining_time_in_millis()
    give_up_at = utc_now() + timedelta(seconds=remaining / 1000 - _MARGIN_SECONDS)
    try:
        slot = dispatch(
            tasks,
            queues,
            queues,
            settings,
            job,
            record.body,
            utc_now,
            lease=lease,
            give_up_at=give_up_at,
            sleep=time.sleep,
        )
    except Exception:
        attempt = int(record.attributes.ApproximateReceiveCount)
        logger.exception("dispatch failed; the line will retry it", extra={"attempt": attempt})
        raise
    logger.info("task in a model slot" if slot else "task no longer waits; no slot taken", extra={"slot": slot})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    lease = lease_of(event)

    def record_handler(record: UploadedRecord) -> None:
        dispatch_job(record, lease, context)

    return process_in_line_order(event, record_handler, processor, context, queues)
