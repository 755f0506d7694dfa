"""The local runtime end to end, on a fixture template with dummy handlers (tests/infra/fixtures)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from infra.testing import RunningStack

# Starts a local stack (`python -m infra`, with a worker process per function) over real HTTP.
pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
ALLOWED = "http://allowed.example"
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with RunningStack(template=FIXTURES / "template.yaml", log_dir=tmp_path_factory.mktemp("fixture-stack")) as stack:
        yield stack


def eventually(check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """The first truthy result of `check`, polling for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def records(stack: RunningStack, function: str) -> list[dict[str, Any]]:
    """SQS records the fixture handlers stored in RecordsTable."""
    items = stack.client("dynamodb").scan(TableName=stack.physical_name("RecordsTable"))["Items"]
    return [json.loads(item["record"]["S"]) for item in items if item["function"]["S"] == function]


# ---- HTTP gateway --------------------------------------------------------------------------------
def test_a_route_gets_an_api_gateway_2_0_event(stack):
    # Given a GET with path parameter, repeated query keys, cookies and an allowed origin
    response = requests.get(
        f"{stack.api_url}/echo/wor%20ld?a=1&a=2&b=",
        headers={"Cookie": "x=1; y=2", "Origin": ALLOWED, "X-Custom": "v"},
        timeout=10,
    )
    # Then the handler saw the event API Gateway (payload 2.0) would send
    assert response.status_code == 201
    event = response.json()["event"]
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "GET /echo/{name}", "/echo/wor%20ld")
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["pathParameters"] == {"name": "wor ld"}
    assert event["cookies"] == ["x=1", "y=2"]
    assert event["headers"]["x-custom"] == "v"
    assert "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    context = event["requestContext"]
    assert (context["stage"], context["routeKey"]) == ("$default", "GET /echo/{name}")
    assert context["accountId"] == "123456789012"
    assert context["apiId"] == stack.stack.http_api.api_id
    assert context["http"] == {
        "method": "GET",
        "path": "/echo/wor%20ld",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": response.request.headers["User-Agent"],
    }
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert response.headers["apigw-requestid"] == context["requestId"]


def test_the_function_response_becomes_the_http_response_with_cors_from_the_api(stack):
    response = requests.get(f"{stack.api_url}/echo/x", headers={"Origin": ALLOWED}, timeout=10)
    # Then statusCode, headers and cookies come from the function...
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2"]
    # ...except CORS headers: the API's configuration replaces the function's "*"
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_a_handler_runs_like_in_lambda(stack):
    report = requests.get(f"{stack.api_url}/echo/x", timeout=10).json()
    environ, context = report["environ"], report["context"]
    # Then the environment is the template's (function value over Globals, intrinsics resolved)
    assert environ["GREETING"] == "bonjour"
    assert environ["RECORDS_TABLE"] == stack.physical_name("RecordsTable")
    assert environ["BUCKET_ARN"] == f"arn:aws:s3:::{stack.physical_name('Bucket')}/*"
    # And Lambda's own variables are set, pointing AWS SDKs at the local endpoint
    assert environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == context["function_name"] == stack.physical_name("EchoFunction")
    assert (environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], environ["AWS_LAMBDA_FUNCTION_TIMEOUT"]) == ("128", "5")
    assert not [name for name in environ if name.startswith("LEYLINE_")]
    # And the code root is the working directory and first on sys.path, as /var/task is
    code_dir = str(FIXTURES / "functions")
    assert report["cwd"] == report["sys_path0"] == environ["LAMBDA_TASK_ROOT"] == code_dir
    # And the context carries the request id, ARN and the remaining time under the 5 s Timeout
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(f":function:{context['function_name']}")
    assert context["log_group_name"] == f"/aws/lambda/{context['function_name']}"
    assert 0 < context["remaining_ms"] <= 5000
    assert len(context["aws_request_id"]) == 36


