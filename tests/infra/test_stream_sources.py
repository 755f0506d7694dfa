"""The local runtime's DynamoDB stream event source (infra/stream_sources.py), run as Lambda runs one: records in
stream order, filter criteria, a failed batch retried from its first failed record, and after
MaximumRetryAttempts the OnFailure destination. The function is a recording stand-in for a FunctionPool (the
poller's side is what is tested); a moto server on 127.0.0.1 holds the table and its stream (moto's in-process
mock does not serve DescribeStream)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.event_source_kinds import EVENT_SOURCE_KINDS
from infra.functions import Console, Invocation
from infra.provision import provision
from infra.stream_sources import StreamPoller
from infra.template import FunctionSpec, Stack, TemplateError, load_stack
from infra.testing import free_port

pytestmark = pytest.mark.integration  # starts a moto server (a thread) on a free port

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Retries: {Type: Number, Default: -1}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Failed:
    Type: AWS::SQS::Queue
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      CodeUri: .
      Handler: x.handler
      Events:
        Writes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 3
            MaximumRetryAttempts: !Ref Retries
            FunctionResponseTypes: [ReportBatchItemFailures]
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["task"]}}}}'
            DestinationConfig:
              OnFailure: {Type: SQS, Destination: !GetAtt Failed.Arn}
"""


@dataclass
class Function:
    """Stands in for a FunctionPool: records each batch and answers what `answer` says for it."""

    spec: FunctionSpec
    answer: Callable[[list[dict[str, Any]]], Invocation]
    batches: list[list[str]] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self.batches.append([record["dynamodb"]["NewImage"]["id"]["S"] for record in event["Records"]])
        return self.answer(event["Records"])


def ok(_: list[dict[str, Any]]) -> Invocation:
    return Invocation("r", result_json=json.dumps({"batchItemFailures": []}))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., tuple[Stack, Any, Callable[..., Function]]]]:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    stop = threading.Event()
    pollers: list[StreamPoller] = []
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's backends live in the process, not the server: each test starts from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        patch.delenv("AWS_ENDPOINT_URL", raising=False)

        def build(retries: int = -1) -> tuple[Stack, Any, Callable[..., Function]]:
            stack = load_stack(tmp_path / "template.yaml", parameter_overrides={"Retries": str(retries)})
            session = boto3.Session(region_name=stack.region)
            provision(stack, session, endpoint)
            clients = {
                name: session.client(name, endpoint_url=endpoint) for name in ("sqs", "dynamodb", "dynamodbstreams")
            }

            def run(answer: Callable[[list[dict[str, Any]]], Invocation] = ok) -> Function:
                function = Function(stack.functions["Reader"], answer)
                (source,) = function.spec.stream_sources
                poller = StreamPoller(stack, source, function, clients, Console(), stop)  # type: ignore[arg-type]
                pollers.append(poller)
                poller.start()
                return function

            return stack, clients, run

        try:
            yield build
        finally:
            stop.set()
            for poller in pollers:
                poller.join(5)
            server.stop()


def put(clients: dict[str, Any], stack: Stack, *ids: str, kind: str = "task") -> None:
    for item_id in ids:
        item = {"id": {"S": item_id}, "kind": {"S": kind}}
        clients["dynamodb"].put_item(TableName=stack.physical_name("Table"), Item=item)


