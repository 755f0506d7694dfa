"""SQS access for the processor's own message: how long it stays hidden from other consumers."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3


class JobQueue:
    def __init__(self, client: Any | None = None) -> None:
        self._sqs = client or boto3.client("sqs")

    def hide_for(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Sets when the message reappears if it is not deleted: after a crash, or as a retry backoff."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    @cache  # noqa: B019 - one JobQueue per warm container; the URL of a queue never changes
    def _url(self, queue_arn: str) -> str:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        return str(self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
