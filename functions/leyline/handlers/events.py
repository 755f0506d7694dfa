"""Models of the events the SQS-triggered functions receive, parsed by Powertools."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsRecordModel

from leyline.errors import InvalidTaskId
from leyline.logic.jobs import upload_job
from leyline.logic.ports import MessageVisibility
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
    try:
        visibility.hide_for(queue_arn, receipt_handle, seconds)
    except Exception:
        logger.warning("could not change a message's visibility", extra={"seconds": seconds}, exc_info=True)
