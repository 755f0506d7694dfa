"""Two fixes to moto's DynamoDB, on the local stack's server and in the in-process tests alike: one lock around
its writes, and index queries that read one partition.

moto copies a whole table before a TransactWriteItems (to roll it back on a refused condition) without a lock,
so a write served on another thread meanwhile can break the copy ("dictionary changed size during
iteration"). DynamoDB itself applies a transaction atomically against other writes; serialising moto's writes
gives the emulator the same behaviour. Reads are left concurrent: they change nothing.
"""

from __future__ import annotations

import functools
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
    took half a second with 10,000 tasks in the table, growing with the table. Here the items whose partition
    key attributes equal the condition's (same type and value, as DynamoType compares them) are found first,
    by one pass over raw values, and moto's own query then runs on those alone (it sorts what it returns by the
    index's key itself): the same answer, at the cost of the partition's size."""
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
        items = [item for item in _unsorted_items(self) if isinstance(item, Item) and _in_partition(item, conditions)]
        _QUERY.scope = (self, items)
        try:
            return query(self, *args, **kwargs)
        finally:
            _QUERY.scope = None

    partitioned._leyline_partitioned = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = partitioned  # type: ignore[method-assign]


def _unsorted_items(table: Table) -> Iterator[Item]:
    """The table's items as they are stored (moto's all_items sorts them all first)."""
    for stored in table.items.values():
        if table.range_key_attr:
            yield from stored.values()
        else:
            yield stored  # type: ignore[misc]


def _in_partition(item: Item, conditions: list[tuple[str, DynamoType]]) -> bool:
    for name, expected in conditions:
        value = item.attrs.get(name)
        if value is None or value.type != expected.type:
            return False
        if value.type in ("S", "B"):
            if value.value != expected.value:
                return False
        elif value != expected:  # numbers: DynamoType compares their decimal values
            return False
    return True
