"""Issue 12 on a stack as deployed (WebhookAllowPrivateTargets=false): SSRF targets refused at submit and at
delivery; and a processor killed mid-run loses no task event and adds none."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from infra.testing import RunningStack
from tests import imagefactory
from tests.integration.polling import poll_until_final, status
from tests.notifications.receiver import Receiver
from tests.reliability.support import eventually, messages_in
from tests.stack import local_stack

pytestmark = pytest.mark.integration

PUBLIC = "https://93.184.215.14/hooks"  # an IP literal on the internet: valid at submit without DNS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with local_stack(
        tmp_path_factory.mktemp("ssrf-stack"),
        "4",
        # ProcessorTimeout: a killed run comes back after it + 10 s (the template's 90 s would make that 100 s)
        parameter_overrides={
            "WebhookAllowPrivateTargets": "false",
            "WebhookRetryDelays": "1",
            "ProcessorTimeout": "20",
        },
    ) as running:
        yield running


def operator_queue(stack: RunningStack) -> str:
    """An operator's rule on the task bus into a FIFO queue of theirs (the documented integration point)."""
    sqs, events = stack.client("sqs"), stack.client("events")
    queue = sqs.create_queue(
        QueueName="operator.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.physical_name("TaskEventBus")
    events.put_rule(Name="operator", EventBusName=bus, EventPattern=json.dumps({"source": ["leyline.tasks"]}))
    events.put_targets(
        Rule="operator", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn, "SqsParameters": {"MessageGroupId": "t"}}]
    )
    return str(queue)


def drain(stack: RunningStack, queue: str) -> list[dict[str, Any]]:
    sqs, seen = stack.client("sqs"), list[dict[str, Any]]()
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return seen
        for message in batch:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hooks",  # not https
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",  # DNS (the hosts file) answers 127.0.0.1
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data/",  # the instance metadata service
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://100.64.0.1/hooks",
        "not a url",
    ],
)
def test_a_private_or_plain_http_target_is_refused_at_submit(stack: RunningStack, url: str) -> None:
    response = requests.post(f"{stack.api_url}/uploads", json={"webhook_url": url}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_WEBHOOK_URL"


def test_the_form_upload_refuses_one_too(stack: RunningStack, hooks: Receiver) -> None:
    response = requests.post(
        f"{stack.api_url}/upload",
        files={"image": ("a.png", imagefactory.png())},
        data={"webhook_url": hooks.url + "/form"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_WEBHOOK_URL"


def test_a_target_that_resolves_to_loopback_at_delivery_is_refused_and_dead_lettered(
    stack: RunningStack, hooks: Receiver
) -> None:
    # Given a task whose webhook was public at submit
    ticket = requests.post(
        f"{stack.api_url}/uploads", json={"content_type": "image/png", "webhook_url": PUBLIC}, timeout=10
    )
    assert ticket.status_code == 201, ticket.text
    task_id = ticket.json()["task_id"]
    # and whose host, by delivery time, resolves to 127.0.0.1 (DNS rebinding: here the stored URL is changed to a
    # name the hosts file maps to loopback, the receiver's port)
    port = hooks.url.rsplit(":", 1)[1]
    stack.client("dynamodb").update_item(
        TableName=stack.physical_name("TasksTable"),
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET webhook_url = :url",
        ExpressionAttributeValues={":url": {"S": f"https://localhost:{port}/rebound"}},
    )
    upload = ticket.json()["upload"]
    stored = requests.post(upload["url"], data=upload["fields"], files={"file": imagefactory.png()}, timeout=10)
    stored.raise_for_status()

    # When the task ends
    poll_until_final(stack.api_url, task_id, timeout=60)

    # Then nothing reaches the receiver; the attempt is logged as refused and the delivery dead-lettered
    log = eventually(
        lambda: requests.get(f"{stack.api_url}/tasks/{task_id}/deliveries", timeout=10).json()["attempts"],
        timeout=20,
        what="an attempt",
    )
    assert [(a["outcome"], a["status"]) for a in log] == [("refused", None)]
    assert "127.0.0.1" in log[0]["error"] or "::1" in log[0]["error"]
    assert hooks.to("/rebound") == []
    assert eventually(lambda: messages_in(stack, "WebhookDeadLetterQueue") >= 1, timeout=10, what="dead letter")


def test_a_killed_processor_loses_no_task_event_and_adds_none(stack: RunningStack) -> None:
    # Given an operator's rule on the bus, and a task in the model
    queue = operator_queue(stack)
    ticket = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10).json()
    stored = requests.post(
        ticket["upload"]["url"], data=ticket["upload"]["fields"], files={"file": imagefactory.png()}, timeout=10
    )
    stored.raise_for_status()
    task_id = ticket["task_id"]
    eventually(lambda: status(stack.api_url, task_id)["progress"] >= 25, timeout=30, every=0.05, what="progress")

    # When the model's worker is killed mid-run (its job comes back and runs again)
    (worker,) = stack.worker_pids("ProcessorFunction")
    os.kill(worker, signal.SIGKILL)
    final = poll_until_final(stack.api_url, task_id, timeout=240)[-1]
    assert final["state"] == "SUCCESS"

    # Then the bus carried QUEUED, PROCESSING, SUCCESS once each, in order: the re-run is no new event
    seen: list[dict[str, Any]] = []

    def three() -> bool:
        seen.extend(drain(stack, queue))
        return len([e for e in seen if e["detail"]["task_id"] == task_id]) >= 3

    eventually(three, timeout=30, what="three events")
    mine = [event["detail"]["state"] for event in seen if event["detail"]["task_id"] == task_id]
    assert mine == ["QUEUED", "PROCESSING", "SUCCESS"]
