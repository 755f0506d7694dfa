"""A Lambda function's init phase without the cyclic garbage collector.

Importing boto3, botocore and Powertools and creating the clients makes about 86,000 objects that live as long
as the execution environment. While they are being made, the collector walks them again and again and finds
almost nothing to free (about 600 objects): that walking was about 40 ms, 14 %, of an HTTP function's cold
start (docs/benchmarks.md). So each handler module runs its imports and set-up inside `init_phase()`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def init_phase() -> Iterator[None]:
    """Pauses the collector for the block, then freezes what exists: later collections, during invocations,
    skip the long-lived set-up instead of walking it each time. The few cycles of garbage the set-up left
    stay in memory (a collection to free them would cost about 30 ms).

    Only a process's first init phase freezes: Lambda runs one per execution environment, but a process that
    imports handlers again and again (the handler tests do, for a clean slate) would otherwise pin each
    time whatever garbage it had.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
        if was_enabled:
            gc.enable()
