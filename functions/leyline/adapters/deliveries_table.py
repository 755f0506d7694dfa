"""DynamoDB access for the webhook delivery log (WebhookDeliveriesTable): one item per attempt."""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from leyline.logic.webhooks import Attempt
from leyline.models import iso, parse_iso

_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


class DeliveryTable:
    """Satisfies logic.webhooks.DeliveryLog."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._dynamodb = client or boto3.client("dynamodb")

    def record(self, attempt: Attempt) -> None:
        item: dict[str, Any] = {
            "task_id": attempt.task_id,
            # Sorts a task's attempts by time; the webhook-id and number keep two at the same instant apart.
            "attempt_id": f"{iso(attempt.at)}#{attempt.webhook_id}#{attempt.attempt:03d}",
            "event_type": attempt.event_type,
            "webhook_id": attempt.webhook_id,
            "attempt": attempt.attempt,
            "at": iso(attempt.at),
            "outcome": attempt.outcome,
            "expires_at": attempt.expires_at,
        }
        optional = {"status": attempt.status, "error": attempt.error, "next_retry_at": iso(attempt.next_retry_at)}
        item |= {name: value for name, value in optional.items() if value is not None}
        self._dynamodb.put_item(TableName=self._table, Item={k: _serializer.serialize(v) for k, v in item.items()})

    def attempts(self, task_id: str) -> list[Attempt]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "task_id = :task",
            "ExpressionAttributeValues": {":task": {"S": task_id}},
        }
        found: list[Attempt] = []
        while True:
            page = self._dynamodb.query(**query)
            found += [_attempt({k: _deserializer.deserialize(v) for k, v in i.items()}) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _attempt(item: dict[str, Any]) -> Attempt:
    at = parse_iso(item["at"])
    assert at is not None
    return Attempt(
        task_id=str(item["task_id"]),
        event_type=str(item["event_type"]),
        webhook_id=str(item["webhook_id"]),
        attempt=int(item["attempt"]),
        at=at,
        status=None if item.get("status") is None else int(item["status"]),
        error=item.get("error"),
        outcome=str(item["outcome"]),
        next_retry_at=parse_iso(item.get("next_retry_at")),
        expires_at=int(item.get("expires_at", 0)),
    )
