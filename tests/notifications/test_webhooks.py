"""Issue 12 over real HTTP: task events on TaskEventBus and signed webhooks to a receiver on 127.0.0.1.

The stack's model and retry delays are shortened through its parameter overrides, never patched."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from infra.testing import RunningStack
from tests import imagefactory
from tests.integration.polling import poll_until_final, upload_presigned
from tests.notifications.receiver import Receiver
from tests.reliability.support import eventually
from tests.stack import local_stack

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"leyline webhook test key 32 byte").decode()
DELAYS = "1,1,1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The local stack as it starts by default (WebhookAllowPrivateTargets on), retries 1 s apart."""
    with local_stack(
        tmp_path_factory.mktemp("webhooks-stack"),
        parameter_overrides={"WebhookRetryDelays": DELAYS},
        env={"LEYLINE_WEBHOOK_SECRET": SECRET},
    ) as running:
        yield running


def submit(stack: RunningStack, webhook_url: str, events: list[str] | None = None) -> str:
    body: dict[str, Any] = {"content_type": "image/png", "webhook_url": webhook_url}
    if events is not None:
        body["webhook_events"] = events
    ticket = requests.post(f"{stack.api_url}/uploads", json=body, timeout=10)
    assert ticket.status_code == 201, ticket.text
    upload = ticket.json()["upload"]
    stored = requests.post(upload["url"], data=upload["fields"], files={"file": imagefactory.png()}, timeout=10)
    stored.raise_for_status()
    return str(ticket.json()["task_id"])


def attempts(stack: RunningStack, task_id: str) -> list[dict[str, Any]]:
    response = requests.get(f"{stack.api_url}/tasks/{task_id}/deliveries", timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["attempts"])


def test_each_requested_event_arrives_signed_and_verifiable_with_the_secret(
    stack: RunningStack, hooks: Receiver
) -> None:
    # Given a task that asked for every event
    url = hooks.script("/every")
    task_id = submit(stack, url, ["started", "succeeded", "failed", "cancelled"])

    # When it runs to SUCCESS
    poll_until_final(stack.api_url, task_id)
    got = eventually(lambda: hooks.to("/every") if len(hooks.to("/every")) >= 2 else None, timeout=30, what="2 hooks")

    # Then the receiver got task.started then task.succeeded, each verifiable with the secret
    bodies = [Webhook(SECRET).verify(request.body, request.headers) for request in got]
    assert [body["type"] for body in bodies] == ["task.started", "task.succeeded"]
    assert all(body["data"]["task_id"] == task_id for body in bodies)
    assert bodies[1]["data"]["state"] == "SUCCESS"
    assert bodies[1]["data"]["video_url"]
    # and a wrong key verifies none of them
    with pytest.raises(Exception, match="signature"):
        Webhook(base64.b64encode(b"another key of thirty-two bytes!").decode()).verify(got[0].body, got[0].headers)


def test_by_default_only_the_final_event_is_sent(stack: RunningStack, hooks: Receiver) -> None:
    # Given a task that names no events (the form upload, with a webhook_url field)
    url = hooks.script("/final")
    response = requests.post(
        f"{stack.api_url}/upload", files={"image": ("a.png", imagefactory.png())}, data={"webhook_url": url}, timeout=10
    )
    assert response.status_code == 202, response.text
    poll_until_final(stack.api_url, response.json()["task_id"])

    # Then it gets task.succeeded alone
    eventually(lambda: hooks.to("/final"), timeout=30, what="the final hook")
    time.sleep(1.5)
    assert [json.loads(r.body)["type"] for r in hooks.to("/final")] == ["task.succeeded"]


def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(stack: RunningStack, hooks: Receiver) -> None:
    # Given a receiver that answers 500, 500, then 200
    url = hooks.script("/flaky", (500, 0), (500, 0), (200, 0))
    task_id = submit(stack, url)
    poll_until_final(stack.api_url, task_id)

    # Then it gets three attempts of task.succeeded, all with one webhook-id, each signed
    got = eventually(lambda: hooks.to("/flaky") if len(hooks.to("/flaky")) >= 3 else None, timeout=30, what="3")
    assert len({request.headers["webhook-id"] for request in got}) == 1
    for request in got:
        Webhook(SECRET).verify(request.body, request.headers)
    # and the delivery log shows each attempt: two retrying (with their next time), one delivered
    log = eventually(lambda: attempts(stack, task_id) if len(attempts(stack, task_id)) >= 3 else None, timeout=10)
    assert [(a["attempt"], a["status"], a["outcome"]) for a in log] == [
        (1, 500, "retrying"),
        (2, 500, "retrying"),
        (3, 200, "delivered"),
    ]
    assert log[0]["next_retry_at"]
    assert log[2]["next_retry_at"] is None


def test_410_stops_at_once(stack: RunningStack, hooks: Receiver) -> None:
    url = hooks.script("/gone", (410, 0))
    task_id = submit(stack, url)
    poll_until_final(stack.api_url, task_id)
    eventually(lambda: hooks.to("/gone"), timeout=30, what="the hook")
    time.sleep(3)  # longer than every retry delay
    assert len(hooks.to("/gone")) == 1
    assert [(a["status"], a["outcome"]) for a in attempts(stack, task_id)] == [(410, "gone")]


def test_a_receiver_that_takes_12_s_is_timed_out_and_retried(stack: RunningStack, hooks: Receiver) -> None:
    url = hooks.script("/slow", (200, 12.0), (200, 0))
    task_id = submit(stack, url)
    poll_until_final(stack.api_url, task_id)
    eventually(lambda: hooks.to("/slow") if len(hooks.to("/slow")) >= 2 else None, timeout=40, what="a retry")
    log = eventually(lambda: attempts(stack, task_id) if len(attempts(stack, task_id)) >= 2 else None, timeout=10)
    assert log[0]["status"] is None
    assert "10 s" in log[0]["error"]
    assert log[0]["outcome"] == "retrying"
    assert (log[1]["status"], log[1]["outcome"]) == (200, "delivered")


def test_events_on_the_bus_come_once_per_transition_in_order(stack: RunningStack, hooks: Receiver) -> None:
    # Given an operator's rule on the task bus, into a FIFO queue of theirs
    sqs, events = stack.client("sqs"), stack.client("events")
    queue = sqs.create_queue(
        QueueName="operator-tasks.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.physical_name("TaskEventBus")
    events.put_rule(Name="operator", EventBusName=bus, EventPattern=json.dumps({"source": ["leyline.tasks"]}))
    events.put_targets(
        Rule="operator", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn, "SqsParameters": {"MessageGroupId": "t"}}]
    )

    # When two tasks run
    ids = [upload_presigned(stack.api_url, imagefactory.png()) for _ in range(2)]
    for task_id in ids:
        poll_until_final(stack.api_url, task_id)

    # Then each task's events are QUEUED, PROCESSING, SUCCESS: once each, in that order
    seen: list[dict[str, Any]] = []

    def all_events() -> bool:
        for _ in range(5):
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            for message in batch:
                seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return sum(1 for event in seen if event["detail"]["task_id"] in ids) >= 6

    eventually(all_events, timeout=30, what="six events")
    for task_id in ids:
        mine = [event for event in seen if event["detail"]["task_id"] == task_id]
        assert [event["detail"]["state"] for event in mine] == ["QUEUED", "PROCESSING", "SUCCESS"]
        assert {(event["source"], event["detail-type"]) for event in mine} == {("leyline.tasks", "Task State Changed")}
