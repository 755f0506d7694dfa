"""moto's DynamoDB as the local stack runs it (infra/moto_dynamodb.py): a refused transaction leaves every item,
and the table's stream, as they were, while its rollback copies only the items the transaction names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.dynamodb import comparisons
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.responses import DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.server import ThreadedMotoServer

from infra.moto_dynamodb import (
    conditions_parsed_once,
    items_answered_as_json,
    serialise_item_access,
    stream_records_answered_as_json,
)
from infra.testing import free_port

REGION = "eu-west-1"
ACCOUNT = "123456789012"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A table with a key-only schema and a stream, on moto's in-process mock with the local stack's changes."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    serialise_item_access()
    conditions_parsed_once()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        _create_streamed_table(client, "things")
        yield client


def _create_streamed_table(client: Any, name: str) -> None:
    """A table with a key-only schema and a stream of old and new images."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _stream_length() -> int:
    shard = dynamodb_backends[ACCOUNT][REGION].tables["things"].stream_shard
    assert shard is not None
    return len(shard.items)


def test_a_refused_transaction_changes_no_item_and_adds_no_stream_record(dynamodb: Any) -> None:
    # Given two items
    dynamodb.put_item(TableName="things", Item={"id": {"S": "a"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName="things", Item={"id": {"S": "b"}, "n": {"N": "1"}})
    records_before = _stream_length()
    # When a transaction updates one, puts a new one, deletes the other, then fails its last condition
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "things", "Key": {"id": {"S": "a"}}, "UpdateExpression": "SET n = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
                {"Put": {"TableName": "things", "Item": {"id": {"S": "c"}}}},
                {"Delete": {"TableName": "things", "Key": {"id": {"S": "b"}}}},
                {"ConditionCheck": {"TableName": "things", "Key": {"id": {"S": "missing"}},
                                    "ConditionExpression": "attribute_exists(id)"}},
            ]
        )  # fmt: skip
    # Then every item is as it was, and the stream holds no record of the refused writes
    items = {item["id"]["S"]: item for item in dynamodb.scan(TableName="things")["Items"]}
    assert sorted(items) == ["a", "b"]
    assert items["a"]["n"] == {"N": "1"}
    assert _stream_length() == records_before


def test_an_accepted_transaction_applies_every_action(dynamodb: Any) -> None:
    # Given one item
    dynamodb.put_item(TableName="things", Item={"id": {"S": "a"}, "n": {"N": "1"}})
    # When a transaction whose conditions hold updates it and puts another
    dynamodb.transact_write_items(
        TransactItems=[
            {"Update": {"TableName": "things", "Key": {"id": {"S": "a"}}, "UpdateExpression": "SET n = :two",
                        "ConditionExpression": "n = :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}}}},
            {"Put": {"TableName": "things", "Item": {"id": {"S": "b"}}}},
        ]
    )  # fmt: skip
    # Then both writes are there, each with its stream record
    items = {item["id"]["S"]: item for item in dynamodb.scan(TableName="things")["Items"]}
    assert items["a"]["n"] == {"N": "2"}
    assert "b" in items
    assert _stream_length() == 3


def _versioned_put(key: str, version: int, read: int) -> dict[str, Any]:
    """A Put of version `version`, on the condition that the item is still at version `read`."""
    item = {"id": {"S": key}, "version": {"N": str(version)}}
    condition = {"ConditionExpression": "version = :read", "ExpressionAttributeValues": {":read": {"N": str(read)}}}
    return {"Put": {"TableName": "things", "Item": item, **condition}}


def test_a_condition_seen_before_is_held_against_the_values_it_comes_with(dynamodb: Any) -> None:
    # Given an item at version 7, moved to 8 under the condition "version = :read" with :read 7
    dynamodb.put_item(TableName="things", Item={"id": {"S": "v"}, "version": {"N": "7"}})
    dynamodb.transact_write_items(TransactItems=[_versioned_put("v", 8, read=7)])
    # When the same condition comes again with the same value (the version it no longer has), it is refused
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=[_versioned_put("v", 9, read=7)])
    # And with the value it has now, it holds
    dynamodb.transact_write_items(TransactItems=[_versioned_put("v", 9, read=8)])
    assert dynamodb.get_item(TableName="things", Key={"id": {"S": "v"}})["Item"]["version"] == {"N": "9"}


def test_a_condition_repeated_by_a_transaction_s_writes_is_parsed_once(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five items at one version (never used by another test: the parses are kept for the process)
    for key in "abcde":
        dynamodb.put_item(TableName="things", Item={"id": {"S": key}, "version": {"N": "4041"}})
    parses: list[str | None] = []
    parser = comparisons.create_condition_expression_parser  # what moto's parse of a condition builds first

    def counted(expression: str | None, names: Any, values: Any) -> Any:
        parses.append(expression)
        return parser(expression, names, values)

    monkeypatch.setattr(comparisons, "create_condition_expression_parser", counted)
    # When one transaction writes all five under the same condition (moto checks it, then puts: ten uses)
    dynamodb.transact_write_items(TransactItems=[_versioned_put(key, 4042, read=4041) for key in "abcde"])
    # Then every write was applied, and the condition was parsed once
    items = dynamodb.scan(TableName="things")["Items"]
    assert sorted(item["version"]["N"] for item in items) == ["4042"] * 5
    assert parses == ["version = :read"]


def test_a_transaction_does_not_copy_the_table_it_writes(dynamodb: Any) -> None:
    # Given a table
    table = dynamodb_backends[ACCOUNT][REGION].tables["things"]
    # When a transaction on it is refused (moto's own rollback put a deep copy of the whole table in its place)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "things", "Item": {"id": {"S": "a"}},
                         "ConditionExpression": "attribute_exists(id)"}},
            ]
        )  # fmt: skip
    # Then the table is the same object: the rollback restored items, not a copy of every item
    assert dynamodb_backends[ACCOUNT][REGION].tables["things"] is table


