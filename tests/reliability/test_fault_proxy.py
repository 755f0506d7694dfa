"""tests/faultproxy.py: the proxy forwards AWS calls faithfully and answers injected faults as AWS would."""

from __future__ import annotations

import os
import socket

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.testing import RunningStack, RunningStackError

pytestmark = pytest.mark.integration

THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException"
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def through_proxy(stack: RunningStack, service: str):
    """A client of `service` that talks to the fault proxy, as the functions do, without SDK retries."""
    return stack.session.client(service, endpoint_url=stack.faults_endpoint, config=ONE_ATTEMPT)  # type: ignore[call-overload]


def test_calls_go_through_unchanged_including_large_streamed_bodies(fault_stack):
    # Given S3, DynamoDB and SQS clients pointed at the proxy
    s3 = through_proxy(fault_stack, "s3")
    bucket = fault_stack.physical_name("MediaBucket")
    large = os.urandom(3 * 1024 * 1024)  # above the size the proxy reads whole: streamed through

    # When they write, read and inspect
    s3.put_object(Bucket=bucket, Key="proxy-test/large.bin", Body=large, ContentType="application/octet-stream")
    read = s3.get_object(Bucket=bucket, Key="proxy-test/large.bin")["Body"].read()
    head = s3.head_object(Bucket=bucket, Key="proxy-test/large.bin")
    table = through_proxy(fault_stack, "dynamodb").describe_table(TableName=fault_stack.physical_name("TasksTable"))
    queue = through_proxy(fault_stack, "sqs").get_queue_attributes(
        QueueUrl=fault_stack.queue_url("JobsQueue"), AttributeNames=["FifoQueue"]
    )

    # Then every answer is the endpoint's, byte for byte
    assert read == large
    assert head["ContentLength"] == len(large)
    assert table["Table"]["TableName"] == fault_stack.physical_name("TasksTable")
    assert queue["Attributes"]["FifoQueue"] == "true"
    # And the proxy named each operation
    seen = fault_stack.aws_requests()
    named = ("s3:PutObject", "s3:GetObject", "s3:HeadObject", "dynamodb:DescribeTable", "sqs:GetQueueAttributes")
    assert {operation: seen.get(operation) for operation in named} == dict.fromkeys(named, 1), seen


@pytest.mark.parametrize(
    ("service", "operation", "status", "code", "parsed"),
    [
        ("s3", "GetObject", 503, "SlowDown", "SlowDown"),
        ("s3", "HeadObject", 503, "SlowDown", "503"),  # S3 answers HEAD errors without a body, so no code
        ("dynamodb", "GetItem", 400, THROUGHPUT_EXCEEDED, THROUGHPUT_EXCEEDED),
        ("sqs", "GetQueueAttributes", 400, "ThrottlingException", "ThrottlingException"),
    ],
)
def test_a_fault_answers_the_next_n_matching_calls_with_the_services_own_error(
    fault_stack, service, operation, status, code, parsed
):
    # Given a fault for the next 2 calls of one operation (the service's default error)
    bucket, table = fault_stack.physical_name("MediaBucket"), fault_stack.physical_name("TasksTable")
    client = through_proxy(fault_stack, service)
    call = {
        "GetObject": lambda: client.get_object(Bucket=bucket, Key="proxy-test/small.txt"),
        "HeadObject": lambda: client.head_object(Bucket=bucket, Key="proxy-test/small.txt"),
        "GetItem": lambda: client.get_item(TableName=table, Key={"task_id": {"S": "nobody"}}),
        "GetQueueAttributes": lambda: client.get_queue_attributes(QueueUrl=fault_stack.queue_url("JobsQueue")),
    }[operation]
    fault_stack.client("s3").put_object(Bucket=bucket, Key="proxy-test/small.txt", Body=b"hello")
    fault = fault_stack.inject_fault(service, operation, count=2)
    assert (fault["status"], fault["code"], fault["remaining"]) == (status, code, 2)

    # When the operation is called three times
    errors = []
    for _ in range(3):
        try:
            call()
        except ClientError as error:
            errors.append(error.response)

    # Then botocore parsed two errors with the service's code and status, and the third call went through
    assert [(e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]) for e in errors] == [(parsed, status)] * 2
    assert fault_stack.fault_hits()[0]["hits"] == 2
    assert fault_stack.fault_hits()[0]["remaining"] == 0
    # And the stack's log says what was injected
    assert f"[faults] {service} {operation}: injected {status} {code}" in fault_stack.log_text()


def test_match_narrows_a_fault_to_requests_that_contain_every_given_text(fault_stack):
    # Given two objects and a persistent fault on reads of one of them only
    s3 = through_proxy(fault_stack, "s3")
    bucket = fault_stack.physical_name("MediaBucket")
    for name in ("a", "b"):
        fault_stack.client("s3").put_object(Bucket=bucket, Key=f"proxy-test/{name}", Body=name.encode())
    fault_stack.inject_fault("s3", "GetObject", count=None, match=[bucket, "proxy-test/a"], code="InternalError")

    # When both are read twice, Then only the matching one fails, every time
    for _ in range(2):
        assert s3.get_object(Bucket=bucket, Key="proxy-test/b")["Body"].read() == b"b"
        with pytest.raises(ClientError, match="InternalError"):
            s3.get_object(Bucket=bucket, Key="proxy-test/a")
    assert fault_stack.fault_hits()[0]["hits"] == 2
    assert fault_stack.fault_hits()[0]["remaining"] is None


@pytest.mark.parametrize(
    "spec",
    [
        {"operation": "GetObject"},
        {"service": "s3", "status": 200},
        {"service": "s3", "count": 0},
        {"service": "s3", "match": 5},
        {"service": "s3", "delay": 1},
    ],
)
def test_the_control_api_refuses_a_malformed_fault(fault_stack, spec):
    with pytest.raises(RunningStackError, match="fault proxy refused POST"):
        fault_stack._faults("POST", spec)
    assert fault_stack.fault_hits() == []


def test_a_stack_without_the_proxy_has_no_fault_api(tmp_path):
    # Given a stack made without faults=True (not even started), Then asking it for faults says how to get them
    plain = RunningStack(log_dir=tmp_path)
    assert plain.faults_url is None
    assert "LEYLINE_FUNCTIONS_AWS_ENDPOINT" not in plain.env
    with pytest.raises(RunningStackError, match="faults=True"):
        plain.inject_fault("s3", "GetObject")


def test_the_proxy_runs_beside_the_stack_and_stops_with_it(make_stack):
    # Given a started stack with the fault proxy (a process of its own, in front of the stack's endpoint)
    stack = make_stack(faults=True)
    assert stack.env["LEYLINE_FUNCTIONS_AWS_ENDPOINT"] == stack.faults_endpoint
    assert stack.aws_requests() == {}
    port = int(stack.faults_endpoint.rsplit(":", 1)[1])

    # When the stack is stopped
    stack.stop()

    # Then the proxy is gone too: nothing listens on its port any more
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
