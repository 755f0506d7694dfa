"""Email when a task ends (accounts mode), through the template's own wiring in moto's in-process mock: a submit
asks `notify_email`, TaskEventsFunction publishes the task's final state on TaskEventBus, EmailRule puts it on
EmailQueue, and EmailFunction sends it through SES to the owner's verified Cognito address - and to no one else.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from infra.template import Stack
from tests.handlers.support import body
from tests.handlers.test_accounts import (  # noqa: F401 - the accounts-mode fixtures
    Invoke,
    invoke,
    signed_in,
    stack,
)
from tests.sample_events import sample_event

SENDER = "leyline@example.com"  # NotificationSender's default


def sent_mail() -> list[Any]:
    """What moto's SES recorded as sent (the mock's own record: nothing leaves the machine)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


@pytest.fixture(autouse=True)
def no_mail_yet() -> None:
    ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages.clear()


def new_user(template: Stack, session: boto3.Session, email: str, *, verified: bool = True) -> str:
    """A user of the stack's pool, as Cognito keeps one after sign-up and confirmation: its `sub`."""
    user = session.client("cognito-idp").admin_create_user(
        UserPoolId=template.ref("UserPool"),
        Username=email,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true" if verified else "false"},
        ],
        MessageAction="SUPPRESS",
    )["User"]
    return next(attribute["Value"] for attribute in user["Attributes"] if attribute["Name"] == "sub")


def submit(call: Invoke, user: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    event = signed_in(sample_event("http-create-upload.json"), user)
    event["body"] = json.dumps(payload)
    return call("ApiFunction", event)


def end(call: Invoke, template: Stack, session: boto3.Session, task_id: str, state: str) -> list[dict[str, Any]]:
    """The task moves to `state` (written as the processor would), TaskEventsFunction reads the stream record,
    and EmailFunction is handed what EmailRule put on EmailQueue: EmailFunction's answer per message."""
    dynamodb = session.client("dynamodb")
    table = template.physical_name("TasksTable")
    old = dynamodb.get_item(TableName=table, Key={"task_id": {"S": task_id}})["Item"]
    new = {**old, "state": {"S": state}, "finished_at": {"S": "2026-12-01T00:00:31.000Z"}}
    dynamodb.put_item(TableName=table, Item=new)
    change = {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1", "OldImage": old, "NewImage": new}}
    assert call("TaskEventsFunction", {"Records": [change]}) == {"batchItemFailures": []}
    answers = []
    sqs = session.client("sqs")
    queue = template.queue_url("EmailQueue")
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        record = {
            **sample_event("sqs-intake-record.json")["Records"][0],
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
        }
        answers.append(call("EmailFunction", {"Records": [record]}))
    return answers


def test_an_opted_in_users_task_that_ends_emails_them_through_ses(invoke, stack):  # noqa: F811
    # Given Alice, with a verified address, and her task that asked for an email
    template, session = stack
    alice = new_user(template, session, "alice@example.com")
    created = submit(invoke, alice, {"notify_email": True})
    assert created["statusCode"] == 201
    task_id = body(created)["task_id"]

    # When it succeeds
    answers = end(invoke, template, session, task_id, "SUCCESS")

    # Then EmailRule brought the event to EmailFunction, which sent one message through SES: to Alice, from the
    # sender, saying the video is ready and where to see it
    assert answers == [{"batchItemFailures": []}]
    [message] = sent_mail()
    assert message.destinations["ToAddresses"] == ["alice@example.com"]
    assert message.source == SENDER
    assert "is ready" in message.subject
    assert task_id in message.body
    assert template.functions["EmailFunction"].environment["PAGE_URL"] in message.body


def test_nobody_else_is_emailed(invoke, stack):  # noqa: F811
    # Given Bob (verified), whose task did not ask for an email, and Carol (unverified), whose task did
    template, session = stack
    bob = new_user(template, session, "bob@example.com")
    carol = new_user(template, session, "carol@example.com", verified=False)
    bobs = body(submit(invoke, bob, {}))["task_id"]
    carols = body(submit(invoke, carol, {"notify_email": True}))["task_id"]

    # When both tasks end
    assert end(invoke, template, session, bobs, "FAILURE") == [{"batchItemFailures": []}]
    assert end(invoke, template, session, carols, "CANCELLED") == [{"batchItemFailures": []}]

    # Then SES sent nothing: not to Bob, who did not ask, nor to an address that is not verified
    assert sent_mail() == []


def test_the_address_never_comes_from_the_request(invoke, stack):  # noqa: F811
    # Given Dave signed in
    template, session = stack
    dave = new_user(template, session, "dave@example.com")

    # When his submit names an address to write to, Then it is no request at all
    for payload in ({"notify_email": "mallory@example.com"}, {"notify_email": True, "email": "mallory@example.com"}):
        refused = submit(invoke, dave, payload)
        assert refused["statusCode"] == 400, payload
    assert sent_mail() == []


def test_the_form_upload_takes_the_pages_checkbox(invoke, stack):  # noqa: F811
    # Given a signed-in user's POST /upload whose form carries the checkbox (notify_email=on)
    template, session = stack
    erin = new_user(template, session, "erin@example.com")
    image = base64.b64decode(sample_event("http-form-upload.json")["body"])
    boundary = "------------------------leyline0123456789"
    checkbox = f'--{boundary}\r\nContent-Disposition: form-data; name="notify_email"\r\n\r\non\r\n'.encode()
    event = signed_in(sample_event("http-form-upload.json"), erin)
    event["body"] = base64.b64encode(checkbox + image).decode()

    # When it is submitted
    response = invoke("ApiFunction", event)

    # Then the task records the wish
    assert response["statusCode"] == 202
    item = session.client("dynamodb").get_item(
        TableName=template.physical_name("TasksTable"), Key={"task_id": {"S": body(response)["task_id"]}}
    )["Item"]
    assert item["notify_email"] == {"BOOL": True}