def test_a_read_never_sees_half_a_write(dynamodb: Any) -> None:
    # Given a writer on another thread creating items of twenty attributes by UpdateItem, then changing them all
    names = [f"a{n}" for n in range(20)]
    expression = "SET " + ", ".join(f"{name} = :v" for name in names)
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def write() -> None:
        for key in range(60):
            for value in ("1", "2"):
                dynamodb.update_item(TableName="things", Key={"id": {"S": str(key)}}, UpdateExpression=expression,
                                     ExpressionAttributeValues={":v": {"N": value}})  # fmt: skip
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    # When this thread reads the items being written, by GetItem and by Scan, until the writer is done
    while not done.is_set():
        for key in range(0, 60, 3):
            found = dynamodb.get_item(TableName="things", Key={"id": {"S": str(key)}}, ConsistentRead=True)
            seen += [found["Item"]] if "Item" in found else []
        seen += dynamodb.scan(TableName="things")["Items"]
    writer.join(timeout=60)
    # Then every item read had all its attributes, all from one write (moto writes an item attribute by attribute)
    assert seen
    torn = [item for item in seen if len({str(item.get(name)) for name in names}) != 1 or names[0] not in item]
    assert torn == []


def test_an_item_read_answers_what_moto_s_serializer_would(dynamodb: Any) -> None:
    # Given items holding every kind of DynamoDB value, binary ones and text JSON must escape among them
    item = {
        "n": {"N": "1.50"}, "b": {"B": b"\x00\x01xyz"}, "bs": {"BS": [b"q", b"r"]}, "ok": {"BOOL": True},
        "none": {"NULL": True}, "l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"z": {"B": b"zz"}}}]},
        "m": {"M": {"y": {"SS": ["a", "b"]}, "w": {"NS": ["1", "2"]}}}, "s": {"S": 'é\u2028"\\\n'},
    }  # fmt: skip
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName="things", Item={"id": {"S": key}, **item})
    reads = {
        "get": lambda: dynamodb.get_item(TableName="things", Key={"id": {"S": "a"}}),
        "missing": lambda: dynamodb.get_item(TableName="things", Key={"id": {"S": "nobody"}}),
        "query": lambda: dynamodb.query(TableName="things", KeyConditionExpression="id = :a",
                                        ExpressionAttributeValues={":a": {"S": "a"}}),
        "scan": lambda: dynamodb.scan(TableName="things", Limit=2),
        "batch": lambda: dynamodb.batch_get_item(RequestItems={"things": {"Keys": [{"id": {"S": "b"}}]}}),
    }  # fmt: skip
    # When each is read with moto's own serializer, then answered as JSON (items_answered_as_json)
    items_answered_as_json()
    answered_as_json = DynamoResult.execute_result
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DynamoResult, "execute_result", answered_as_json.__wrapped__)  # type: ignore[attr-defined]
        walked = {name: read() for name, read in reads.items()}
    direct = {name: read() for name, read in reads.items()}
    # Then boto3 parses the same answer from both
    for answers in (walked, direct):
        for answer in answers.values():
            answer.pop("ResponseMetadata")
    assert direct == walked
    assert direct["get"]["Item"]["b"] == {"B": b"\x00\x01xyz"}


@pytest.mark.integration  # starts a moto server (a thread) on a free port
def test_a_stream_read_answers_what_moto_s_serializer_would(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a table's stream on a moto server (the in-process mock answers the stream reads "Not yet
    # implemented") holding an insert, a modify and a remove of items with binary values, maps and lists
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        streams = boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=endpoint)
        _create_streamed_table(dynamodb, "streamed")
        item: dict[str, Any] = {
            "id": {"S": "a"},
            "b": {"B": b"\x00\x01"},
            "m": {"M": {"l": {"L": [{"N": "2"}, {"S": 'é"\\'}]}}},
        }
        dynamodb.put_item(TableName="streamed", Item=item)
        dynamodb.put_item(TableName="streamed", Item={**item, "n": {"N": "1.50"}})
        dynamodb.delete_item(TableName="streamed", Key={"id": {"S": "a"}})
        arn = dynamodb.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

        def read() -> dict[str, Any]:
            iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
            answer: dict[str, Any] = streams.get_records(ShardIterator=iterator["ShardIterator"])
            answer.pop("ResponseMetadata")
            answer.pop("NextShardIterator")  # a new one at every read
            return answer

        # When it is read with moto's own serializer, then answered as JSON (stream_records_answered_as_json)
        stream_records_answered_as_json()
        answered_as_json = DynamoDBStreamsHandler.get_records
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(DynamoDBStreamsHandler, "get_records", answered_as_json.__wrapped__)  # type: ignore[attr-defined]
            walked = read()
        walk = ActionResult.execute_result

        def records_not_walked(result: ActionResult, context: Any) -> Any:
            assert context.operation_model.name != "GetRecords", "moto's serializer walked the records"
            return walk(result, context)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ActionResult, "execute_result", records_not_walked)
            direct = read()
    finally:
        server.stop()
    # Then boto3 parses the same records from both, their times included, and the second did not walk them
    assert direct == walked
    assert [record["eventName"] for record in direct["Records"]] == ["INSERT", "MODIFY", "REMOVE"]
    assert direct["Records"][1]["dynamodb"]["OldImage"]["b"] == {"B": b"\x00\x01"}
    assert direct["Records"][0]["dynamodb"]["ApproximateCreationDateTime"].tzinfo is not None
