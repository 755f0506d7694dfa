"""The functions' IAM policies are enough for what their code does, and no more, with IAM enforced.

The local stack does not enforce IAM, so a missing grant would only show on AWS. Here moto enforces it:
each function runs its real handler (cold-started with the template's environment) under credentials of
an IAM user holding exactly its role's policies from the SAM transform, through the whole pipeline.

moto checks actions and resources for S3 and SQS, but only actions for DynamoDB, EventBridge, Secrets
Manager, Cognito and SES (it authorises their calls against resource "*") and for sqs:GetQueueUrl (it cannot
name the queue): for those, the statements' resources are widened to "*" here; test_template_security.py pins
them. moto also authorises a whole TransactWriteItems or TransactGetItems as the action dynamodb:TransactWriteItems
or dynamodb:TransactGetItems, which AWS does not have (AWS checks each update in one as dynamodb:UpdateItem,
each read as dynamodb:GetItem): a role granted UpdateItem or GetItem gets that stand-in here.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin

from infra.provision import provision
from infra.template import Stack, load_stack
from tests.handlers.support import body, dead_job_event, receive_as_lambda_event, status_of, with_body
from tests.lambda_context import FakeLambdaContext
from tests.sample_events import ROOT, sample_event
from tests.security.sam import transformed_template

# In this process, but seconds a test: moto loads every AWS managed policy (SAM attaches some).
pytestmark = pytest.mark.slow

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()
ADMIN = "deployer"
# Calls made before the admin user has keys: create_user, put_user_policy, create_access_key.
UNAUTHENTICATED_SETUP_CALLS = 3
_ACTION_ONLY = ("dynamodb:", "sqs:GetQueueUrl", "events:", "secretsmanager:", "cognito-idp:", "ses:")

Invoke = Callable[[str, dict[str, Any]], Any]


# AWS authorises each item of a transaction as its own action (docs: "Using IAM with DynamoDB transactions"), and
# an SQS batch call as its single action (IAM has no sqs:...Batch actions); moto authorises the whole call under
# its own name instead.
_BATCH_STAND_INS = {
    "dynamodb:UpdateItem": "dynamodb:TransactWriteItems",
    "dynamodb:GetItem": "dynamodb:TransactGetItems",
    "sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch",
}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def enforced_statements(template: Stack, role: dict[str, Any]) -> list[dict[str, Any]]:
    """The role's inline statements with this stack's ARNs (resources widened where moto checks only actions)."""
    statements = []
    for policy in role["Properties"].get("Policies", []):
        for statement in _listed(policy["PolicyDocument"]["Statement"]):
            resolved = template.resolve(statement)
            for action in _listed(resolved["Action"]):
                resource = "*" if action.startswith(_ACTION_ONLY) else resolved["Resource"]
                split = {key: value for key, value in resolved.items() if key != "Sid"}
                statements.append({**split, "Action": action, "Resource": resource})
                if action in _BATCH_STAND_INS:  # moto's name for a transaction or batch of these (see above)
                    statements.append({**split, "Action": _BATCH_STAND_INS[action], "Resource": resource})
    return statements


@pytest.fixture
def template(request: pytest.FixtureRequest) -> Stack:
    """open by default; `@pytest.mark.parametrize("template", ["accounts"], indirect=True)` for accounts mode."""
    access_mode = getattr(request, "param", "open")
    return load_stack(ROOT / "template.yaml", parameter_overrides={"ModelSeconds": "1", "AccessMode": access_mode})


@pytest.fixture
def keys(template: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, str]]]:
    """moto with IAM enforced; the template's resources; an access key per function (and the admin's)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", template.region)
    monkeypatch.setenv("AWS_REGION", template.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # SAM attaches AWS managed policies
    transformed = transformed_template(AccessMode=template.parameters["AccessMode"])

    # What moto's set_initial_no_auth_action_count decorator does, for the whole fixture's lifetime
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", UNAUTHENTICATED_SETUP_CALLS)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    with mock_aws():
        iam = boto3.Session().client("iam")
        iam.create_user(UserName=ADMIN)
        admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName=ADMIN, PolicyName="admin", PolicyDocument=json.dumps(admin_policy))
        found = {ADMIN: _access_key(iam, ADMIN)}
        admin = _session(found[ADMIN], template.region)
        provision(template, admin, None)
        admin_iam = admin.client("iam")
        for function in template.functions:
            role = transformed["Resources"][f"{function}Role"]
            admin_iam.create_user(UserName=function)
            document = {"Version": "2012-10-17", "Statement": enforced_statements(template, role)}
            admin_iam.put_user_policy(UserName=function, PolicyName="inline", PolicyDocument=json.dumps(document))
            for arn in role["Properties"].get("ManagedPolicyArns", []):
                admin_iam.attach_user_policy(UserName=function, PolicyArn=arn)
            found[function] = _access_key(admin_iam, function)
        yield found


