"""infra/moto_dynamodb.py: a refused transaction leaves no record on the stream; a committed one leaves its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

from infra.moto_dynamodb import serialise_item_access


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    serialise_item_access()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def records(client: Any) -> list[Any]:
    shard = dynamodb_backends["123456789012"]["us-east-1"].get_table("t").stream_shard
    assert shard is not None
    return list(shard.items)


def stream_of(client: Any) -> list[str]:
    return [record.record["dynamodb"]["Keys"]["id"]["S"] for record in records(client)]


def test_a_refused_transaction_leaves_no_stream_record_and_a_committed_one_leaves_its_own(dynamodb):
    # Given a stream with one write
    dynamodb.put_item(TableName="t", Item={"id": {"S": "a"}})
    (first,) = records(dynamodb)

    # When a transaction writes b, then fails its condition on c, it is rolled back with its stream record
    put_b = {"Put": {"TableName": "t", "Item": {"id": {"S": "b"}}}}
    refused_c = {
        "Put": {"TableName": "t", "Item": {"id": {"S": "a"}}, "ConditionExpression": "attribute_not_exists(id)"}
    }
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=[put_b, refused_c])
    assert stream_of(dynamodb) == ["a"]
    # and the record that was there is the same object, not a copy of it (the rollback copy is cheap)
    assert records(dynamodb)[0] is first

    # And a committed one adds its records after the earlier ones
    dynamodb.transact_write_items(TransactItems=[put_b])
    assert stream_of(dynamodb) == ["a", "b"]
