"""EmailFunction (accounts mode): a task that ended, read from EmailQueue (EmailRule's final task events), is
emailed to its owner if it asked (logic/emails.py). A failed send raises: the message comes back after the
queue's visibility timeout, and after a few receives it rests in EmailDeadLetterQueue."""

from __future__ import annotations

import json
import os
from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.mailer import SesMailer
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.adapters.user_directory import CognitoUserDirectory
    from leyline.config import Settings
    from leyline.logic.emails import notify_owner

    settings = Settings.from_env()
    tasks = TaskRepository(settings.tasks_table)
    users = CognitoUserDirectory(os.environ["USER_POOL_ID"])
    mailer = SesMailer(os.environ["NOTIFICATION_SENDER"])
    page_url = os.environ["PAGE_URL"]
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    event = json.loads(record.body)
    logger.append_keys(task_id=event["detail"]["task_id"])
    message_id = notify_owner(event, tasks, users, mailer, page_url=page_url)
    if message_id is None:
        return
    # The message id, not the address: the log holds no personal data.
    logger.info("task email sent", extra={"message_id": message_id, "state": event["detail"]["state"]})
    metrics.add_metric(name="TaskEmailsSent", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
