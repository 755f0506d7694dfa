"""template.yaml's resources in moto's in-process mock (no server, no process), provisioned once per module or
package and emptied between tests: provisioning takes about half a second, emptying a few milliseconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.moto_fidelity import behave_as_aws
from infra.provision import provision
from infra.template import Stack


@contextmanager
def provisioned(stack: Stack) -> Iterator[boto3.Session]:
    """A session on moto's mock in which `stack`'s resources exist, with test credentials in the environment."""
    behave_as_aws()  # as the local stack's server does (the model runs in a thread in some tests)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": stack.region,
            "AWS_REGION": stack.region,
            # moto refuses a second purge of a queue within 60 s, as SQS does; `empty` purges before each test.
            "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            session = boto3.Session(region_name=stack.region)
            provision(stack, session, None)
            yield session


def empty(aws: boto3.Session) -> None:
    """Deletes what tests wrote (items, messages, objects) and keeps what provisioning made, so a test starts
    from the state of freshly provisioned resources."""
    resources = _resources(aws)
    for table, key in resources.tables.items():
        for page in resources.dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                resources.dynamodb.delete_item(TableName=table, Key={name: item[name] for name in key})
    for url in resources.queue_urls:
        resources.sqs.purge_queue(QueueUrl=url)  # in-flight messages too
    for bucket in resources.buckets:
        for page in resources.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            if page.get("Contents"):
                objects = [{"Key": stored["Key"]} for stored in page["Contents"]]
                resources.s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})


@dataclass(frozen=True)
class _Resources:
    dynamodb: Any
    sqs: Any
    s3: Any
    tables: dict[str, list[str]]  # name -> key attributes
    queue_urls: list[str]
    buckets: list[str]


@cache
def _resources(aws: boto3.Session) -> _Resources:
    """The session's clients and what was provisioned, looked up once: making a botocore client, or a call to
    moto, takes longer than emptying a table."""
    dynamodb, sqs, s3 = aws.client("dynamodb"), aws.client("sqs"), aws.client("s3")
    return _Resources(
        dynamodb=dynamodb,
        sqs=sqs,
        s3=s3,
        tables={
            name: [part["AttributeName"] for part in dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]]
            for name in dynamodb.list_tables()["TableNames"]
        },
        queue_urls=sqs.list_queues().get("QueueUrls", []),
        buckets=[bucket["Name"] for bucket in s3.list_buckets()["Buckets"]],
    )
