"""SQS event source mappings: poll a queue, invoke the function with Lambda's SQS event, delete.

Semantics of Lambda's SQS poller: a successful batch is deleted; with ReportBatchItemFailures only the
items the function reports as failed stay; an error, timeout or crash leaves the whole batch to
reappear after the queue's visibility timeout (and SQS redrive moves it to the DLQ after
maxReceiveCount, on its own).
"""

from __future__ import annotations

import base64
import math
import threading
import time
from typing import Any

from infra.functions import Console, FunctionPool, Invocation
from infra.template import SqsSource, Stack

# Lambda's pollers long-poll for 20 s. A poll waiting when the stack stops is not waited for (Runtime.stop):
# it delivers nothing once the stack stops. Each poll is a request to the emulator, which costs CPU: an idle
# stack polled every second spent about a tenth of a core on its pollers.
_WAIT_TIME_SECONDS = 20
_MAX_RECEIVE = 10  # SQS's per-call limit
_ERROR_BACKOFF_SECONDS = 1.0
DEFAULT_POLLERS = 2  # per mapping, when neither reserved nor maximum concurrency caps it


class SqsPoller:
    """One polling loop of an event source mapping, on its own thread."""

    def __init__(
        self,
        stack: Stack,
        source: SqsSource,
        pool: FunctionPool,
        sqs: Any,
        console: Console,
        stopping: threading.Event,
    ) -> None:
        self.source = source
        self.pool = pool
        self._sqs = sqs
        self._console = console
        self._stopping = stopping
        self._queue_url = stack.queue_url(source.queue_logical_id)
        self._queue_arn = stack.arn(source.queue_logical_id)
        self._region = stack.region
        self._delivering = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"{pool.spec.logical_id}<-{source.queue_logical_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Waits for a delivery in flight to end; a poller waiting in a long poll is left to it (a daemon)."""
        if self._delivering.is_set():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._receive_batch()
                if messages and not self._stopping.is_set():  # else they reappear after their visibility timeout
                    self._delivering.set()
                    try:
                        self._deliver(messages)
                    finally:
                        self._delivering.clear()
            except Exception as error:  # keep polling, as Lambda's pollers do
                if self._stopping.is_set():
                    return
                self._log(f"poller error: {error!r}")
                self._stopping.wait(_ERROR_BACKOFF_SECONDS)

    def _receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages, waiting up to MaximumBatchingWindowInSeconds to fill it."""
        window_ends = time.monotonic() + self.source.maximum_batching_window_seconds
        messages: list[dict[str, Any]] = []
        while len(messages) < self.source.batch_size and not self._stopping.is_set():
            window_left = window_ends - time.monotonic()
            if messages and window_left <= 0:
                break
            # Once the batch has a message, wait no longer than its window (SQS counts in whole seconds).
            wait = min(_WAIT_TIME_SECONDS, math.ceil(window_left)) if messages else _WAIT_TIME_SECONDS
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(_MAX_RECEIVE, self.source.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(response.get("Messages", []))
        return messages

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        invocation = self.pool.invoke(event)
        failed = self._failed_ids(invocation, messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), _MAX_RECEIVE):
            chunk = done[start : start + _MAX_RECEIVE]
            response = self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                self._log(f"could not delete a message: {failure}")

    def _failed_ids(self, invocation: Invocation, messages: list[dict[str, Any]]) -> set[str]:
        """Message ids that must stay on the queue."""
        every_id = {message["MessageId"] for message in messages}
        if not invocation.ok:
            return every_id
        if not self.source.report_batch_item_failures:
            return set()
        result = invocation.result()
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        if not failures:
            return set()
        ids = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures}
        if not ids <= every_id:
            # Lambda treats a malformed partial response (unknown or missing id) as a total failure.
            self._log(f"invalid batchItemFailures {failures!r}: the whole batch stays on the queue")
            return every_id
        return {str(message_id) for message_id in ids}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": self._region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _log(self, text: str) -> None:
        self._console.line(f"{self.pool.spec.logical_id}<-{self.source.queue_logical_id}", text)


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API attribute shape (StringValue) to Lambda event shape (stringValue)."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": None if binary is None else _base64(binary),
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [_base64(item) for item in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pollers_for(source: SqsSource, pool: FunctionPool) -> int:
    """How many concurrent pollers a mapping gets: never more than the function may run."""
    limit = source.maximum_concurrency or pool.spec.reserved_concurrency or DEFAULT_POLLERS
    return min(limit, pool.capacity)
