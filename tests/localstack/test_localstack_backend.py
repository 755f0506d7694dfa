"""The product on LocalStack: the original flow, S3's own presigned POST policy checks, every template resource."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.testing import RunningStack
from leyline.adapters.media_store import MediaStore
from tests import imagefactory
from tests.integration.polling import poll_until_final, status
from tests.localstack.support import LOCALSTACK_TIER
from tests.reliability.support import create_ticket, eventually
from tests.videoprobe import probe_video

pytestmark = LOCALSTACK_TIER

EXAMPLE = Path(__file__).parents[2] / "examples" / "image.png"


def test_the_original_curl_flow_reaches_success_with_a_real_video(localstack_stack):
    # Given the product on LocalStack, When `curl -X POST -F "image=@examples/image.png" .../upload`
    accepted = requests.post(f"{localstack_stack.api_url}/upload", files={"image": EXAMPLE.open("rb")}, timeout=10)
    assert accepted.status_code == 202
    task_id = accepted.json()["task_id"]

    # And its status is polled until final
    seen = poll_until_final(localstack_stack.api_url, task_id, timeout=90)

    # Then it went through PROCESSING to SUCCESS
    states = [snapshot["state"] for snapshot in seen]
    assert "PROCESSING" in states
    assert states[-1] == "SUCCESS"

    # And `curl -L .../video/<task_id>` downloads an H.264 MP4 with frames, from LocalStack's S3
    redirect = requests.get(f"{localstack_stack.api_url}/video/{task_id}", allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    assert _origin(redirect.headers["Location"]) == _origin(localstack_stack.endpoints.for_service("s3"))
    video = requests.get(redirect.headers["Location"], timeout=10)
    assert video.status_code == 200
    info = probe_video(video.content)
    assert info.codec == "h264"
    assert info.frame_count > 1


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---- the presigned POST, refused by S3 itself -------------------------------------------------
def _too_big(stack: RunningStack, ticket: dict[str, Any]) -> tuple[dict[str, str], bytes, str]:
    return dict(ticket["upload"]["fields"]), b"\0" * (ticket["max_bytes"] + 1), ticket["upload"]["url"]


def _other_content_type(stack: RunningStack, ticket: dict[str, Any]) -> tuple[dict[str, str], bytes, str]:
    return {**ticket["upload"]["fields"], "Content-Type": "text/html"}, imagefactory.png(), ticket["upload"]["url"]


def _other_key(stack: RunningStack, ticket: dict[str, Any]) -> tuple[dict[str, str], bytes, str]:
    # Another task's pending upload, with this task's form: taking it over
    victim = create_ticket(stack.api_url)
    ticket["victim"] = victim["task_id"]
    fields = {**ticket["upload"]["fields"], "key": victim["upload"]["fields"]["key"]}
    return fields, imagefactory.png(), ticket["upload"]["url"]


def _expired(stack: RunningStack, ticket: dict[str, Any]) -> tuple[dict[str, str], bytes, str]:
    # The product's own form (its S3 adapter, as the API signs it) for this task's key, valid for 1 s
    s3 = stack.client("s3", config=Config(signature_version="s3v4"))
    media = MediaStore(stack.physical_name("MediaBucket"), client=s3)
    key = ticket["upload"]["fields"]["key"]
    form = media.presigned_upload(key, content_type="image/png", max_bytes=ticket["max_bytes"], expires_in=1)
    time.sleep(2.0)  # past the policy's expiration (whole seconds)
    return dict(form.fields), imagefactory.png(), form.url


REFUSALS: dict[str, tuple[Callable[[RunningStack, dict[str, Any]], tuple[dict[str, str], bytes, str]], int, str]] = {
    "over-max-bytes": (_too_big, 400, "EntityTooLarge"),
    "other-content-type": (_other_content_type, 403, "Policy Condition failed"),
    "other-key": (_other_key, 403, "Policy Condition failed"),
    "expired-policy": (_expired, 403, "Policy expired"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_s3_itself_refuses_an_upload_outside_the_policy_and_the_task_never_advances(localstack_stack, case):
    # Given a task waiting for its upload (POST /uploads, image/png)
    ticket = create_ticket(localstack_stack.api_url, "image/png")
    task_id = ticket["task_id"]
    make_form, expected_status, expected_error = REFUSALS[case]
    fields, data, url = make_form(localstack_stack, ticket)

    # When the form is posted to the upload URL outside its policy
    response = requests.post(url, data=fields, files={"file": ("photo.png", data)}, timeout=30)

    # Then S3 (LocalStack's) answers 4xx and says why
    assert response.status_code == expected_status, response.text
    assert expected_error in response.text

    # And nothing was stored: no object at the task's key (nor at the victim's, for another key)
    pending = [task_id, *([ticket["victim"]] if "victim" in ticket else [])]
    s3 = localstack_stack.client("s3")
    bucket = localstack_stack.physical_name("MediaBucket")
    for waiting in pending:
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket=bucket, Key=f"uploads/{waiting}")
        assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")

    # And the task never advances: a later, valid upload goes through the whole intake while it stays PENDING
    control = create_ticket(localstack_stack.api_url, "image/png")
    control_form = control["upload"]
    stored = requests.post(
        control_form["url"], data=control_form["fields"], files={"file": imagefactory.png()}, timeout=30
    )
    assert stored.status_code == 204, stored.text
    eventually(
        lambda: status(localstack_stack.api_url, control["task_id"])["state"] != "PENDING",
        timeout=60,
        what="the control upload taken in",
    )
    assert {waiting: status(localstack_stack.api_url, waiting)["state"] for waiting in pending} == dict.fromkeys(
        pending, "PENDING"
    )


# ---- every resource of the template -----------------------------------------------------------
def _bucket(stack: RunningStack, logical_id: str) -> None:
    name = stack.physical_name(logical_id)
    s3 = stack.client("s3")
    s3.head_bucket(Bucket=name)
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=name)
    assert s3.get_bucket_cors(Bucket=name)["CORSRules"]
    assert s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    # served by LocalStack: the embedded moto server does not have it
    moto_s3 = stack.session.client("s3", endpoint_url=stack.endpoints.for_service("dynamodb"))
    with pytest.raises(ClientError):
        moto_s3.head_bucket(Bucket=name)


def _bucket_policy(stack: RunningStack, logical_id: str) -> None:
    # As declared, the TLS-only Deny included (left out on moto, which misapplies it)
    declared = stack.stack.properties(logical_id)
    policy = json.loads(stack.client("s3").get_bucket_policy(Bucket=declared["Bucket"])["Policy"])
    assert policy["Statement"] == declared["PolicyDocument"]["Statement"]


def _rule(stack: RunningStack, logical_id: str) -> None:
    events = stack.client("events")
    name = stack.physical_name(logical_id)
    properties = stack.stack.properties(logical_id)
    bus = {"EventBusName": properties["EventBusName"]} if "EventBusName" in properties else {}
    assert events.describe_rule(Name=name, **bus)["State"] == "ENABLED"
    targets = events.list_targets_by_rule(Rule=name, **bus)["Targets"]
    assert sorted(t["Arn"] for t in targets) == sorted(t["Arn"] for t in properties["Targets"])


def _event_bus(stack: RunningStack, logical_id: str) -> None:
    name = stack.physical_name(logical_id)
    assert stack.client("events").describe_event_bus(Name=name)["Name"] == name


def _secret(stack: RunningStack, logical_id: str) -> None:
    secret = stack.client("secretsmanager").get_secret_value(SecretId=stack.physical_name(logical_id))
    assert secret["SecretString"]


def _queue(stack: RunningStack, logical_id: str) -> None:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.physical_name(logical_id))["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    declared = stack.stack.properties(logical_id)
    for key in ("FifoQueue", "ContentBasedDeduplication", "VisibilityTimeout", "MessageRetentionPeriod"):
        if key in declared:
            assert attributes[key] == str(declared[key]).lower(), (logical_id, key)
    if "RedrivePolicy" in declared:
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == int(declared["RedrivePolicy"]["maxReceiveCount"])


def _queue_policy(stack: RunningStack, logical_id: str) -> None:
    sqs = stack.client("sqs")
    for url in stack.stack.properties(logical_id)["Queues"]:
        name = url.rsplit("/", 1)[1]
        real_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        assert sqs.get_queue_attributes(QueueUrl=real_url, AttributeNames=["Policy"])["Attributes"]["Policy"]


def _table(stack: RunningStack, logical_id: str) -> None:
    table = stack.client("dynamodb").describe_table(TableName=stack.physical_name(logical_id))["Table"]
    assert table["TableStatus"] == "ACTIVE"


def _alarm(stack: RunningStack, logical_id: str) -> None:
    name = stack.physical_name(logical_id)
    assert stack.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]


def _function(stack: RunningStack, logical_id: str) -> None:
    assert stack.worker_pids(logical_id), f"{logical_id} has no worker"


def _http_api(stack: RunningStack, _logical_id: str) -> None:
    assert requests.get(f"{stack.api_url}/openapi.json", timeout=10).status_code == 200


def _layer(stack: RunningStack, logical_id: str) -> None:
    # A layer's packages are installed in the local runtime's environment: its functions import them
    assert any(logical_id in spec.layers for spec in stack.stack.functions.values())


CHECKS: dict[str, Callable[[RunningStack, str], None]] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::Events::Rule": _rule,
    "AWS::Events::EventBus": _event_bus,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::DynamoDB::Table": _table,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::Serverless::Function": _function,
    "AWS::Serverless::HttpApi": _http_api,
    "AWS::Serverless::LayerVersion": _layer,
}


def test_every_resource_of_the_template_is_provisioned_on_its_backend(localstack_stack):
    # Given the template's resources
    resources = localstack_stack.stack.resources
    # Then each type has a check here (a new type fails this test until it has one)
    assert sorted({r.type for r in resources.values()} - set(CHECKS)) == []
    # And each resource exists where its service is served (S3, SQS, EventBridge, CloudWatch, Secrets Manager:
    # LocalStack; DynamoDB: the embedded moto server; functions and the HttpApi: the local runtime)
    for logical_id, resource in resources.items():
        CHECKS[resource.type](localstack_stack, logical_id)
