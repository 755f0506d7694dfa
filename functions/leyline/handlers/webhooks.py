"""WebhookFunction: delivers a task event to the task's webhook, one attempt per receive of its message.

A failed attempt that may be retried leaves the message on WebhookQueue, hidden until its next retry
(WebhookRetryDelays); the receive count is the attempt's number. Every attempt is logged
(GET /tasks/{task_id}/deliveries); a delivery that ends without success (but 410) goes to WebhookDeadLetterQueue."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    import boto3
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.deliveries_table import DeliveryTable
    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.adapters.webhook_http import PinnedHttpTarget, resolve
    from leyline.adapters.webhook_signing import SecretsManagerSigner
    from leyline.config import Settings
    from leyline.handlers.events import hide
    from leyline.logic.webhooks import attempt_delivery, delivery_for, logged, parse_delays
    from leyline.models import utc_now

    settings = Settings.from_env()
    tasks = TaskRepository(settings.tasks_table)
    deliveries = DeliveryTable(os.environ["DELIVERIES_TABLE"])
    signer = SecretsManagerSigner(os.environ["WEBHOOK_SECRET_ID"])
    delays = parse_delays(os.environ["WEBHOOK_RETRY_DELAYS"])
    queue_arn = os.environ["WEBHOOK_QUEUE_ARN"]
    dead_letters_url = os.environ["WEBHOOK_DEAD_LETTER_QUEUE_URL"]
    queues = SqsQueues()
    sqs = boto3.client("sqs")
    target = PinnedHttpTarget()
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    # A failed attempt is reported, not raised: its message is already timed for the next retry.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLater(Exception):
    """The attempt failed and will be tried again: the message stays, hidden until then."""


def record_handler(record: SQSRecord) -> None:
    event = json.loads(record.body)
    task_id = event["detail"]["task_id"]
    logger.append_keys(task_id=task_id)
    task = tasks.get(task_id)
    delivery = delivery_for(event, None if task is None else task.webhook)
    if task is None or task.webhook is None or delivery is None:
        return
    attempt = int(record.attributes.approximate_receive_count)
    now = utc_now()
    outcome = attempt_delivery(
        delivery,
        task.webhook.url,
        attempt=attempt,
        delays=delays,
        now=now,
        allow_private=settings.webhook_allow_private_targets,
        resolve=resolve,
        target=target,
        signer=signer,
    )
    deliveries.record(logged(delivery, attempt, now, outcome, task.expires_at))
    logger.info(
        "webhook attempt", extra={"webhook_id": delivery.webhook_id, "attempt": attempt, **dataclasses.asdict(outcome)}
    )
    metrics.add_metric(name=f"Webhook{outcome.outcome.title().replace('-', '')}", unit=MetricUnit.Count, value=1)
    if outcome.retry_in is not None:
        hide(queues, queue_arn, record.receipt_handle, outcome.retry_in)
        raise RetryLater(f"{delivery.webhook_id}: attempt {attempt} failed; next in {outcome.retry_in} s")
    if outcome.final_failure:
        body = {"event": event, "webhook_id": delivery.webhook_id, "attempts": attempt, "outcome": outcome.outcome}
        sqs.send_message(QueueUrl=dead_letters_url, MessageBody=json.dumps(body))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