def wait(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not met in time"
        time.sleep(0.05)


def test_records_arrive_in_stream_order_in_batches_and_filtered(make):
    # Given a table with writes of tasks and of other items
    stack, clients, run = make()
    put(clients, stack, "a", "b")
    put(clients, stack, "line", kind="summary")
    put(clients, stack, "c", "d", "e")

    # When the mapping reads its stream (batch size 3, only kind=task)
    function = run()

    # Then the function sees the tasks alone, in write order, at most 3 at a time
    wait(lambda: sum(len(b) for b in function.batches) == 5)
    assert [i for batch in function.batches for i in batch] == ["a", "b", "c", "d", "e"]
    assert all(len(batch) <= 3 for batch in function.batches)


def test_a_poll_goes_on_with_the_last_read_s_iterator_rather_than_asking_for_a_new_one(make):
    # Given a mapping reading a stream, each call it makes to the streams API counted
    stack, clients, run = make()
    calls: list[str] = []
    clients["dynamodbstreams"].meta.events.register(
        "before-call.*", lambda event_name, **_: calls.append(event_name.rsplit(".", 1)[-1])
    )
    put(clients, stack, "a")
    function = run()
    wait(lambda: function.batches == [["a"]])

    # When it polls on while writes of tasks and of other items come in
    put(clients, stack, "line", kind="summary")
    put(clients, stack, "b", "c")
    wait(lambda: sum(len(b) for b in function.batches) == 3)
    time.sleep(1)  # about four polls of an idle stream

    # Then every poll was one GetRecords: the shard's iterator was asked for once, when the reading began
    assert [i for batch in function.batches for i in batch] == ["a", "b", "c"]
    assert calls.count("GetShardIterator") == 1
    assert calls.count("GetRecords") >= 5


def test_a_reported_failure_is_retried_from_that_record_on_in_order(make):
    # Given a function that fails record "b" the first time only
    stack, clients, run = make()
    put(clients, stack, "a", "b", "c")
    failed: list[str] = []

    def fail_b_once(records: list[dict[str, Any]]) -> Invocation:
        for record in records:
            if record["dynamodb"]["NewImage"]["id"]["S"] == "b" and not failed:
                failed.append("b")
                failures = [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]
                return Invocation("r", result_json=json.dumps({"batchItemFailures": failures}))
        return ok(records)

    function = run(fail_b_once)

    # Then the retry starts at b: a is not sent again, c follows b
    wait(lambda: len(function.batches) >= 2)
    assert function.batches[:2] == [["a", "b", "c"], ["b", "c"]]


def test_a_failing_batch_holds_up_what_follows_until_it_succeeds(make):
    stack, clients, run = make()
    put(clients, stack, "a")
    calls: list[int] = []

    def crash_twice(records: list[dict[str, Any]]) -> Invocation:
        calls.append(1)
        if len(calls) <= 2:
            return Invocation("r", error={"errorType": "Runtime.ExitError", "errorMessage": "crash"})
        return ok(records)

    function = run(crash_twice)
    put(clients, stack, "b")
    wait(lambda: ["b"] in function.batches or ["a", "b"] in function.batches, timeout=15)
    first_b = next(i for i, batch in enumerate(function.batches) if "b" in batch)
    assert all(batch[0] == "a" for batch in function.batches[: first_b + 1])  # nothing passes a before it succeeds


def test_after_maximum_retry_attempts_the_batch_goes_to_the_on_failure_destination(make):
    # Given MaximumRetryAttempts 1 and a function that always fails
    stack, clients, run = make(retries=1)
    put(clients, stack, "a", "b")

    def always(_: list[dict[str, Any]]) -> Invocation:
        return Invocation("r", error={"errorType": "Error", "errorMessage": "no"})

    function = run(always)

    # Then it is tried twice (the first attempt and one retry), then recorded in the destination and skipped
    queue = stack.queue_url("Failed")
    messages: list[dict[str, Any]] = []
    wait(lambda: bool(messages.extend(clients["sqs"].receive_message(QueueUrl=queue).get("Messages", [])) or messages))
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["DDBStreamBatchInfo"]["batchSize"] == 2
    assert function.batches[:2] == [["a", "b"], ["a", "b"]]


def test_the_registry_runs_each_kind_of_trigger_the_template_uses():
    assert set(EVENT_SOURCE_KINDS) == {"SQS", "DynamoDB"}


def test_a_stream_option_the_local_runtime_cannot_honour_is_refused(tmp_path: Path):
    (tmp_path / "template.yaml").write_text(
        TEMPLATE.replace("BatchSize: 3", "BatchSize: 3\n            ParallelizationFactor: 2")
    )
    with pytest.raises(TemplateError, match="ParallelizationFactor"):
        load_stack(tmp_path / "template.yaml")
