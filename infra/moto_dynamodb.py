"""moto's DynamoDB made to behave as DynamoDB does under concurrent writes and long tables.

The changes, on the local stack's server and in the in-process tests alike:

- One lock around the writes and the reads. moto copies state before a TransactWriteItems (to roll it back on
  a refused condition) without a lock, so a write served on another thread meanwhile could break the copy
  ("dictionary changed size during iteration"). And moto writes an item in place, one attribute at a time (an
  UpdateItem of a new key first stores the bare key), and a transaction one item at a time, so a read served
  meanwhile saw half a write: an item with its key and no other attribute. DynamoDB applies a write to an item
  atomically and serialises transactions with GetItem; one lock gives the emulator the same behaviour.
- A transaction's rollback restores only the items it names. moto deep-copies every table a transaction
  names, once per action, before applying it: each move on a line of 10,000 tasks copied the whole table
  several times (a quadratic intake, seconds per upload). The items a transaction can change are exactly the
  ones its actions name, so a copy of those (and of the stream's length) undoes it as well.
- An index query reads only its partition (`partitioned_index_queries`).
- A read's items are written out as JSON at once (`items_answered_as_json`): moto walks botocore's response
  shapes value by value, about 5 ms for one task item, the larger part of a status read on the local stack.
  So are a stream's records (`stream_records_answered_as_json`).
- A condition is parsed once (`conditions_parsed_once`): moto parses a write's ConditionExpression twice, and
  a move of a task in line writes the line summary's copies under one same condition.
"""

from __future__ import annotations

import base64
import calendar
import copy
import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import moto.dynamodb.models as dynamodb_models
import moto.dynamodb.models.table as table_module
from moto.core.responses import ActionResult
from moto.dynamodb import comparisons
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

_LOCK = threading.RLock()
_QUERY = threading.local()  # the items one index query on this thread may look at
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
# The API's reads, each whole: moto's backend hands back its live items, which its response turns into plain
# values (DynamoResult) before it returns, so a read under the lock answers what it read, not a half-written item.
_READS = ("get_item", "batch_get_item", "transact_get_items", "query", "scan")


def serialise_item_access() -> None:
    """Serialises every read and write of items. Idempotent: each method is wrapped once per process."""
    dynamodb_models.copy = _TablesNotCopied  # type: ignore[assignment]
    for owner, names in ((DynamoDBBackend, _WRITES), (DynamoHandler, _READS)):
        for name in names:
            method = getattr(owner, name)
            if getattr(method, "_leyline_serialised", False):
                continue
            if name == "transact_write_items":
                method = _undone_on_failure(method)
            setattr(owner, name, _locked(method))


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    locked._leyline_serialised = True  # type: ignore[attr-defined]
    return locked


def partitioned_index_queries() -> None:
    """A Query of a secondary index reads only the items of its partition, as DynamoDB does. Idempotent.

    moto answers one by listing the whole table sorted by its key (n log n comparisons of DynamoType, each
    converting both values) and then testing every item against the key condition: a GET /tasks of 20 tasks
    took about a second with 10,000 tasks in the table, growing with the table. Here the table's items are
    grouped by the condition's attributes (their type and value, as DynamoType compares them) in one pass over
    raw values, kept until the next write to any table, and moto's own query then runs on the one group the
    condition names (moto sorts what it returns by the index's key itself): the same answer, at the cost of the
    partition's size while nothing is written."""
    if getattr(Table.query, "_leyline_partitioned", False):
        return
    every_item = Table.all_items
    query = Table.query

    def all_items(self: Table) -> list[Item]:
        scoped = getattr(_QUERY, "scope", None)
        if scoped is not None and scoped[0] is self:
            return list(scoped[1])
        return every_item(self)

    @functools.wraps(query)
    def partitioned(self: Table, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        if not index_name or not conditions:
            return query(self, *args, **kwargs)
        names = tuple(name for name, _ in conditions)
        partition = _partitions(self, names).get(tuple(_key_value(value) for _, value in conditions), ())
        _QUERY.scope = (self, partition)
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERY.scope = None

    for name in _ITEM_WRITES:
        method = getattr(DynamoDBBackend, name, None)
        if method is not None:
            setattr(DynamoDBBackend, name, _counted(method))
    partitioned._leyline_partitioned = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = partitioned  # type: ignore[method-assign]


# Every backend call that may change a table's items; each one makes every cached grouping stale.
_ITEM_WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "create_table",
    "update_table",
    "delete_table",
    "import_table",
    "restore_table_from_backup",
    "restore_table_to_point_in_time",
)
_WRITE_COUNT = itertools.count()
_written = [next(_WRITE_COUNT)]  # bumped after every write (itertools.count is atomic under the GIL)
_GROUPS: dict[tuple[int, tuple[str, ...]], tuple[Table, int, dict[tuple[Any, ...], list[Item]]]] = {}


