"""SQS access: IntakeFunction sends jobs into the model's line, and both it and the processor re-time the
messages they received (a failed one comes back after a short backoff, a crashed run sooner); the functions
that free a model slot wake the dispatcher, which waits on those wakes (SlotWakeQueue)."""

from __future__ import annotations

import math
from functools import cache, cached_property
from typing import Any

import boto3
from botocore.config import Config

# The model's line is one message group: the FIFO queue releases a job only after the one before it is done.
MODEL_GROUP = "model"
# A wake carries no data: it only tells the dispatcher to read the line summary again.
WAKE_BODY = "a model slot freed"
# SQS's longest long poll, and the most messages one receive (and one batch delete) takes.
_LONGEST_WAIT_SECONDS = 20
_MOST_MESSAGES = 10
# Wakes are best effort, with the dispatcher's fallback read behind them: one attempt, no SDK backoff, so a
# wake queue that refuses holds up neither the run that frees a slot (its slot's next job waits for its end)
# nor a cancel. A wait's read timeout outlasts the longest long poll.
_WAKE_CLIENT = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=_LONGEST_WAIT_SECONDS + 5)


def slot_group(slot: int) -> str:
    return f"slot-{slot}"


class SqsQueues:
    """Satisfies logic.ports.JobLine, logic.ports.SlotLines, logic.ports.SlotWakes and logic.ports.MessageVisibility."""

    def __init__(self, client: Any | None = None) -> None:
        self._given = client
        self._sqs = client or boto3.client("sqs")

    @cached_property
    def _wake_sqs(self) -> Any:
        """The client of the wakes, made on the first (only the functions around the model slots use it)."""
        return self._given or boto3.client("sqs", config=_WAKE_CLIENT)

    def send_job(self, queue_url: str, body: str, task_id: str) -> None:
        """Appends a task's job to the model's line. Deduplicated by task id: a repeated hand-over within
        SQS's 5-minute window is dropped, and the processor is idempotent per task after it."""
        self._sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId=MODEL_GROUP, MessageDeduplicationId=task_id
        )

    def send_to_slot(self, queue_url: str, body: str, task_id: str, slot: int) -> None:
        """Hands a task that took `slot` to that slot's message group: SQS releases a group's next message only
        once the one before is deleted, so a slot runs one job at a time. Deduplicated by task id, so a
        dispatch repeated after a crash does not run the task twice."""
        self._sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId=slot_group(slot), MessageDeduplicationId=task_id
        )

    def wake(self, queue_url: str) -> None:
        """One wake on the standard SlotWakeQueue: cheap, unordered, and any number of them mean the same."""
        self._wake_sqs.send_message(QueueUrl=queue_url, MessageBody=WAKE_BODY)

    def wait_for_wake(self, queue_url: str, seconds: float) -> list[str]:
        """A long poll (whole seconds, as SQS counts them) that returns as soon as a wake is there: the
        receipt handles of the wakes it received, for delete_wakes."""
        wait = min(_LONGEST_WAIT_SECONDS, max(1, math.ceil(seconds)))
        received = self._wake_sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=_MOST_MESSAGES, WaitTimeSeconds=wait
        ).get("Messages", [])
        return [str(message["ReceiptHandle"]) for message in received]

    def delete_wakes(self, queue_url: str, received: list[str]) -> None:
        """One batch: a wait receives at most _MOST_MESSAGES, as many as a batch holds."""
        entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(received)]
        self._wake_sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    def hide_for(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Sets when a received message reappears if it is not deleted: after a crash, or as a retry backoff.
        Works on any queue (the intake's or the model's), named by the ARN its Lambda event carries."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def hide_all_for(self, queue_arn: str, receipt_handles: list[str], seconds: int) -> None:
        """As hide_for, for every message of a Lambda batch at once (ChangeMessageVisibilityBatch, which IAM
        authorises as ChangeMessageVisibility). Raises if SQS refused any of them."""
        for start in range(0, len(receipt_handles), _MOST_MESSAGES):
            chunk = receipt_handles[start : start + _MOST_MESSAGES]
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self._url(queue_arn),
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                    for index, handle in enumerate(chunk)
                ],
            )
            if response.get("Failed"):
                raise RuntimeError(f"SQS kept the visibility of some messages: {response['Failed']}")

    @cache  # noqa: B019 - one SqsQueues per warm container; the URL of a queue never changes
    def _url(self, queue_arn: str) -> str:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        return str(self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
