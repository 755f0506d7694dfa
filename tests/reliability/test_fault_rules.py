"""tests/faultproxy.py without a stack: which AWS operation a request is, and the error bodies faults answer with."""

from __future__ import annotations

import json
import pkgutil
from email.message import Message

import pytest

import infra
from infra import testing
from tests import faultproxy
from tests.faultproxy import Fault, FaultSpecError, FaultTable, error_response, identify

SIGV4 = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x"


def headers(**values: str) -> Message:
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "expected"),
    [
        ("GET", "/media/uploads/abc", "", {}, "GetObject"),
        ("HEAD", "/media/uploads/abc", "", {}, "HeadObject"),
        ("PUT", "/media/videos/abc.mp4", "", {}, "PutObject"),
        ("PUT", "/media/videos/abc.mp4", "", {"x_amz_copy_source": "/media/a"}, "CopyObject"),
        ("GET", "/media/uploads/abc", "tagging", {}, "GetObjectTagging"),
        ("POST", "/media/big", "uploads", {}, "CreateMultipartUpload"),
        ("PUT", "/media/big", "partNumber=1&uploadId=u", {}, "UploadPart"),
        ("POST", "/media", "", {}, "PostObject"),
        ("POST", "/media", "delete", {}, "DeleteObjects"),
        ("GET", "/media", "list-type=2&prefix=videos%2F", {}, "ListObjectsV2"),
        ("PUT", "/media", "cors", {}, "PutBucketCors"),
        ("GET", "/media", "publicAccessBlock", {}, "GetBucketPublicAccessBlock"),
        ("HEAD", "/media", "", {}, "HeadBucket"),
        ("PUT", "/media", "", {}, "CreateBucket"),
        ("OPTIONS", "/media", "", {}, "PreflightRequest"),
    ],
)
def test_s3_requests_are_named_after_the_api_operation(method, path, query, extra, expected):
    assert identify(method, path, query, headers(Authorization=SIGV4.format(service="s3"), **extra), b"") == (
        "s3",
        expected,
    )


def test_a_presigned_url_is_named_from_its_query_and_a_browser_post_without_any_signature():
    presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=t%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    assert identify("GET", "/media/videos/abc.mp4", presigned, headers(), None) == ("s3", "GetObject")
    form = headers(Content_Type="multipart/form-data; boundary=x")
    assert identify("POST", "/media", "", form, b"--x") == ("s3", "PostObject")


def test_json_protocols_are_named_by_their_target_and_query_protocols_by_their_action():
    dynamodb = headers(X_Amz_Target="DynamoDB_20120810.UpdateItem", Authorization=SIGV4.format(service="dynamodb"))
    sqs = headers(X_Amz_Target="AmazonSQS.ChangeMessageVisibility")  # unsigned: the target alone says SQS
    query = headers(Content_Type="application/x-www-form-urlencoded", Authorization=SIGV4.format(service="sns"))
    assert identify("POST", "/", "", dynamodb, b"{}") == ("dynamodb", "UpdateItem")
    assert identify("POST", "/", "", sqs, b"{}") == ("sqs", "ChangeMessageVisibility")
    assert identify("POST", "/", "", query, b"Action=Publish&Version=2010-03-31") == ("sns", "Publish")


def test_error_bodies_follow_each_services_protocol():
    s3 = Fault.from_spec({"service": "s3"})
    dynamodb = Fault.from_spec({"service": "dynamodb", "message": "slow down"})
    sqs = Fault.from_spec({"service": "sqs", "status": 500, "code": "InternalError"})

    s3_headers, s3_body = error_response(s3, "GET", "REQ1")
    assert s3_headers["Content-Type"] == "application/xml"
    assert b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>" in s3_body
    assert error_response(s3, "HEAD", "REQ1")[1] == b""  # S3 sends no body with a HEAD error

    ddb_headers, ddb_body = error_response(dynamodb, "POST", "REQ2")
    assert ddb_headers["Content-Type"] == "application/x-amz-json-1.0"
    assert json.loads(ddb_body) == {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "slow down",
    }
    sqs_headers, sqs_body = error_response(sqs, "POST", "REQ3")
    assert sqs_headers["x-amzn-query-error"] == "InternalError;Receiver"
    assert json.loads(sqs_body)["__type"] == "com.amazonaws.sqs#InternalError"


def test_a_fault_is_used_up_after_count_matching_requests_and_every_request_is_counted():
    table = FaultTable()
    table.add({"service": "s3", "operation": "GetObject", "count": 2, "match": ["uploads/", "abc"]})
    outcomes = [
        table.take("s3", "GetObject", "GET /media/uploads/xyz"),  # no match: the key differs
        table.take("s3", "HeadObject", "HEAD /media/uploads/abc"),  # another operation
        table.take("s3", "GetObject", "GET /media/uploads/abc"),
        table.take("s3", "GetObject", "GET /media/uploads/abc"),
        table.take("s3", "GetObject", "GET /media/uploads/abc"),  # used up
    ]
    assert [None if taken is None else taken[1] for taken in outcomes] == [None, None, 1, 2, None]
    snapshot = table.snapshot()
    assert (snapshot["faults"][0]["hits"], snapshot["faults"][0]["remaining"]) == (2, 0)
    assert snapshot["requests"] == {"s3:GetObject": 4, "s3:HeadObject": 1}
    table.clear()
    assert table.snapshot() == {"faults": [], "requests": {}}


@pytest.mark.parametrize(
    "spec",
    [None, [], {}, {"service": "s3", "count": -1}, {"service": "s3", "status": 302}, {"service": "s3", "match": [""]}],
)
def test_malformed_faults_are_refused(spec):
    with pytest.raises(FaultSpecError):
        Fault.from_spec(spec)


def test_the_proxy_is_test_support_not_part_of_the_shipped_runtime():
    # Given the modules of the runtime package that pyproject ships (infra*)
    shipped = [module.name for module in pkgutil.walk_packages(infra.__path__, "infra.")]
    # Then none of them is the fault proxy: it lives in tests/ and the runtime knows it by no name
    assert "infra.testing" in shipped
    assert not [name for name in shipped if "fault" in name]
    # And the harness calls the control path the proxy serves
    assert testing.FAULTS_CONTROL_PATH == faultproxy.CONTROL_PATH