def _counted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            _written[0] = next(_WRITE_COUNT)

    return counted


def _partitions(table: Table, names: tuple[str, ...]) -> dict[tuple[Any, ...], list[Item]]:
    """The table's items grouped by the values of `names` (items lacking one are in no group), as of the last
    write: built again after any write."""
    seen = _written[0]
    cached = _GROUPS.get((id(table), names))
    if cached is not None and cached[0] is table and cached[1] == seen:
        return cached[2]
    groups: dict[tuple[Any, ...], list[Item]] = {}
    for item in _unsorted_items(table):
        if not isinstance(item, Item):
            continue
        values = [item.attrs.get(name) for name in names]
        if all(value is not None for value in values):
            groups.setdefault(tuple(_key_value(value) for value in values), []).append(item)  # type: ignore[arg-type]
    _GROUPS[(id(table), names)] = (table, seen, groups)
    return groups


def _unsorted_items(table: Table) -> Iterator[Item]:
    """The table's items as they are stored (moto's all_items sorts them all first)."""
    for stored in list(table.items.values()):
        if table.range_key_attr:
            yield from list(stored.values())
        else:
            yield stored  # type: ignore[misc]


def _key_value(value: DynamoType) -> tuple[str, Any]:
    """What DynamoType equality compares: the type, and the value (a number's as a Decimal, "1.0" == "1")."""
    return (value.type, value.value if value.type in ("S", "B") else _hashable(value.cast_value))


def _hashable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _hashable(item)) for key, item in value.items()))
    return value


class _TablesNotCopied:
    """The `copy` module as moto's backend module sees it: a Table "copies" to itself, anything else deeply.

    The backend's only deep copy of a Table is the transaction's backup, which `_undone_on_failure` replaces
    with a backup of the named items; moto's own restore then puts the same table back, a no-op.
    """

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


@dataclass
class _ItemBackup:
    table: Table
    hash_value: DynamoType
    range_value: DynamoType | None
    item: Item | None
    stream_length: int | None

    def restore(self) -> None:
        if self.stream_length is not None and self.table.stream_shard is not None:
            del self.table.stream_shard.items[self.stream_length :]
        if self.range_value is None:
            self._restore_in(self.table.items, self.hash_value)
        else:
            self._restore_in(self.table.items[self.hash_value], self.range_value)

    def _restore_in(self, items: dict[DynamoType, Any], key: DynamoType) -> None:
        if self.item is None:
            items.pop(key, None)
        else:
            items[key] = self.item


