"""One lock around moto's DynamoDB writes, on the local stack's server and in the in-process tests alike.

moto copies a whole table before a TransactWriteItems (to roll it back on a refused condition) without a lock,
so a write served on another thread meanwhile can break the copy ("dictionary changed size during
iteration"). DynamoDB itself applies a transaction atomically against other writes; serialising moto's writes
gives the emulator the same behaviour. Reads are left concurrent: they change nothing. The same copy takes the
table's stream along: its records are shared, not copied (_copy_stream_shard).
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def serialise_writes() -> None:
    """Idempotent: each write method is wrapped once per process."""
    for name in _WRITES:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "_leyline_serialised", False):
            setattr(DynamoDBBackend, name, _locked(method))
    StreamShard.__deepcopy__ = _copy_stream_shard  # type: ignore[attr-defined]


def _copy_stream_shard(shard: StreamShard, memo: dict[int, Any]) -> StreamShard:
    """The stream's records as a new list of the same (never changed) records.

    That rollback copy includes the table's stream: deep-copying every record ever written made each
    transaction cost as much as the whole stream's history (TasksTable's stream grows with every write). The
    list itself is copied, so a rolled-back transaction's records still disappear with it."""
    clone = copy.copy(shard)
    memo[id(shard)] = clone
    clone.table = copy.deepcopy(shard.table, memo)
    clone.items = list(shard.items)
    return clone


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    locked._leyline_serialised = True  # type: ignore[attr-defined]
    return locked
