"""What the reliability tests share: two-step presigned uploads, status timelines, the stack's log and queues."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests

from infra.testing import RunningStack
from tests.integration.polling import FINAL_STATES, status

T = TypeVar("T")

# botocore's default retry mode is "standard" (botocore >= 1.36): 3 attempts per call, 4 for DynamoDB.
# The functions set no AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, so these are what they get.
BOTOCORE_ATTEMPTS = {"s3": 3, "dynamodb": 4, "sqs": 3}
RETRY_LOG = "task failed; the queue will retry it"
FINISHED_LOG = "task finished"
NO_SLOT_LOG = "task no longer waits; no slot taken"  # DispatchFunction, for a task that ended while in line
DEAD_LETTER_LOG = "task failed after exhausting its retries"
_JSON_LINE = re.compile(r"^\[(?P<source>[A-Za-z]+)\] (?P<json>\{.*\})$")


# ---- uploads -------------------------------------------------------------------------------------
def create_ticket(api_url: str, content_type: str = "image/png") -> dict[str, Any]:
    """POST /uploads: a task (PENDING) and its presigned POST; the file is sent by `send_file`."""
    # 30 s, as the file's upload below: a burst of 40 meets ApiFunction's workers starting on demand (each a
    # cold init) on a 2-core machine that also runs every other function of the stack.
    response = requests.post(f"{api_url}/uploads", json={"content_type": content_type}, timeout=30)
    response.raise_for_status()
    ticket: dict[str, Any] = response.json()
    return ticket


def send_file(ticket: dict[str, Any], data: bytes) -> None:
    upload = ticket["upload"]
    response = requests.post(upload["url"], data=dict(upload["fields"]), files={"file": data}, timeout=30)
    response.raise_for_status()


# ---- waiting -------------------------------------------------------------------------------------
def eventually(check: Callable[[], T | None], *, timeout: float, every: float = 0.2, what: str = "condition") -> T:
    """The first truthy result of `check`, polling for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(every)


@dataclass
class Sample:
    at: float  # time.monotonic()
    status: dict[str, Any]


@dataclass
class Timeline:
    """Every status of some tasks, polled by a background thread until each is final (bounded)."""

    api_url: str
    task_ids: list[str]
    every: float = 0.25
    timeout: float = 300.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.samples = {task_id: [] for task_id in self.task_ids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def wait_final(self, timeout: float) -> dict[str, dict[str, Any]]:
        """The final status of every task; fails the test if one is not final within `timeout` s (or within the
        timeline's own `timeout`, after which it stops polling)."""
        self._thread.join(timeout)
        self.stop()
        last = self.last()
        waiting = [task_id for task_id in self.task_ids if last.get(task_id, {}).get("state") not in FINAL_STATES]
        if waiting:
            raise AssertionError(f"not final within {timeout} s (or the timeline's {self.timeout}): {waiting}, {last}")
        return last

    def last(self) -> dict[str, dict[str, Any]]:
        return {task_id: seen[-1].status for task_id, seen in self.samples.items() if seen}

    def states(self, task_id: str) -> list[str]:
        return [sample.status["state"] for sample in self.samples[task_id]]

    def progress(self, task_id: str) -> list[int]:
        return [sample.status["progress"] for sample in self.samples[task_id]]

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        pending = list(self.task_ids)
        while pending and not self._stop.is_set() and time.monotonic() < deadline:
            for task_id in list(pending):
                try:
                    current = status(self.api_url, task_id)
                except requests.RequestException as error:
                    self.errors.append(f"{task_id}: {error!r}")
                    continue
                self.samples[task_id].append(Sample(time.monotonic(), current))
                if current["state"] in FINAL_STATES:
                    pending.remove(task_id)
            self._stop.wait(self.every)


def quiet_rounds(timeline: Timeline, events: list[datetime], offset: float) -> list[list[dict[str, Any]]]:
    """The rounds of reads (one status of each unfinished task, read one after another) during which no task
    started or finished (`events`; `offset` turns the samples' monotonic times into epoch seconds): each such
    round is a snapshot of the line at one moment. A round in which a slot was handed over reads the task that
    ended before its end and the one that started after its start, and may count one task too many."""
    rounds = []
    for reads in itertools.zip_longest(*timeline.samples.values()):
        seen = [sample for sample in reads if sample is not None]
        began, ended = (datetime.fromtimestamp(offset + at, UTC) for at in (seen[0].at - 0.2, seen[-1].at))
        if not any(began <= moment <= ended for moment in events):
            rounds.append([sample.status for sample in seen])
    return rounds


# ---- what the stack did --------------------------------------------------------------------------
def log_records(stack: RunningStack, *, source: str | None = None) -> list[dict[str, Any]]:
    """The functions' structured (JSON) log lines, each with its `source` (the function's logical id)."""
    found = []
    for line in stack.log_text().splitlines():
        parsed = _JSON_LINE.match(line)
        if parsed and (source is None or parsed["source"] == source):
            try:
                record = json.loads(parsed["json"])
            except ValueError:
                continue
            found.append({**record, "source": parsed["source"]})
    return found


def task_log(stack: RunningStack, task_id: str, message: str, *, source: str | None = None) -> list[dict[str, Any]]:
    return [r for r in log_records(stack, source=source) if r.get("task_id") == task_id and r.get("message") == message]


def video_keys(stack: RunningStack) -> list[str]:
    s3 = stack.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.physical_name("MediaBucket"), Prefix="videos/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def messages_in(stack: RunningStack, queue_logical_id: str) -> int:
    """Messages a queue holds, visible, in flight or delayed."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url(queue_logical_id),
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def processor_timeout(stack: RunningStack) -> int:
    """ProcessorFunction's Timeout, as the template declares it."""
    return stack.stack.functions["ProcessorFunction"].timeout_seconds


def when(text: str | None) -> datetime:
    assert text, "timestamp missing"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now_utc() -> datetime:
    return datetime.now(UTC)


def seconds(later: str | None, earlier: str | None) -> float:
    return (when(later) - when(earlier)).total_seconds()


def non_decreasing(values: Iterable[int]) -> bool:
    listed = list(values)
    return all(a <= b for a, b in itertools.pairwise(listed))
