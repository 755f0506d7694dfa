"""The kinds of event source the local runtime runs, each as Lambda does (see each module's docstring).

A function's event sources come from its template Events (infra.template.FunctionSpec); each kind turns
those of one function into pollers with start() and join(). A new kind of trigger is one more entry here,
never a change of the template to suit the emulator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from infra.event_sources import SqsPoller, pollers_for
from infra.functions import Console, FunctionPool
from infra.stream_sources import StreamPoller
from infra.template import Stack


class Poller(Protocol):
    def start(self) -> None: ...

    def join(self, timeout: float) -> None: ...


PollerFactory = Callable[[Stack, FunctionPool, dict[str, Any], Console, threading.Event], list[Poller]]


def _sqs(
    stack: Stack, pool: FunctionPool, clients: dict[str, Any], console: Console, stop: threading.Event
) -> list[Poller]:
    """SQS: as many concurrent pollers as the function may run (infra.event_sources)."""
    return [
        SqsPoller(stack, source, pool, clients["sqs"], console, stop)
        for source in pool.spec.sqs_sources
        for _ in range(pollers_for(source, pool))
    ]


def _dynamodb_streams(
    stack: Stack, pool: FunctionPool, clients: dict[str, Any], console: Console, stop: threading.Event
) -> list[Poller]:
    """DynamoDB streams: one poller per shard, batches in stream order (infra.stream_sources)."""
    return [StreamPoller(stack, source, pool, clients, console, stop) for source in pool.spec.stream_sources]


# Keyed by the SAM event type they run.
EVENT_SOURCE_KINDS: dict[str, PollerFactory] = {"SQS": _sqs, "DynamoDB": _dynamodb_streams}
# The AWS clients the pollers use (Lambda's, on the stack's endpoint, not the functions').
CLIENT_SERVICES = ("sqs", "dynamodb", "dynamodbstreams")


def pollers(
    stack: Stack, pools: list[FunctionPool], clients: dict[str, Any], console: Console, stop: threading.Event
) -> list[Poller]:
    return [
        poller
        for pool in pools
        for kind in EVENT_SOURCE_KINDS.values()
        for poller in kind(stack, pool, clients, console, stop)
    ]
