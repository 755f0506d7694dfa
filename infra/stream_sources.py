"""DynamoDB stream event source mappings: read a table's stream in order, invoke the function, checkpoint.

Semantics of Lambda's stream poller (one poller per shard, ParallelizationFactor 1):
- records reach the function in stream order, one batch at a time per shard: the next batch waits for
  the previous one to succeed, so a failing record holds up the ones behind it (per-item order is kept);
- FilterCriteria drop the records no pattern matches before the batch is made (they count as processed);
- an error, timeout or crash retries the same batch; with ReportBatchItemFailures, the poller checkpoints
  before the lowest failed sequence number and retries from there;
- after MaximumRetryAttempts retries (-1: until the record expires) the batch is skipped and, with an
  OnFailure destination, a record of it (not the items: their stream positions) is sent there.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from moto.events.models import EventPattern

from infra.functions import Console, FunctionPool, Invocation
from infra.template import Stack, StreamSource

# Lambda polls each shard about four times a second.
_POLL_SECONDS = 0.25
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 8.0
_ERROR_BACKOFF_SECONDS = 1.0


class StreamPoller:
    """The poller of one shard of a mapping, on its own thread."""

    def __init__(
        self,
        stack: Stack,
        source: StreamSource,
        pool: FunctionPool,
        clients: dict[str, Any],
        console: Console,
        stopping: threading.Event,
    ) -> None:
        self.source = source
        self.pool = pool
        self._dynamodb = clients["dynamodb"]
        self._streams = clients["dynamodbstreams"]
        self._sqs = clients["sqs"]
        self._console = console
        self._stopping = stopping
        self._table = stack.physical_name(source.table_logical_id)
        self._region = stack.region
        self._on_failure_url = (
            None if source.on_failure_queue_logical_id is None else stack.queue_url(source.on_failure_queue_logical_id)
        )
        self._filters = [EventPattern.load(pattern) for pattern in source.filter_patterns]
        self._name = f"{pool.spec.logical_id}<-{source.table_logical_id}"
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._stream_arn = ""
        self._shard_id = ""
        self._after: str | None = None  # sequence number of the last record processed (None: none yet)
        # The last read's NextShardIterator, and the sequence number it reads after.
        self._next: tuple[str | None, str] | None = None

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._open()
        except Exception as error:
            self._log(f"cannot read the stream of {self._table}: {error!r}")
            return
        while not self._stopping.is_set():
            try:
                records = self._read()
                if not records:
                    self._stopping.wait(_POLL_SECONDS)
                    continue
                self._process(records)
            except Exception as error:  # keep polling, as Lambda's pollers do
                if self._stopping.is_set():
                    return
                self._log(f"poller error: {error!r}")
                self._stopping.wait(_ERROR_BACKOFF_SECONDS)

    def _open(self) -> None:
        self._stream_arn = self._dynamodb.describe_table(TableName=self._table)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        if len(shards) != 1:
            raise RuntimeError(f"the local poller reads one shard, the stream has {len(shards)}")
        self._shard_id = shards[0]["ShardId"]
        if self.source.starting_position == "LATEST":  # what is written from now on: start after the last record
            self._after = self._last_sequence_number()

    def _last_sequence_number(self) -> str | None:
        last = None
        while True:
            records = self._records(last, limit=1000)
            if not records:
                return last
            last = records[-1]["dynamodb"]["SequenceNumber"]

    def _records(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        """The records after sequence number `after` (None: from the oldest). A read goes on with the iterator the
        last one returned when it ended there, as Lambda's pollers read a shard; a new one is asked for only when
        the checkpoint moved elsewhere (a retry from a failed record). One call a poll, not two."""
        if self._next is not None and self._next[0] == after:
            iterator = self._next[1]
        else:
            position = {"ShardIteratorType": "TRIM_HORIZON"}
            if after is not None:
                position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
            iterator = self._streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=self._shard_id, **position)[
                "ShardIterator"
            ]
        answer = self._streams.get_records(ShardIterator=iterator, Limit=limit)
        records: list[dict[str, Any]] = answer["Records"]
        following = answer.get("NextShardIterator")  # none once a shard is closed
        self._next = (records[-1]["dynamodb"]["SequenceNumber"] if records else after, following) if following else None
        return records

    def _read(self) -> list[dict[str, Any]]:
        """The next records after the checkpoint; those no filter matches are passed over at once."""
        while not self._stopping.is_set():
            records = self._records(self._after, self.source.batch_size)
            if not records:
                return []
            kept = [self._lambda_record(record) for record in records]
            kept = [record for record in kept if self._passes(record)]
            if kept:
                return kept
            self._after = records[-1]["dynamodb"]["SequenceNumber"]
        return []

    def _passes(self, record: dict[str, Any]) -> bool:
        # moto's EventBridge pattern matcher: Lambda's filter criteria use the same pattern syntax.
        return not self._filters or any(pattern.matches_event(record) for pattern in self._filters)  # type: ignore[arg-type]

    def _process(self, batch: list[dict[str, Any]]) -> None:
        """Invoke until the batch is done (or given up on), moving the checkpoint as it goes."""
        attempts = 0
        delay = _FIRST_RETRY_SECONDS
        while batch and not self._stopping.is_set():
            invocation = self.pool.invoke({"Records": batch})
            failed_at = self._first_failure(invocation, batch)
            if failed_at is None:
                self._after = batch[-1]["dynamodb"]["SequenceNumber"]
                return
            if failed_at > 0:  # what came before the first failure is done
                self._after = batch[failed_at - 1]["dynamodb"]["SequenceNumber"]
                batch = batch[failed_at:]
            attempts += 1
            limit = self.source.maximum_retry_attempts
            if 0 <= limit < attempts:
                self._give_up(batch, attempts)
                return
            self._stopping.wait(delay)
            delay = min(delay * 2, _MAX_RETRY_SECONDS)

    def _first_failure(self, invocation: Invocation, batch: list[dict[str, Any]]) -> int | None:
        """Index of the first record to retry; None when the batch succeeded."""
        if not invocation.ok:
            self._log(f"batch failed ({invocation.error}): retrying it")
            return 0
        if not self.source.report_batch_item_failures:
            return None
        result = invocation.result()
        failures = result.get("batchItemFailures") if isinstance(result, dict) else None
        if not failures:
            return None
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        ids = [item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures]
        if not all(identifier in numbers for identifier in ids):
            self._log(f"invalid batchItemFailures {failures!r}: the whole batch is retried")
            return 0
        return min(numbers.index(identifier) for identifier in ids)

    def _give_up(self, batch: list[dict[str, Any]], attempts: int) -> None:
        """Skip the batch, recording where it was in the OnFailure destination, as Lambda does."""
        self._after = batch[-1]["dynamodb"]["SequenceNumber"]
        self._log(f"gave up on {len(batch)} records after {attempts} attempts")
        if self._on_failure_url is None:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.pool.spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": now,
            "DDBStreamBatchInfo": {
                "shardId": self._shard_id,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": now,
                "approximateArrivalOfLastRecord": now,
                "batchSize": len(batch),
                "streamArn": self._stream_arn,
            },
        }
        self._sqs.send_message(QueueUrl=self._on_failure_url, MessageBody=json.dumps(record))

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """The stream API's record in the shape Lambda's event carries it."""
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self._region,
            "dynamodb": _json_safe(dynamodb),
            "eventSourceARN": self._stream_arn,
        }

    def _log(self, text: str) -> None:
        self._console.line(self._name, text)


def _json_safe(value: Any) -> Any:
    """Binary attribute values as the base64 text Lambda's JSON event carries."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
