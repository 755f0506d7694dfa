"""Two fixes to moto's DynamoDB, on the local stack's server and in the in-process tests alike: one lock around
its writes, and index queries that read one partition.

moto copies a whole table before a TransactWriteItems (to roll it back on a refused condition) without a lock,
so a write served on another thread meanwhile can break the copy ("dictionary changed size during
iteration"). DynamoDB itself applies a transaction atomically against other writes; serialising moto's writes
gives the emulator the same behaviour. Reads are left concurrent: they change nothing.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Item, Table

_LOCK = threading.RLock()
_QUERY = threading.local()  # the items one index query on this thread may look at
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def serialise_writes() -> None:
    """Idempotent: each write method is wrapped once per process."""
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "_leyline_serialised", False):
            setattr(DynamoDBBackend, name, _locked(method))


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
