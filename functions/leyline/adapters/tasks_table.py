"""DynamoDB access for tasks. The only module that knows the table's attribute names.

The low-level client, not boto3's resource layer: creating the resource took twice as long (about 22 vs
12 ms), on the cold start of every function (docs/benchmarks.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from leyline.models import ClientBacklog, QueueSnapshot, Task, TaskState, iso, parse_iso
from leyline.states import sources_of

QUEUE_INDEX = "QueueIndex"
CLIENT_INDEX = "ClientIndex"
# Tasks waiting for or inside the model carry this partition key in the sparse QueueIndex.
ACTIVE = "ACTIVE"
# Attributes whose names DynamoDB reserves, written as these placeholders in expressions.
_RESERVED = {"#state": "state", "#queue": "queue"}
_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


class TaskRepository:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._dynamodb = client or boto3.client("dynamodb")

    def create(self, task: Task) -> None:
        self._dynamodb.put_item(
            TableName=self._table, Item=_marshal(_to_item(task)), ConditionExpression="attribute_not_exists(task_id)"
        )

    def get(self, task_id: str) -> Task | None:
        key = _marshal({"task_id": task_id})
        item = self._dynamodb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return _from_item(_unmarshal(item)) if item else None

    def mark_queued(self, task_id: str, seq: int, now: datetime, *, opened_since: datetime) -> bool:
        """-> QUEUED, taking a place in line, while its upload window is open. False if the task moved on
        already, its window closed (it was created before `opened_since`) or it is unknown."""
        return self._move(
            task_id,
            TaskState.QUEUED,
            "SET #state = :target, #queue = :active, queued_seq = :seq, queued_at = :now",
            {":active": ACTIVE, ":seq": seq, ":now": iso(now), ":opened_since": iso(opened_since)},
            also="created_at >= :opened_since",  # ISO 8601 UTC strings of one format sort as the times do
        )

    def mark_processing(self, task_id: str, seq: int, now: datetime) -> bool:
        """-> PROCESSING. A retry after a crash re-enters from PROCESSING and keeps its progress."""
        return self._move(
            task_id,
            TaskState.PROCESSING,
            "SET #state = :target, #queue = :active, started_at = :now,"
            " queued_seq = if_not_exists(queued_seq, :seq), queued_at = if_not_exists(queued_at, :now),"
            " progress = if_not_exists(progress, :zero)",
            {":active": ACTIVE, ":seq": seq, ":now": iso(now), ":zero": 0},
        )

    def set_progress(self, task_id: str, progress: int) -> bool:
        """Progress moves only inside the model: the PROCESSING -> PROCESSING transition."""
        return self._move(
            task_id,
            TaskState.PROCESSING,
            "SET progress = :progress",
            {":progress": progress},
            only=TaskState.PROCESSING,
        )

    def mark_succeeded(self, task_id: str, now: datetime) -> bool:
        """-> SUCCESS; False (and nothing written) if the task already ended otherwise, e.g. cancelled or failed."""
        return self._move(
            task_id,
            TaskState.SUCCESS,
            "SET #state = :target, progress = :done, finished_at = :now REMOVE #queue, waiting_client",
            {":done": 100, ":now": iso(now)},
        )

    def mark_failed(self, task_id: str, code: str, message: str, now: datetime) -> bool:
        """Any unfinished task can fail; a finished one keeps its outcome."""
        return self._move(
            task_id,
            TaskState.FAILURE,
            "SET #state = :target, finished_at = :now, error_code = :code, error_message = :message"
            " REMOVE #queue, waiting_client",
            {":now": iso(now), ":code": code, ":message": message},
        )

    def mark_cancelled(self, task_id: str, now: datetime) -> bool:
        """-> CANCELLED, leaving the line (QueueIndex) and the client's backlog at once; a finished task keeps
        its outcome. Progress stays where it was."""
        return self._move(
            task_id,
            TaskState.CANCELLED,
            "SET #state = :target, finished_at = :now REMOVE #queue, waiting_client",
            {":now": iso(now)},
        )

    def delete(self, task_id: str) -> None:
        """Removes the record, whatever its state; nothing happens if there is none."""
        self._dynamodb.delete_item(TableName=self._table, Key=_marshal({"task_id": task_id}))

    def queue_snapshot(self, seq: int) -> QueueSnapshot:
        """Counts the active tasks that entered the line before `seq`; 0 when the task is first."""
        ahead = self._count(QUEUE_INDEX, "#queue = :active AND queued_seq < :seq", {":active": ACTIVE, ":seq": seq})
        return QueueSnapshot(ahead=ahead, head_started_at=self._head_started_at() if ahead else None)

    def client_backlog(self, client: str, pending_since: datetime) -> ClientBacklog:
        """Tasks of `client` not yet finished, leaving out uploads that can no longer arrive
        (PENDING since before `pending_since`), and when its oldest open upload ticket was created."""
        pending = {":client": client, ":pending": TaskState.PENDING.value}
        in_line = self._count(CLIENT_INDEX, "waiting_client = :client", pending, where="#state <> :pending")
        query = _expressions(
            pending | {":since": iso(pending_since)},
            KeyConditionExpression="waiting_client = :client AND created_at >= :since",
            FilterExpression="#state = :pending",
        )
        tickets: list[str] = []  # oldest first: the index sorts by created_at
        while True:
            page = self._dynamodb.query(
                TableName=self._table, IndexName=CLIENT_INDEX, ProjectionExpression="created_at", **query
            )
            tickets += [str(_unmarshal(item)["created_at"]) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        oldest = parse_iso(tickets[0]) if tickets else None
        return ClientBacklog(in_line=in_line, open_tickets=len(tickets), oldest_ticket_at=oldest)

    def _count(self, index: str, key: str, values: dict[str, Any], where: str | None = None) -> int:
        query = _expressions(values, KeyConditionExpression=key, FilterExpression=where)
        total = 0
        while True:
            page = self._dynamodb.query(TableName=self._table, IndexName=index, Select="COUNT", **query)
            total += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                return total
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _head_started_at(self) -> datetime | None:
        """When the task at the head of the line entered the model, if it has."""
        query = _expressions({":active": ACTIVE}, KeyConditionExpression="#queue = :active")
        page = self._dynamodb.query(TableName=self._table, IndexName=QUEUE_INDEX, Limit=1, **query)
        if not page["Items"]:
            return None
        head = self.get(str(_unmarshal(page["Items"][0])["task_id"]))
        return head.started_at if head and head.state is TaskState.PROCESSING else None

    def _move(
        self,
        task_id: str,
        target: TaskState,
        expression: str,
        values: dict[str, Any],
        *,
        only: TaskState | None = None,
        also: str | None = None,
    ) -> bool:
        """Moves the task to `target` (`:target` in `expression`), on the condition that its state is one the
        transition table allows to move there (narrowed to `only`, and `also` when given). False if not."""
        condition, sources = transition_condition(target, only=only)
        if also:
            condition = f"{condition} AND {also}"
        if ":target" in expression:  # DynamoDB refuses values an expression does not use
            values = values | {":target": target.value}
        request = _expressions(
            values | sources,
            UpdateExpression=expression,
            ConditionExpression=f"attribute_exists(task_id) AND {condition}",
        )
        try:
            self._dynamodb.update_item(TableName=self._table, Key=_marshal({"task_id": task_id}), **request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def transition_condition(target: TaskState, *, only: TaskState | None = None) -> tuple[str, dict[str, str]]:
    """`#state IN (...)` over the states leyline.states allows to move to `target` (or `only` of them),
    and the values it names."""
    values = {f":from_{state.value.lower()}": state.value for state in sorted(sources_of(target, only=only))}
    if not values:
        raise ValueError(f"the transition table allows no move to {target}")
    return f"#state IN ({', '.join(values)})", values


def _expressions(values: dict[str, Any], **expressions: str | None) -> dict[str, Any]:
    """A request's expressions, with their values in DynamoDB's types and the reserved names they use."""
    given = {kind: text for kind, text in expressions.items() if text}
    used = " ".join(given.values())
    names = {placeholder: name for placeholder, name in _RESERVED.items() if placeholder in used}
    request: dict[str, Any] = given | {"ExpressionAttributeValues": _marshal(values)}
    if names:
        request["ExpressionAttributeNames"] = names
    return request


def _marshal(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def _unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _to_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": task.task_id,
        "state": task.state.value,
        "progress": task.progress,
        "created_at": iso(task.created_at),
        "expires_at": task.expires_at,
    }
    if task.client:
        item["client"] = item["waiting_client"] = task.client
    return item


def _from_item(item: dict[str, Any]) -> Task:
    created_at = parse_iso(item["created_at"])
    assert created_at is not None
    return Task(
        task_id=str(item["task_id"]),
        state=TaskState(item["state"]),
        created_at=created_at,
        expires_at=int(item["expires_at"]),
        client=item.get("client"),
        progress=int(item.get("progress", 0)),
        queued_seq=_int_or_none(item.get("queued_seq")),
        queued_at=parse_iso(item.get("queued_at")),
        started_at=parse_iso(item.get("started_at")),
        finished_at=parse_iso(item.get("finished_at")),
        error_code=item.get("error_code"),
        error_message=item.get("error_message"),
    )


def _int_or_none(value: Decimal | None) -> int | None:
    return None if value is None else int(value)
