"""moto's SQS as the local stack runs it (infra/moto_sqs.py): a long poll delivers a FIFO message as soon as its
group frees, a group's messages that come back together come back in order, and two polls never take the same
message."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.moto_sqs import long_polls_wake_on_change

REGION = "eu-west-1"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    long_polls_wake_on_change()
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _fifo(sqs: Any) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "60"}
    return str(sqs.create_queue(QueueName="slots.fifo", Attributes=attributes)["QueueUrl"])


def test_a_long_poll_delivers_the_next_message_of_a_group_freed_while_it_waits(sqs: Any) -> None:
    # Given a FIFO queue whose group "slot-1" has one message in flight and the next one waiting behind it
    url = _fifo(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="first", MessageGroupId="slot-1")
    first = sqs.receive_message(QueueUrl=url)["Messages"][0]
    sqs.send_message(QueueUrl=url, MessageBody="second", MessageGroupId="slot-1")
    # When a long poll of 10 s begins, and the first message is deleted once the poll waits
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(sqs.receive_message, QueueUrl=url, WaitTimeSeconds=10)
        threading.Event().wait(0.5)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
        received = poll.result(timeout=30)
    # Then that poll delivers the second message (moto's own poll kept the groups in flight as they were when
    # it began, and ended empty-handed after its 10 s)
    assert [message["Body"] for message in received.get("Messages", [])] == ["second"]


def test_a_batch_of_a_group_that_comes_back_comes_back_in_order(sqs: Any) -> None:
    # Given a FIFO group's three messages received together (a Lambda batch) and handed back together
    url = _fifo(sqs)
    for body in ("first", "second", "third"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="line")
    batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(batch) == 3
    entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 1} for n, m in enumerate(batch)]
    assert not sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries).get("Failed")

    # When they are visible again and the queue is received from
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]

    # Then the group comes back whole and in order (moto alone gave the last one, alone)
    assert [message["Body"] for message in again] == ["first", "second", "third"]


def test_concurrent_long_polls_never_take_the_same_message(sqs: Any) -> None:
    # Given a FIFO queue with one message in each of 30 groups
    url = _fifo(sqs)
    for group in range(30):
        sqs.send_message(QueueUrl=url, MessageBody=str(group), MessageGroupId=f"g{group}")

    # When 6 polls take one message at a time until the queue is empty, concurrently
    def drain() -> list[str]:
        bodies: list[str] = []
        while messages := sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []):
            bodies += [message["Body"] for message in messages]
        return bodies

    with ThreadPoolExecutor(6) as pool:
        taken = [body for bodies in pool.map(lambda _: drain(), range(6)) for body in bodies]
    # Then each message was taken exactly once
    assert sorted(taken, key=int) == [str(group) for group in range(30)]