def test_a_plain_dict_result_is_a_200_json_response(stack):
    response = requests.get(f"{stack.api_url}/plain", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["greeting"] == "hello"
    assert response.json()["numbers"] == [3, 1.5]


def test_binary_bodies_travel_base64_encoded_both_ways(stack):
    payload = bytes(range(256)) * 4
    response = requests.post(
        f"{stack.api_url}/files/a/b", data=payload, headers={"Content-Type": "application/octet-stream"}, timeout=10
    )
    assert response.status_code == 200
    assert response.content == payload


def test_a_text_body_arrives_as_text(stack):
    response = requests.post(f"{stack.api_url}/echo", json={"k": "v"}, timeout=10)
    event = response.json()["event"]
    assert (event["isBase64Encoded"], json.loads(event["body"])) == (False, {"k": "v"})
    form = requests.post(f"{stack.api_url}/echo", data={"k": "v"}, timeout=10).json()["event"]
    assert (form["isBase64Encoded"], base64.b64decode(form["body"])) == (True, b"k=v")


@pytest.mark.parametrize(("method", "path"), [("GET", "/nowhere"), ("DELETE", "/echo/x"), ("GET", "/echo")])
def test_routes_the_template_does_not_declare_are_404(stack, method, path):
    response = requests.request(method, f"{stack.api_url}{path}", timeout=10)
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


def test_cors_preflight_is_answered_for_allowed_origins_only(stack):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = requests.options(f"{stack.api_url}/echo", headers={"Origin": ALLOWED, **preflight}, timeout=10)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["access-control-allow-methods"] == "GET,POST"
    assert allowed.headers["access-control-allow-headers"] == "content-type"
    assert allowed.headers["access-control-max-age"] == "300"
    denied = requests.options(
        f"{stack.api_url}/echo", headers={"Origin": "http://evil.example", **preflight}, timeout=10
    )
    assert "access-control-allow-origin" not in denied.headers


def test_a_body_over_10_mb_is_413(stack):
    response = requests.post(f"{stack.api_url}/echo", data=b"x" * (10 * 1024 * 1024 + 1), timeout=30)
    assert (response.status_code, response.json()) == (413, {"message": "Request Entity Too Large"})


def test_handler_output_reaches_the_stack_log_prefixed_with_the_logical_id(stack):
    requests.get(f"{stack.api_url}/echo/log", timeout=10)
    eventually(lambda: "[EchoFunction] echo called" in stack.log_text())


# ---- workers -------------------------------------------------------------------------------------
def test_a_missing_handler_module_is_a_500_with_a_clear_log_not_a_startup_failure(stack):
    response = requests.get(f"{stack.api_url}/broken", timeout=10)
    assert (response.status_code, response.json()) == (500, {"message": "Internal Server Error"})
    expected = "Runtime.ImportModuleError: Unable to import module 'fixture_handlers.missing'"
    eventually(lambda: expected in stack.log_text())


def test_ps_shows_the_logical_id_of_each_worker(stack):
    pid = stack.wait_for_worker("EchoFunction")
    args = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True).stdout
    assert "infra.worker EchoFunction" in args


def test_a_timeout_kills_the_worker_and_a_fresh_one_replaces_it(stack):
    # Given SlowFunction (Timeout 1 s, reserved concurrency 1) and its warm worker
    old = stack.wait_for_worker("SlowFunction")
    # When an invocation runs past the timeout
    started = time.monotonic()
    response = requests.get(f"{stack.api_url}/slow?seconds=3", timeout=10)
    # Then API Gateway's answer comes at the timeout, and the worker is gone
    assert (response.status_code, response.json()) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 2.5
    assert old not in stack.worker_pids("SlowFunction")
    assert "Task timed out after 1.00 seconds" in stack.log_text()
    # And a fresh worker serves the next invocation
    new = stack.wait_for_worker("SlowFunction", exclude=[old])
    assert requests.get(f"{stack.api_url}/slow", timeout=10).json()["pid"] == new


def test_a_worker_killed_from_outside_is_replaced(stack):
    old = stack.wait_for_worker("PlainFunction")
    os.kill(old, signal.SIGKILL)
    new = stack.wait_for_worker("PlainFunction", exclude=[old])
    assert requests.get(f"{stack.api_url}/plain", timeout=10).json()["pid"] == new
    assert f"worker pid {old} exited (signal SIGKILL)" in stack.log_text()


# ---- event sources -------------------------------------------------------------------------------
def test_partial_batch_failure_keeps_only_the_failed_message(stack):
    # Given a good and a bad message on WorkQueue (visibility 1 s, maxReceiveCount 2)
    sqs = stack.client("sqs")
    attribute = {"kind": {"DataType": "String", "StringValue": "fixture"}}
    for body in ("ok", "fail"):
        sqs.send_message(QueueUrl=stack.queue_url("WorkQueue"), MessageBody=body, MessageAttributes=attribute)
    # When the mapping delivers them, Then the failed one is redelivered until SQS dead-letters it
    dead = eventually(
        lambda: sqs.receive_message(QueueUrl=stack.queue_url("WorkDeadLetterQueue")).get("Messages"), timeout=15
    )
    assert [m["Body"] for m in dead] == ["fail"]
    # And the good one was processed once and deleted
    seen = records(stack, "batch")
    assert [r["body"] for r in seen].count("ok") == 1
    assert [r["body"] for r in seen].count("fail") == 2
    # And each record has Lambda's SQS event shape
    record = next(r for r in seen if r["body"] == "ok")
    assert (record["eventSource"], record["eventSourceARN"]) == ("aws:sqs", stack.stack.arn("WorkQueue"))
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"]["stringValue"] == "fixture"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert all(record[key] for key in ("md5OfBody", "receiptHandle", "messageId"))


def test_an_upload_reaches_the_function_through_eventbridge_and_a_fifo_queue(stack):
    # Given the bucket's EventBridge notifications and a rule into UploadQueue.fifo
    key = "uploads/a b+c.png"
    stack.client("s3").put_object(Bucket=stack.physical_name("Bucket"), Key=key, Body=b"png")
    # When the mapping delivers it, Then the function got the S3 event, in the rule's message group
    (record,) = eventually(lambda: records(stack, "upload"))
    assert record["attributes"]["MessageGroupId"] == "uploads"
    assert record["eventSourceARN"] == stack.stack.arn("UploadQueue")
    event = json.loads(record["body"])
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["detail"]["object"]["key"] == key  # moto: not URL-encoded


def test_the_stack_is_ready_only_once_every_function_has_run_its_init_phase(stack):
    # Given a function whose init phase (its module's import) takes 1.5 s
    # When the stack has said it is ready and the function answers
    body = requests.get(f"{stack.api_url}/echo/init", timeout=10).json()
    # Then its init phase was over before the ready line: a burst right after it meets warm workers
    assert body["initialised_at"] <= stack.ready_at
