"""EventBridge access: task events onto TaskEventBus, in the order given."""

from __future__ import annotations

import json
from typing import Any

import boto3

from leyline.logic.task_events import DETAIL_TYPE, SOURCE, TaskEvent

_MAX_ENTRIES = 10  # PutEvents' limit per call


class EventBus:
    """Satisfies logic.task_events.TaskEventSink."""

    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self._bus = bus_name
        self._events = client or boto3.client("events")

    def publish(self, events: list[TaskEvent]) -> int:
        """Publishes in order, stopping at the first entry EventBridge refuses: how many were published."""
        published = 0
        for start in range(0, len(events), _MAX_ENTRIES):
            chunk = events[start : start + _MAX_ENTRIES]
            entries: list[Any] = [
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(event.status),
                    "EventBusName": self._bus,
                    "Resources": [],
                    "Time": event.time,
                }
                for event in chunk
            ]
            results = self._events.put_events(Entries=entries)["Entries"]
            for result in results:
                if "ErrorCode" in result:
                    return published
                published += 1
        return published
