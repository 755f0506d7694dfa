"""The notification functions' IAM policies are enough for what their code does, with IAM enforced (as
test_iam_enforced.py does for the pipeline's): TaskEventsFunction publishes a task's change from a stream
record, WebhookFunction delivers it, retries once (re-timing its message) and logs every attempt, and
StatusFunction lists the attempts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from infra.template import Stack, load_stack
from tests.handlers.support import receive_as_lambda_event
from tests.notifications.receiver import receiver
from tests.sample_events import ROOT, sample_event
from tests.security.test_iam_enforced import admin, invoke, keys  # noqa: F401 - the fixtures, on this template

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a receiver on 127.0.0.1 (a server thread)

TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"


@pytest.fixture
def template() -> Stack:
    # The receiver is on 127.0.0.1: the local stack's default.
    return load_stack(ROOT / "template.yaml", parameter_overrides={"WebhookAllowPrivateTargets": "true"})


def image(state: str, url: str) -> dict[str, Any]:
    """A task item in DynamoDB JSON, as the stream carries it."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {
        "task_id": {"S": TASK},
        "state": {"S": state},
        "progress": {"N": "100" if state == "SUCCESS" else "50"},
        "created_at": {"S": now},
        "started_at": {"S": now},
        "finished_at": {"S": now},
        "expires_at": {"N": str(int(time.time()) + 3600)},
        "queued_seq": {"N": "1"},
        "webhook_url": {"S": url},
        "webhook_events": {"L": [{"S": "succeeded"}]},
    }


def test_the_notification_functions_do_their_job_with_only_their_own_grants(invoke, admin, template):  # noqa: F811
    with receiver() as hooks:
        url = hooks.script("/hook", (500, 0), (200, 0))
        # Given a task that asked for a webhook, now SUCCESS
        admin.client("dynamodb").put_item(TableName=template.physical_name("TasksTable"), Item=image("SUCCESS", url))

        # When TaskEventsFunction gets its stream record
        change = {
            "eventID": "1",
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "SequenceNumber": "100",
                "OldImage": image("PROCESSING", url),
                "NewImage": image("SUCCESS", url),
            },
        }
        assert invoke("TaskEventsFunction", {"Records": [change]}) == {"batchItemFailures": []}

        # Then the event reaches WebhookQueue, and WebhookFunction delivers it: 500 (retry), then 200
        queue = template.queue_url("WebhookQueue")
        first = receive_as_lambda_event(admin, queue, "sqs-intake-record.json")
        assert invoke("WebhookFunction", first)["batchItemFailures"]
        admin.client("sqs").change_message_visibility(
            QueueUrl=queue, ReceiptHandle=first["Records"][0]["receiptHandle"], VisibilityTimeout=0
        )
        second = receive_as_lambda_event(admin, queue, "sqs-intake-record.json")
        assert invoke("WebhookFunction", second) == {"batchItemFailures": []}
        assert [json.loads(r.body)["type"] for r in hooks.to("/hook")] == ["task.succeeded"] * 2

        # And StatusFunction lists both attempts
        event = sample_event("http-get-status.json")
        event["rawPath"] = f"/tasks/{TASK}/deliveries"
        event["routeKey"] = "GET /tasks/{task_id}/deliveries"
        event["pathParameters"] = {"task_id": TASK}
        event["requestContext"]["http"]["path"] = event["rawPath"]
        answer = invoke("StatusFunction", event)
        assert answer["statusCode"] == 200, answer
        assert [a["outcome"] for a in json.loads(answer["body"])["attempts"]] == ["retrying", "delivered"]
