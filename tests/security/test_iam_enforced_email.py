"""EmailFunction's IAM policy is enough for what its code does, with IAM enforced (as test_iam_enforced.py does
for the pipeline's): it reads the task, finds its owner's verified address in the user pool and sends from the
sender's identity, with only its own grants, in accounts mode."""

from __future__ import annotations

import json
import time

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from tests.sample_events import sample_event
from tests.security.test_iam_enforced import admin, invoke, keys, template  # noqa: F401 - the fixtures

pytestmark = pytest.mark.slow  # moto loads every AWS managed policy (SAM attaches some)

TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"


@pytest.mark.parametrize("template", ["accounts"], indirect=True)
def test_the_email_function_does_its_job_with_only_its_own_grants(invoke, admin, template):  # noqa: F811
    # Given Ada in the user pool (her address verified), and her task that asked for an email, now SUCCESS
    user = admin.client("cognito-idp").admin_create_user(
        UserPoolId=template.ref("UserPool"),
        Username="ada@example.com",
        UserAttributes=[{"Name": "email", "Value": "ada@example.com"}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )["User"]
    sub = next(attribute["Value"] for attribute in user["Attributes"] if attribute["Name"] == "sub")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    admin.client("dynamodb").put_item(
        TableName=template.physical_name("TasksTable"),
        Item={
            "task_id": {"S": TASK},
            "state": {"S": "SUCCESS"},
            "created_at": {"S": now},
            "expires_at": {"N": str(int(time.time()) + 3600)},
            "owner": {"S": sub},
            "notify_email": {"BOOL": True},
        },
    )
    ses_backends[DEFAULT_ACCOUNT_ID][template.region].sent_messages.clear()

    # When EmailFunction gets the task's final event from EmailQueue, under its own credentials
    event = {"detail-type": "Task State Changed", "detail": {"task_id": TASK, "state": "SUCCESS", "error": None}}
    record = {**sample_event("sqs-intake-record.json")["Records"][0], "body": json.dumps(event)}
    answer = invoke("EmailFunction", {"Records": [record]})

    # Then every call it made was allowed, and the message went to Ada
    assert answer == {"batchItemFailures": []}
    [message] = ses_backends[DEFAULT_ACCOUNT_ID][template.region].sent_messages
    assert message.destinations["ToAddresses"] == ["ada@example.com"]