def _undone_on_failure(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        backups = [backup for action in transact_items for backup in _backup(backend, action)]
        try:
            method(backend, transact_items)
        except BaseException:
            # Newest first: two actions on one item are refused, but the stream is shared by a table's items.
            for backup in reversed(backups):
                backup.restore()
            raise

    return transact_write_items


def _backup(backend: DynamoDBBackend, action: dict[str, Any]) -> list[_ItemBackup]:
    """A copy of the one item an action names (none if its table or key is not there: moto refuses those)."""
    for operation in action.values():
        table = backend.tables.get(operation.get("TableName", ""))
        attributes = operation.get("Key") or operation.get("Item") or {}
        if table is None or table.hash_key_attr not in attributes:
            return []
        hash_value = DynamoType(attributes[table.hash_key_attr])
        range_value = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in attributes:
                return []
            range_value = DynamoType(attributes[table.range_key_attr])
        current = table.get_item(hash_value, range_value)
        stream = table.stream_shard
        return [
            _ItemBackup(
                table,
                hash_value,
                range_value,
                copy.deepcopy(current),
                len(stream.items) if stream is not None else None,
            )
        ]
    return []


# The reads whose answers are items and counts: plain JSON, as DynamoDB's JSON protocol sends them.
_ITEM_READS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan"})
_JSON_1_0 = {"Content-Type": "application/x-amz-json-1.0"}


def items_answered_as_json() -> None:
    """A successful item read is answered with its result as JSON, as moto's serializer would write it (binary
    values in base64), without walking the response's shape. Idempotent."""
    walk = DynamoResult.execute_result
    if getattr(walk, "_leyline_json", False):
        return

    @functools.wraps(walk)
    def execute_result(self: DynamoResult, context: Any) -> Any:
        if context.operation_model.name not in _ITEM_READS or not isinstance(self.result, dict):
            return walk(self, context)
        return _json_answer(self.result)

    execute_result._leyline_json = True  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign,assignment]


def stream_records_answered_as_json() -> None:
    """A GetRecords of a table's stream is answered as JSON, as moto's serializer would write it, without walking
    the response's shape. Idempotent. The local stack's stream poller reads every record a write leaves (a move
    of a task in line leaves eleven: the task and the summary's ten copies, each with its old and new image)
    about four times a second; with four model slots moto's serializer spent a fifth of the server's CPU
    time on them, time the model slots' hand-overs waited for."""
    read = DynamoDBStreamsHandler.get_records
    if getattr(read, "_leyline_json", False):
        return

    @functools.wraps(read)
    def get_records(self: DynamoDBStreamsHandler) -> ActionResult:
        return _AnsweredAsJson(read(self).result)

    get_records._leyline_json = True  # type: ignore[attr-defined]
    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]


class _AnsweredAsJson(ActionResult):
    """A result answered by `_json_answer` rather than by moto's serializer."""

    def execute_result(self, context: Any) -> Any:
        return _json_answer(self.result)


def _json_answer(result: Any) -> tuple[int, dict[str, str], str]:
    """A successful answer of the JSON 1.0 protocol written by json.dumps: a read's result holds DynamoDB JSON
    already."""
    return 200, dict(_JSON_1_0), json.dumps(result, separators=(",", ":"), default=_json_value)


def _json_value(value: Any) -> str | float:
    """What JSON cannot hold as it is: binary values in base64, and times (moto's are naive UTC) in epoch seconds
    truncated to milliseconds, as the JSON protocols (and moto's serializer) write them."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return calendar.timegm(value.utctimetuple()) + value.microsecond // 1000 / 1000
    raise TypeError(f"{type(value).__name__} in a read's answer")


# Distinct conditions kept parsed: a move's copies share one, and their versions change with every move.
_PARSED_CONDITIONS = 256


def conditions_parsed_once() -> None:
    """A write's condition (its expression, names and values) is parsed once and the parse kept: moto parses a
    ConditionExpression character by character, twice for each Put of a transaction (to check it, then again
    in the put), about a fifth of a move's time in the emulator, where the line summary's copies repeat one
    condition. A parse is a tree of operators whose evaluation reads only the item it is given, so one tree
    serves every item. Idempotent."""
    parse = comparisons.get_filter_expression
    if getattr(parse, "_leyline_cached", False):
        return

    @functools.lru_cache(maxsize=_PARSED_CONDITIONS)
    def parsed(expression: str | None, names: str, values: str) -> Any:
        return parse(expression, json.loads(names), json.loads(values))

    @functools.wraps(parse)
    def get_filter_expression(expression: str | None, names: Any, values: Any) -> Any:
        try:
            key = json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True)
        except TypeError:  # not JSON's values: parse it as moto would
            return parse(expression, names, values)
        return parsed(expression, *key)

    get_filter_expression._leyline_cached = True  # type: ignore[attr-defined]
    for module in (comparisons, dynamodb_models, table_module):
        module.get_filter_expression = get_filter_expression  # type: ignore[attr-defined]
