"""moto's DynamoDB made to behave as DynamoDB does under concurrent writes and long tables.

Two changes, on the local stack's server and in the in-process tests alike:

- One lock around the writes. moto copies state before a TransactWriteItems (to roll it back on a refused
  condition) without a lock, so a write served on another thread meanwhile could break the copy ("dictionary
  changed size during iteration"). DynamoDB applies a transaction atomically against other writes;
  serialising moto's writes gives the emulator the same behaviour. Reads stay concurrent: they change nothing.
- A transaction's rollback restores only the items it names. moto deep-copies every table a transaction
  names, once per action, before applying it: each move on a line of 10,000 tasks copied the whole table
  several times (a quadratic intake, seconds per upload). The items a transaction can change are exactly the
  ones its actions name, so a copy of those (and of the stream's length) undoes it as well.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def serialise_writes() -> None:
    """Idempotent: each write method is wrapped once per process."""
    dynamodb_models.copy = _TablesNotCopied  # type: ignore[assignment]
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_leyline_serialised", False):
            continue
        if name == "transact_write_items":
            method = _undone_on_failure(method)
        setattr(DynamoDBBackend, name, _locked(method))


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    locked._leyline_serialised = True  # type: ignore[attr-defined]
    return locked


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
