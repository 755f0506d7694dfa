"""DispatchFunction: takes the line's jobs in order (JobsQueue.fifo, one message group) and gives each task the
next free model slot, handing its job to that slot's message group on SlotsQueue.fifo (logic/slots.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord, hide
    from leyline.logic.retries import retry_backoff_seconds
    from leyline.logic.slots import dispatch
    from leyline.models import utc_now

    settings = Settings.from_env()
    if settings.slots_queue_url is None:
        raise ConfigError("environment variable SLOTS_QUEUE_URL is required")
    if settings.slot_wake_queue_url is None:
        raise ConfigError("environment variable SLOT_WAKE_QUEUE_URL is required")
    tasks = TaskRepository(settings.tasks_table)
    queues = SqsQueues()  # sends to the slots' queue; waits for the slots' wakes; leases its own message
    logger = Logger()
    tracer = Tracer()
    processor = SqsFifoPartialProcessor(model=UploadedRecord)

# Time kept at the end of an invocation to hand the message back rather than be cut off by the Timeout.
_MARGIN_SECONDS = 2.0


def record_handler(record: UploadedRecord, lambda_context: LambdaContext) -> None:
    job = record.job()
    if job is None:
        return
    remaining = lambda_context.get_remaining_time_in_millis()
    give_up_at = utc_now() + timedelta(seconds=remaining / 1000 - _MARGIN_SECONDS)

    def lease(seconds: int) -> None:
        """Holds the line's head while the dispatch waits: a crashed dispatch's job comes back when its lease
        runs out (logic/slots.LEASE_SECONDS), not after 6 x the Timeout."""
        hide(queues, record.eventSourceARN, record.receiptHandle, seconds)

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
        hide(queues, record.eventSourceARN, record.receiptHandle, retry_backoff_seconds(attempt))
        logger.exception("dispatch failed; the queue will retry it", extra={"attempt": attempt})
        raise
    logger.info("task in a model slot" if slot else "task no longer waits; no slot taken", extra={"slot": slot})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
