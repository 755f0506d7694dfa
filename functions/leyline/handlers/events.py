"""Models of the events the SQS-triggered functions receive, parsed by Powertools."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, SqsRecordModel
from pydantic import Json

from leyline.errors import InvalidTaskId
from leyline.logic.jobs import upload_job
from leyline.models import UploadJob

logger = Logger()


class UploadedRecord(SqsRecordModel):
    """An SQS message whose body is the S3 'Object Created' event the UploadedRule forwarded."""

    body: Json[S3EventNotificationEventBridgeModel]

    def job(self) -> UploadJob | None:
        """None for an object outside uploads/<task_id>: nothing to do, and nothing worth a retry."""
        detail = self.body.detail
        try:
            job = upload_job(detail.bucket.name, detail.object.key, detail.object.size)
        except InvalidTaskId:
            logger.warning("ignoring an object that is not a task upload", extra={"key": detail.object.key})
            return None
        logger.append_keys(task_id=job.task_id)
        return job
