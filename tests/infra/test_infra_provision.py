"""infra.provision: template.yaml's resources, created by AWS API calls against moto in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.provision import provision, provisioning_order
from infra.settings import port_following_overrides
from infra.template import load_stack
from tests.mocked_aws import empty, provisioned

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def stack():
    return load_stack(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(stack):
    """The template's resources in moto's in-process mock, provisioned once for this module."""
    with provisioned(stack) as session:
        yield session


@pytest.fixture
def aws(resources):
    """The template's resources as provisioning leaves them: no items, messages or objects."""
    empty(resources)
    return resources


def test_dependencies_come_first(stack):
    order = provisioning_order(stack)
    assert order.index("IntakeDeadLetterQueue") < order.index("IntakeQueue") < order.index("UploadedRule")
    assert order.index("JobsDeadLetterQueue") < order.index("JobsQueue")
    assert order.index("UploadedRule") < order.index("EventsToQueuesPolicy")
    assert order.index("MediaBucket") < order.index("MediaBucketPolicy")
    assert not {"ApiFunction", "HttpApi"} & set(order)


def test_bucket_is_encrypted_private_and_accepts_browser_posts(stack, aws):
    s3 = aws.client("s3")
    bucket = stack.physical_name("MediaBucket")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    cors = s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]
    assert set(cors["AllowedMethods"]) == {"POST", "GET"}
    assert cors["AllowedOrigins"] == ["http://localhost:8080", "http://127.0.0.1:8080"]
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert lifecycle["Expiration"] == {"Days": 7}


def test_an_upload_reaches_the_intake_queue_through_eventbridge(stack, aws):
    # Given the provisioned bucket (EventBridge notifications on) and UploadedRule
    aws.client("s3").put_object(Bucket=stack.physical_name("MediaBucket"), Key="uploads/t-1", Body=b"x")
    sqs = aws.client("sqs")
    # When reading the FIFO intake queue, Then the S3 event is there, in the rule's message group
    intake = sqs.receive_message(QueueUrl=stack.queue_url("IntakeQueue"), MessageSystemAttributeNames=["All"])
    (message,) = intake["Messages"]
    assert message["Attributes"]["MessageGroupId"] == "uploads"
    assert json.loads(message["Body"])["detail"]["object"]["key"] == "uploads/t-1"
    # And nothing reaches the model's queue but through IntakeFunction
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url("JobsQueue"))
    # And keys outside uploads/ do not match the rule
    sqs.delete_message(QueueUrl=stack.queue_url("IntakeQueue"), ReceiptHandle=message["ReceiptHandle"])
    aws.client("s3").put_object(Bucket=stack.physical_name("MediaBucket"), Key="videos/t-1.mp4", Body=b"x")
    assert "Messages" not in sqs.receive_message(QueueUrl=stack.queue_url("IntakeQueue"))


def test_the_line_queues_are_fifo_with_content_dedup_and_redrive(stack, aws):
    sqs = aws.client("sqs")
    # The line (DispatchFunction's, 6 x its 300 s timeout) and the slots (ProcessorFunction's, 6 x 90 s)
    for queue, visibility in (("JobsQueue", "1800"), ("SlotsQueue", "540")):
        jobs = sqs.get_queue_attributes(QueueUrl=stack.queue_url(queue), AttributeNames=["All"])["Attributes"]
        assert (jobs["FifoQueue"], jobs["ContentBasedDeduplication"]) == ("true", "true")
        assert jobs["VisibilityTimeout"] == visibility
        redrive = json.loads(jobs["RedrivePolicy"])
        assert redrive == {"deadLetterTargetArn": stack.arn("JobsDeadLetterQueue"), "maxReceiveCount": 3}
        assert "Policy" not in jobs  # only a function sends to it, by its IAM role
    intake = sqs.get_queue_attributes(QueueUrl=stack.queue_url("IntakeQueue"), AttributeNames=["All"])["Attributes"]
    assert (intake["FifoQueue"], intake["ContentBasedDeduplication"]) == ("true", "true")
    redrive = json.loads(intake["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": stack.arn("IntakeDeadLetterQueue"), "maxReceiveCount": 5}
    assert json.loads(intake["Policy"])["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}


def test_tasks_table_has_its_indexes_and_ttl(stack, aws):
    dynamodb = aws.client("dynamodb")
    table = stack.physical_name("TasksTable")
    description = dynamodb.describe_table(TableName=table)["Table"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {index["IndexName"]: index for index in description["GlobalSecondaryIndexes"]}
    assert sorted(indexes) == ["ClientIndex", "OwnerIndex"]
    assert [key["AttributeName"] for key in indexes["OwnerIndex"]["KeySchema"]] == ["owner", "created_at"]
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_rule_targets_and_alarms_exist(stack, aws):
    events = aws.client("events")
    rule = stack.physical_name("UploadedRule")
    assert events.describe_rule(Name=rule)["State"] == "ENABLED"
    targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=rule)["Targets"]}
    assert set(targets) == {"IntakeQueue"}
    assert targets["IntakeQueue"]["Arn"] == stack.arn("IntakeQueue")
    assert targets["IntakeQueue"]["SqsParameters"] == {"MessageGroupId": "uploads"}
    alarms = {a["AlarmName"] for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    declared = {stack.physical_name(r) for r, res in stack.resources.items() if res.type == "AWS::CloudWatch::Alarm"}
    assert alarms == declared


def test_objects_stay_readable_because_the_https_only_deny_is_left_out(stack, aws):
    # moto applies the bucket policy's Deny with no condition context, so it would refuse every request
    s3 = aws.client("s3")
    bucket = stack.physical_name("MediaBucket")
    s3.put_object(Bucket=bucket, Key="videos/v.mp4", Body=b"mp4")
    assert s3.get_object(Bucket=bucket, Key="videos/v.mp4")["Body"].read() == b"mp4"


def test_provisioning_twice_converges(stack, aws):
    provision(stack, aws, None)
    assert aws.client("s3").head_bucket(Bucket=stack.physical_name("MediaBucket"))


TEMPLATE_ORIGINS = ["http://localhost:8080", "http://127.0.0.1:8080"]


def test_the_cors_default_follows_the_api_port_when_the_user_did_not_set_it():
    # Given the template's default origins (port 8080), When the local API runs on 18080 with no override
    local = port_following_overrides(18080, {"CorsAllowedOrigins": TEMPLATE_ORIGINS}, overrides={})
    # Then the page's origins on 18080, by both names, are the allowed ones
    assert local == {"CorsAllowedOrigins": "http://localhost:18080,http://127.0.0.1:18080"}


@pytest.mark.parametrize(
    ("port", "parameters", "overrides"),
    [
        (18080, {"CorsAllowedOrigins": ["https://mine.example"]}, {"CorsAllowedOrigins": "https://mine.example"}),
        (8080, {"CorsAllowedOrigins": TEMPLATE_ORIGINS}, {}),
        (18080, {"ModelSeconds": "30"}, {}),
    ],
    ids=["set-by-the-user", "already-the-port", "not-declared"],
)
def test_the_cors_default_is_left_alone_when_the_user_set_it_or_nothing_needs_it(port, parameters, overrides):
    # Given origins the user chose, a port the default already names, or a template without the parameter
    # When the local defaults are worked out, Then there is nothing to override
    assert port_following_overrides(port, parameters, overrides) == {}
