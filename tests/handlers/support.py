"""Helpers the handler tests share with each other and with tests/security/test_iam_enforced.py:
reading a response, dressing bytes or a queued message as the event Lambda would get, asking for a status."""

from __future__ import annotations

import base64
import gc
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from infra.template import FunctionSpec
from tests.sample_events import sample_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def cold_start(spec: FunctionSpec, monkeypatch: pytest.MonkeyPatch) -> Handler:
    """The function's handler, imported afresh with the function's environment, as a new execution environment's
    init phase imports it: the handler modules (and the shared routes) read their settings at import."""
    for name, value in spec.environment.items():
        monkeypatch.setenv(name, value)
    for name in [name for name in sys.modules if name.startswith("leyline.handlers")]:
        del sys.modules[name]
    # As in a new execution environment, nothing is frozen yet, so the init phase freezes what it made
    # (and its check of what is frozen, which walks every frozen object, finds nothing to walk).
    gc.unfreeze()
    module_name, attribute = spec.handler.rsplit(".", 1)
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


def body(response: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


def with_body(event: dict[str, Any], raw: bytes, content_type: str) -> dict[str, Any]:
    return {
        **event,
        "headers": {**event["headers"], "content-type": content_type},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def status_of(invoke, task_id: str) -> tuple[int, dict[str, Any]]:
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/status/{task_id}"
    event["pathParameters"] = {"task_id": task_id}
    response = invoke("StatusFunction", event)
    return response["statusCode"], body(response)


def receive_as_lambda_event(aws: boto3.Session, url: str, sample: str, count: int = 1) -> dict[str, Any]:
    """`count` received messages dressed as the sample SQS event from events/ (as the event source mapping would:
    one record each, in the order received)."""
    sqs = aws.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=0, AttributeNames=["All"]
    ).get("Messages", [])
    assert len(messages) == count, f"{len(messages)} of {count} messages arrived on {url}"
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event = sample_event(sample)
    (shape,) = event["Records"]
    event["Records"] = [
        {
            **shape,
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "md5OfBody": message["MD5OfBody"],
            "eventSourceARN": arn,
            "attributes": {**shape["attributes"], **message["Attributes"]},
        }
        for message in messages
    ]
    return event


def dead_job_event(task_id: str, sample: str = "sqs-jobs-record.json") -> dict[str, Any]:
    """The message as it sits in a dead-letter queue: the same body, redriven after its last receive."""
    event = sample_event(sample)
    body = json.loads(event["Records"][0]["body"])
    body["detail"]["object"]["key"] = f"uploads/{task_id}"
    event["Records"][0]["body"] = json.dumps(body)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "6"
    return event
