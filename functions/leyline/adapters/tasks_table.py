"""DynamoDB access for tasks. The only module that knows the table's attribute names.

The low-level client, not boto3's resource layer: creating the resource took twice as long (about 22 vs
12 ms), on the cold start of every function (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from leyline.errors import BadRequest
from leyline.models import ClientBacklog, LineSummary, OwnedTasks, Task, TaskState, Webhook, iso, parse_iso
from leyline.states import sources_of

CLIENT_INDEX = "ClientIndex"
OWNER_INDEX = "OwnerIndex"  # owner (the user's sub) -> created_at; sparse: anonymous tasks have no owner
# The line's own items share the table with the tasks, under keys no task id (a UUID) can take: the last
# place given, and LINE_SHARDS identical copies of the LineSummary, all written in the same transaction, so
# that the status reads (one copy each, chosen by task id) spread over LINE_SHARDS partition keys.
LAST_PLACE_KEY = "line#last-place"
LINE_SHARDS = 10
LINE_KEY_PREFIX = "line#"
# Conditional writes on the line's items lose to a concurrent one now and then: read again and retry.
_ATTEMPTS = 8
# Attributes whose names DynamoDB reserves, written as these placeholders in expressions.
_RESERVED = {"#state": "state"}


def summary_key(shard: int) -> str:
    return f"line#summary#{shard}"


def summary_shard(task_id: str) -> int:
    """A stable spread (crc32, not Python's per-process hash) of the status reads over the copies."""
    return zlib.crc32(task_id.encode()) % LINE_SHARDS


class _Contended(Exception):
    """A line item changed between its read and the transaction: read again and retry."""


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

    def mark_queued(self, task_id: str, now: datetime, *, opened_since: datetime) -> bool:
        """-> QUEUED with the next place in line, while its upload window is open. False if the task moved on
        already, its window closed (it was created before `opened_since`) or it is unknown.

        The place and the task are written in one transaction, on the condition that the last place is still
        the one read: a refused move uses no place, so places have no gaps and never repeat."""
        for _ in range(_ATTEMPTS):
            item = self._get_item(LAST_PLACE_KEY)
            last = int(item["last_place"]) if item else 0
            counter = _update(
                self._table,
                LAST_PLACE_KEY,
                "SET last_place = :place",
                {":place": last + 1} | ({":last": last} if item else {}),
                "last_place = :last" if item else "attribute_not_exists(task_id)",
            )
            task = self._move_request(
                task_id,
                TaskState.QUEUED,
                "SET #state = :target, queued_seq = :place, queued_at = :now",
                {":place": last + 1, ":now": iso(now), ":opened_since": iso(opened_since)},
                also="created_at >= :opened_since",  # ISO 8601 UTC strings of one format sort as the times do
            )
            try:
                return self._transact(task, [{"Update": counter}])
            except _Contended:
                continue
        raise RuntimeError(f"could not give task {task_id} a place in line: the line kept changing")

    def mark_processing(self, task_id: str, now: datetime) -> bool:
        """-> PROCESSING, entering the line summary's running tasks. A retry after a crash re-enters from
        PROCESSING, keeps its place, slot and progress, and restarts its clock."""
        return self._enter_model(task_id, now, slots=None) is not None

    def take_slot(self, task_id: str, now: datetime, *, slots: int) -> int | None:
        """QUEUED -> PROCESSING in the lowest free slot of 1..`slots`, in the same transaction as the summary,
        whose version condition makes two starts racing for the last slot take it once. None when every slot
        is taken or the task is no longer QUEUED."""
        return self._enter_model(task_id, now, slots=slots)

    def _enter_model(self, task_id: str, now: datetime, *, slots: int | None) -> int | None:
        moved = self._move_in_line(
            task_id,
            TaskState.PROCESSING,
            "SET #state = :target, started_at = :now, progress = if_not_exists(progress, :zero)",
            {":now": iso(now), ":zero": 0},
            now,
            slots=slots,
        )
        return None if moved is None else int(moved)  # a task without a place (none today) is in slot 1

    def set_progress(self, task_id: str, progress: int) -> bool:
        """Progress moves only inside the model: the PROCESSING -> PROCESSING transition."""
        request = self._move_request(
            task_id,
            TaskState.PROCESSING,
            "SET progress = :progress",
            {":progress": progress},
            only=TaskState.PROCESSING,
        )
        return self._move(request)

    def mark_succeeded(self, task_id: str, now: datetime) -> bool:
        """-> SUCCESS; False (and nothing written) if the task already ended otherwise, e.g. cancelled or failed."""
        return self._finish(
            task_id,
            TaskState.SUCCESS,
            "SET #state = :target, progress = :done, finished_at = :now REMOVE waiting_client",
            {":done": 100, ":now": iso(now)},
            now,
        )

    def mark_failed(self, task_id: str, code: str, message: str, now: datetime) -> bool:
        """Any unfinished task can fail; a finished one keeps its outcome."""
        return self._finish(
            task_id,
            TaskState.FAILURE,
            "SET #state = :target, finished_at = :now, error_code = :code, error_message = :message"
            " REMOVE waiting_client",
            {":now": iso(now), ":code": code, ":message": message},
            now,
        )

    def mark_cancelled(self, task_id: str, now: datetime) -> bool:
        """-> CANCELLED, leaving the line (its summary) and the client's backlog at once; a finished task keeps
        its outcome. Progress stays where it was."""
        return self._finish(
            task_id,
            TaskState.CANCELLED,
            "SET #state = :target, finished_at = :now REMOVE waiting_client",
            {":now": iso(now)},
            now,
        )

    def delete(self, task_id: str) -> None:
        """Removes the record, whatever its state; nothing happens if there is none."""
        self._dynamodb.delete_item(TableName=self._table, Key=_marshal({"task_id": task_id}))

    def line_summary(self, task_id: str) -> LineSummary:
        """One consistent GetItem of one copy of the summary, whatever the length of the line."""
        return _summary_of(self._get_item(summary_key(summary_shard(task_id))))

    def client_backlog(self, client: str, pending_since: datetime) -> ClientBacklog:
        """Tasks of `client` not yet finished, leaving out uploads that can no longer arrive
        (PENDING since before `pending_since`), and when its oldest open upload ticket was created."""
        pending = {":client": client, ":pending": TaskState.PENDING.value}
        in_line = self._task_ids(CLIENT_INDEX, "waiting_client = :client", pending, where="#state <> :pending")
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
        return ClientBacklog(in_line_ids=tuple(in_line), open_tickets=len(tickets), oldest_ticket_at=oldest)

    def owned_by(self, owner: str, *, limit: int, cursor: str | None) -> OwnedTasks:
        """One Query of the owner's partition of OwnerIndex, newest first (the index projects whole tasks, so
        nothing more is read). One item more than the page is asked for, so the last page says so itself."""
        query: dict[str, Any] = _expressions({":owner": owner}, KeyConditionExpression="#owner = :owner")
        query["ExpressionAttributeNames"] = {"#owner": "owner"}  # a reserved word in DynamoDB
        if cursor is not None:
            query["ExclusiveStartKey"] = _marshal(_cursor_key(cursor, owner))
        page = self._dynamodb.query(
            TableName=self._table, IndexName=OWNER_INDEX, ScanIndexForward=False, Limit=limit + 1, **query
        )
        items = [_unmarshal(item) for item in page["Items"]]
        if len(items) > limit:
            shown, more = items[:limit], True
        else:  # all there is, unless DynamoDB's 1 MB page ended the read early
            shown, more = items, "LastEvaluatedKey" in page
        tasks = tuple(_from_item(item) for item in shown)
        return OwnedTasks(tasks=tasks, next_cursor=_cursor_of(shown[-1]) if more and shown else None)

    def _task_ids(self, index: str, key: str, values: dict[str, Any], where: str) -> list[str]:
        """The task ids an index query finds (every index holds the table's key)."""
        query = _expressions(values, KeyConditionExpression=key, FilterExpression=where)
        found: list[str] = []
        while True:
            page = self._dynamodb.query(TableName=self._table, IndexName=index, ProjectionExpression="task_id", **query)
            found += [str(_unmarshal(item)["task_id"]) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get_item(self, key: str) -> dict[str, Any] | None:
        item = self._dynamodb.get_item(TableName=self._table, Key=_marshal({"task_id": key}), ConsistentRead=True)
        return _unmarshal(item["Item"]) if "Item" in item else None

    def _get_items_together(self, *keys: str) -> list[dict[str, Any] | None]:
        """The items as they all stood at one moment (TransactGetItems, authorised as GetItem on each): one
        round trip for a move's task and line summary. _Contended while a transaction is writing one of them."""
        gets: list[Any] = [{"Get": {"TableName": self._table, "Key": _marshal({"task_id": key})}} for key in keys]
        try:
            responses = self._dynamodb.transact_get_items(TransactItems=gets)["Responses"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            raise _Contended(keys) from exc
        return [_unmarshal(response["Item"]) if response.get("Item") else None for response in responses]

    def _finish(self, task_id: str, target: TaskState, expression: str, values: dict[str, Any], now: datetime) -> bool:
        return self._move_in_line(task_id, target, expression, values, now) is not None

    def _move_in_line(
        self,
        task_id: str,
        target: TaskState,
        expression: str,
        values: dict[str, Any],
        now: datetime,
        *,
        slots: int | None = None,
    ) -> int | None:
        """Moves the task to `target` as _move does and, when the move changes the line, the summary's copies
        with it in one transaction (LineSummary.after_move). The task's state is read first and the write is
        conditioned on it: a state or summary that changed meanwhile is read again. With `slots`, only a
        QUEUED task moves, and only into a free one of that many slots. Returns the slot the task holds after
        a move into the model (1 after any other move), None when the move is refused."""
        for _ in range(_ATTEMPTS):
            try:
                task_item, summary_item = self._get_items_together(task_id, summary_key(0))
            except _Contended:
                continue
            task = _from_item(task_item) if task_item else None
            sources = sources_of(target, only=TaskState.QUEUED if slots else None)
            if task is None or task.state not in sources:
                return None
            after, slot = None, None
            if task.queued_seq is not None:  # only a task that took a place in line moves the line
                summary = _summary_of(summary_item)
                if slots is not None and (slot := summary.free_slot(slots)) is None:
                    return None  # every slot is taken
                after = summary.after_move(task.state, target, task.queued_seq, now, slot=slot)
            held = after.slots.get(task.queued_seq) if after and task.queued_seq is not None else None
            update = (expression + ", slot = :slot", values | {":slot": held}) if held else (expression, values)
            request = self._move_request(task_id, target, *update, only=task.state)
            if after is None:
                if self._move(request):
                    return 1
                continue
            version = int(summary_item["version"]) if summary_item else 0
            copies = [_summary_copy(self._table, shard, after, version) for shard in range(LINE_SHARDS)]
            try:
                if self._transact(request, copies):
                    return held or 1
            except _Contended:
                pass
        raise RuntimeError(f"could not move task {task_id} to {target}: it or the line kept changing")

    def _transact(self, task: dict[str, Any], line: list[dict[str, Any]]) -> bool:
        """Writes the task's update and the line's items (transaction actions) together. False if the task's
        condition failed; _Contended if a line item's did (or a concurrent transaction touched them)."""
        try:
            items: list[Any] = [{"Update": task}, *line]
            self._dynamodb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            raise _Contended(task["Key"]) from exc
        return True

    def _move(self, request: dict[str, Any]) -> bool:
        """Makes one conditional update of _move_request alone. False if its condition refuses it."""
        try:
            self._dynamodb.update_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _move_request(
        self,
        task_id: str,
        target: TaskState,
        expression: str,
        values: dict[str, Any],
        *,
        only: TaskState | None = None,
        also: str | None = None,
    ) -> dict[str, Any]:
        """Moves the task to `target` (`:target` in `expression`), on the condition that its state is one the
        transition table allows to move there (narrowed to `only`, and `also` when given): the update, for
        update_item (_move) or a transaction."""
        condition, sources = transition_condition(target, only=only)
        if also:
            condition = f"{condition} AND {also}"
        if ":target" in expression:  # DynamoDB refuses values an expression does not use
            values = values | {":target": target.value}
        return _update(self._table, task_id, expression, values | sources, f"attribute_exists(task_id) AND {condition}")


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


def _update(table: str, key: str, expression: str, values: dict[str, Any], condition: str) -> dict[str, Any]:
    request = _expressions(values, UpdateExpression=expression, ConditionExpression=condition)
    return {"TableName": table, "Key": _marshal({"task_id": key})} | request


def _summary_copy(table: str, shard: int, summary: LineSummary, version: int) -> dict[str, Any]:
    """Writes a whole copy of the summary (a Put: every attribute is written, so nothing of the old item is
    kept), on the condition that it is still the version the move read: a transaction's action."""
    item = {
        "task_id": summary_key(shard),
        "line_cursor": summary.cursor,
        "running": {str(place): iso(started) for place, started in summary.running.items()},
        "removed": list(summary.removed),
        "slots": {str(place): slot for place, slot in summary.slots.items()},
        "version": version + 1,
    }
    put = {"TableName": table, "Item": _marshal(item)}
    if not version:
        return {"Put": put | {"ConditionExpression": "attribute_not_exists(task_id)"}}
    return {"Put": put | _expressions({":read": version}, ConditionExpression="version = :read")}


def _summary_of(item: dict[str, Any] | None) -> LineSummary:
    if not item:
        return LineSummary()
    running = {int(place): parse_iso(started) for place, started in item.get("running", {}).items()}
    return LineSummary(
        cursor=int(item.get("line_cursor", 0)),
        running={place: started for place, started in running.items() if started is not None},
        removed=tuple(int(place) for place in item.get("removed", [])),
        slots={int(place): int(slot) for place, slot in item.get("slots", {}).items()},
    )


_CURSOR_KEYS = ("owner", "created_at", "task_id")  # OwnerIndex's key and the table's: where a Query resumes


def _cursor_of(item: dict[str, Any]) -> str:
    """The next page starts after this item: its keys, as opaque text (base64url of JSON)."""
    keys = {name: str(item[name]) for name in _CURSOR_KEYS}
    return base64.urlsafe_b64encode(json.dumps(keys, separators=(",", ":")).encode()).decode().rstrip("=")


def _cursor_key(cursor: str, owner: str) -> dict[str, str]:
    """The ExclusiveStartKey a cursor stands for; only one this store gave for this owner is taken (another
    user's cursor would read nothing of theirs, but it is refused all the same)."""
    invalid = BadRequest("The cursor is not one a GET /tasks gave you; start again without it.", code="INVALID_CURSOR")
    try:
        keys = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise invalid from exc
    if not isinstance(keys, dict) or set(keys) != set(_CURSOR_KEYS) or keys["owner"] != owner:
        raise invalid
    if not all(isinstance(keys[name], str) for name in _CURSOR_KEYS):
        raise invalid
    try:
        parse_iso(keys["created_at"])
    except ValueError as exc:
        raise invalid from exc
    return {name: keys[name] for name in _CURSOR_KEYS}


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
    if task.owner:
        item["owner"] = task.owner
    if task.webhook is not None:
        item["webhook_url"] = task.webhook.url
        item["webhook_events"] = list(task.webhook.events)
    if task.notify_email:
        item["notify_email"] = True
    return item


def task_from_image(image: dict[str, Any]) -> Task | None:
    """The task a stream record's image holds (DynamoDB JSON); None for the line's own items."""
    item = _unmarshal(image)
    return _from_item(item) if "state" in item and "created_at" in item else None


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
        owner=item.get("owner"),
        webhook=Webhook(str(item["webhook_url"]), tuple(item.get("webhook_events", ())))
        if "webhook_url" in item
        else None,
        notify_email=bool(item.get("notify_email", False)),
        slot=_int_or_none(item.get("slot")),
    )


def _int_or_none(value: Decimal | None) -> int | None:
    return None if value is None else int(value)