def _access_key(iam: Any, user: str) -> dict[str, str]:
    created = iam.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": created["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": created["SecretAccessKey"]}


def _session(key: dict[str, str], region: str) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


@pytest.fixture
def admin(keys: dict[str, dict[str, str]], template: Stack) -> boto3.Session:
    return _session(keys[ADMIN], template.region)


@pytest.fixture
def invoke(template: Stack, keys: dict[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invokes a function's real handler under its own credentials (a cold start per function)."""
    loaded: dict[str, Any] = {}

    def call(logical_id: str, event: dict[str, Any]) -> Any:
        if logical_id not in loaded:
            for name, value in {**template.functions[logical_id].environment, **keys[logical_id]}.items():
                monkeypatch.setenv(name, value)
            module_name, attribute = template.functions[logical_id].handler.rsplit(".", 1)
            for name in [name for name in sys.modules if name.startswith("leyline.handlers")]:
                del sys.modules[name]
            monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the credentials it first saw
            loaded[logical_id] = getattr(importlib.import_module(module_name), attribute)
        context = FakeLambdaContext(
            function_name=logical_id, timeout_seconds=template.functions[logical_id].timeout_seconds
        )
        return loaded[logical_id](event, context)

    return call


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_every_function_does_its_whole_job_with_only_its_own_grants(invoke, admin, keys, template):
    # Given a presigned upload and a form upload, each function under its own credentials
    ticket = invoke("ApiFunction", sample_event("http-create-upload.json"))
    assert ticket["statusCode"] == 201, ticket
    inline = invoke("ApiFunction", with_body(sample_event("http-form-upload.json"), *_form(EXAMPLE)))
    assert inline["statusCode"] == 202, inline
    task_id = body(inline)["task_id"]

    # And ApiFunction keeps Idempotency-Key records: a keyed submit (record put in progress, then completed), its
    # replay (the record read back, its task read for a fresh form), a refused one (its record deleted), a reuse.
    # (Here, before another function's cold start: this harness gives the process one function's keys at a time,
    # and the records' DynamoDB client is made on the first keyed request.)
    first = invoke("ApiFunction", _keyed(sample_event("http-create-upload.json"), "iam-key"))
    replay = invoke("ApiFunction", _keyed(sample_event("http-create-upload.json"), "iam-key"))
    assert (first["statusCode"], replay["statusCode"]) == (201, 201), replay
    assert body(replay)["task_id"] == body(first)["task_id"]
    gif = with_body(sample_event("http-create-upload.json"), b'{"content_type": "image/gif"}', "application/json")
    assert invoke("ApiFunction", _keyed(gif, "iam-refused"))["statusCode"] == 415
    assert invoke("ApiFunction", _keyed(gif, "iam-key"))["statusCode"] == 422

    # When the upload's events reach the intake and the model
    intake = receive_as_lambda_event(admin, template.queue_url("IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", intake) == {"batchItemFailures": []}
    code, queued = status_of(invoke, task_id)
    assert (code, queued["state"], queued["queue_position"]) == (200, "QUEUED", 0)
    job = receive_as_lambda_event(admin, template.queue_url("JobsQueue"), "sqs-jobs-record.json")
    assert invoke("DispatchFunction", job) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["slot"] == 1
    run = receive_as_lambda_event(admin, template.queue_url("SlotsQueue"), "sqs-jobs-record.json")
    assert invoke("ProcessorFunction", run) == {"batchItemFailures": []}
    # (and the run's end woke the dispatcher: one wake on SlotWakeQueue, sent with the processor's own grant)
    wakes = admin.client("sqs").receive_message(QueueUrl=template.queue_url("SlotWakeQueue"), MaxNumberOfMessages=10)
    assert len(wakes.get("Messages", [])) == 1

    # Then the task succeeded, and its video link is signed with StatusFunction's key, which may read the video
    # (moto cannot authorise a presigned request itself, so the read is made as an API call with that key)
    code, done = status_of(invoke, task_id)
    assert (code, done["state"]) == (200, "SUCCESS"), done
    assert f"X-Amz-Credential={keys['StatusFunction']['AWS_ACCESS_KEY_ID']}" in done["video_url"]
    reader = _session(keys["StatusFunction"], template.region).client("s3")
    video = reader.get_object(Bucket=template.physical_name("MediaBucket"), Key=f"videos/{task_id}.mp4")
    assert video["Body"].read()[4:8] == b"ftyp"

    # And a job from the dead-letter queue is recorded by DeadLetterFunction (an already finished task stays so)
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["state"] == "SUCCESS"

    # And ApiFunction cancels the task still waiting for its upload, and refuses to cancel the finished one
    waiting = body(ticket)["task_id"]
    code, cancelled = _lifecycle(invoke, "http-cancel-task.json", waiting)
    assert (code, cancelled["state"]) == (200, "CANCELLED"), cancelled
    code, refused = _lifecycle(invoke, "http-cancel-task.json", task_id)
    assert (code, refused["error"]["code"]) == (409, "TASK_FINISHED"), refused

    # And it deletes both: the finished task's upload, video and record, and the cancelled task's record
    bucket = template.physical_name("MediaBucket")
    for deleted in (task_id, waiting):
        assert _lifecycle(invoke, "http-delete-task.json", deleted)[0] == 204
        assert status_of(invoke, deleted)[0] == 404
    assert admin.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # And the processor may remove a video it stored for a task that was cancelled meanwhile (the race's cleanup)
    processor = _session(keys["ProcessorFunction"], template.region).client("s3")
    processor.put_object(Bucket=bucket, Key=f"videos/{waiting}.mp4", Body=b"video")
    processor.delete_object(Bucket=bucket, Key=f"videos/{waiting}.mp4")


@pytest.mark.parametrize("template", ["accounts"], indirect=True)
def test_in_accounts_mode_a_users_submit_and_history_need_only_the_functions_own_grants(invoke):
    # Given accounts mode, and a request of Alice's as API Gateway's authorizer hands it on
    claims = sample_event("http-list-tasks.json")["requestContext"]["authorizer"]
    submit = sample_event("http-create-upload.json")
    submit["requestContext"]["authorizer"] = claims

    # When ApiFunction creates her task and StatusFunction lists her history (a Query of OwnerIndex)
    created = invoke("ApiFunction", submit)
    listed = invoke("StatusFunction", sample_event("http-list-tasks.json"))

    # Then both succeed under their own credentials, and the history holds the task
    assert created["statusCode"] == 201, created
    assert listed["statusCode"] == 200, listed
    assert [task["task_id"] for task in body(listed)["tasks"]] == [body(created)["task_id"]]


def _keyed(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {**event, "headers": {**event["headers"], "idempotency-key": key}}


def test_a_function_cannot_do_what_another_one_does(keys, template):
    # Given the StatusFunction's and the ApiFunction's credentials
    status = _session(keys["StatusFunction"], template.region)
    api = _session(keys["ApiFunction"], template.region)
    bucket = template.physical_name("MediaBucket")

    # Then the status reader cannot write a video, nor read an upload; the API cannot write under videos/
    for session, key in ((status, "videos/x.mp4"), (api, "videos/x.mp4")):
        with pytest.raises(ClientError, match="AccessDenied"):
            session.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        status.client("s3").get_object(Bucket=bucket, Key="uploads/x")

    # And the status reader may not delete a task (only ApiFunction does, for DELETE /tasks/{task_id}), nor its
    # objects; neither may list the bucket or touch the jobs queue
    with pytest.raises(ClientError, match="AccessDenied"):
        status.client("dynamodb").delete_item(
            TableName=template.physical_name("TasksTable"), Key={"task_id": {"S": "x"}}
        )
    with pytest.raises(ClientError, match="AccessDenied"):
        status.client("s3").delete_object(Bucket=bucket, Key="videos/x.mp4")
    with pytest.raises(ClientError, match="AccessDenied"):
        status.client("s3").list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError, match="AccessDenied"):
        api.client("sqs").send_message(QueueUrl=template.queue_url("JobsQueue"), MessageBody="{}", MessageGroupId="m")


def _lifecycle(invoke: Invoke, sample: str, task_id: str) -> tuple[int, dict[str, Any]]:
    """POST /tasks/{task_id}/cancel or DELETE /tasks/{task_id} to ApiFunction: status code and body (if any)."""
    event = sample_event(sample)
    path = event["rawPath"].replace("3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", task_id)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"task_id": task_id}
    response = invoke("ApiFunction", event)
    return response["statusCode"], body(response) if response.get("body") else {}


def _form(image: bytes) -> tuple[bytes, str]:
    boundary = "leyline-boundary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return form + image + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
