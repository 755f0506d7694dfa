"""Models of the events the SQS-triggered functions receive, parsed by Powertools, and the re-timing of their
messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.errors import InvalidTaskId
from leyline.logic.jobs import upload_job
from leyline.logic.ports import MessageVisibility
from leyline.logic.retries import retry_backoff_seconds
from leyline.models import UploadJob

logger = Logger()


class UploadedRecord(SqsRecordModel):
    """An SQS message whose body is the S3 'Object Created' event of an upload, as UploadedRule sent it.

    The body stays the JSON text it arrived as: IntakeFunction hands it on to the model's queue unchanged.
    """

    body: str

    def job(self) -> UploadJob | None:
        """None for an object outside uploads/<task_id>: nothing to do, and nothing worth a retry.
        A body that is not an S3 event raises, so the message is retried and then dead-lettered."""
        detail = S3EventNotificationEventBridgeModel.model_validate_json(self.body).detail
        try:
            job = upload_job(detail.bucket.name, detail.object.key, detail.object.size)
        except InvalidTaskId:
            logger.warning("ignoring an object that is not a task upload", extra={"key": detail.object.key})
            return None
        logger.append_keys(task_id=job.task_id)
        return job


def hide(visibility: MessageVisibility, queue_arn: str, receipt_handle: str, seconds: int) -> None:
    """Sets when a received message comes back (logic.retries decides how long). Best effort: if SQS
    refuses, the message keeps its queue's own visibility timeout, which is slower but safe; failing the
    message over it would hold up everything behind it for longer still."""
    with _best_effort(seconds):
        visibility.hide_for(queue_arn, receipt_handle, seconds)


def hide_all(visibility: MessageVisibility, queue_arn: str, receipt_handles: list[str], seconds: int) -> None:
    """As hide, for several received messages of one queue in one call."""
    with _best_effort(seconds):
        visibility.hide_all_for(queue_arn, receipt_handles, seconds)


@contextmanager
def _best_effort(seconds: int) -> Iterator[None]:
    try:
        yield
    except Exception:
        logger.warning("could not change a message's visibility", extra={"seconds": seconds}, exc_info=True)


def process_in_line_order(
    event: dict[str, Any],
    record_handler: Callable[[UploadedRecord], None],
    processor: SqsFifoPartialProcessor,
    context: LambdaContext,
    visibility: MessageVisibility,
) -> PartialItemFailureResponse:
    """A FIFO batch of the line, record after record: after a failure the rest is left for the retry, so no job
    overtakes another, and the failed record and every one behind it come back after a short backoff rather than
    the queue's visibility timeout (until then they hold up the whole line)."""
    try:
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    except BatchProcessingError:  # every record failed: Lambda retries the whole batch
        _retry_soon(visibility, event, {record["messageId"] for record in event["Records"]})
        raise
    _retry_soon(visibility, event, {str(item["itemIdentifier"]) for item in response["batchItemFailures"]})
    return response


def _retry_soon(visibility: MessageVisibility, event: dict[str, Any], failed: set[str]) -> None:
    records = [record for record in event["Records"] if record["messageId"] in failed]
    if not records:
        return
    seconds = retry_backoff_seconds(int(records[0]["attributes"]["ApproximateReceiveCount"]))
    hide_all(visibility, records[0]["eventSourceARN"], [record["receiptHandle"] for record in records], seconds)
