"""Idempotency-Key on POST /uploads and POST /upload: ApiFunction, invoked with the sample events, its records
in the template's SubmitIdempotencyTable (moto), written by Powertools' persistence layer."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.adapters.idempotency import DynamoDBSubmitRecords
from leyline.logic.submit import KEY_LIFETIME_SECONDS, presigned_fingerprint, scoped_key
from tests.handlers.support import body, status_of, with_body
from tests.lambda_context import FakeLambdaContext
from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()
SAMPLE_CLIENT = "127.0.0.1"  # the sample events' sourceIp


def keyed(sample: str, key: str, *, source_ip: str = SAMPLE_CLIENT) -> dict[str, Any]:
    event = sample_event(sample)
    event["headers"]["idempotency-key"] = key
    event["requestContext"]["http"]["sourceIp"] = source_ip
    return event


def task_count(aws, template) -> int:
    table = template.functions["ApiFunction"].environment["TASKS_TABLE"]
    return int(aws.client("dynamodb").scan(TableName=table)["Count"])


def policy_of(ticket: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(ticket["upload"]["fields"]["policy"])))


def records_in_an_invocation(aws, template, *, seconds_left: float) -> DynamoDBSubmitRecords:
    """ApiFunction's records, as the route uses them, in an invocation with `seconds_left` to run."""
    records = DynamoDBSubmitRecords(
        template.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"],
        lifetime_seconds=KEY_LIFETIME_SECONDS,
        client=aws.client("dynamodb"),
    )
    records.register_lambda_context(cast(LambdaContext, FakeLambdaContext(timeout_seconds=seconds_left)))
    return records


def expiration(policy: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))


def test_a_retried_presigned_submit_gets_the_same_task_and_a_fresh_form_and_creates_nothing(invoke, aws, template):
    # Given a POST /uploads with an Idempotency-Key
    first = invoke("ApiFunction", keyed("http-create-upload.json", "retry-me"))
    # When the same request is sent again with that key
    time.sleep(1.1)  # the policy's expiration is to the second: a form signed later differs
    again = invoke("ApiFunction", keyed("http-create-upload.json", "retry-me"))
    # Then both are 201 with the same task, and one task exists
    assert (first["statusCode"], again["statusCode"]) == (201, 201)
    assert body(again)["task_id"] == body(first)["task_id"]
    assert task_count(aws, template) == 1
    # And the replay's form is signed anew for the same key and type, with the first form's deadline
    task_id = body(first)["task_id"]
    assert body(again)["upload"]["fields"]["key"] == f"uploads/{task_id}"
    signature = "x-amz-signature"
    assert body(again)["upload"]["fields"][signature] != body(first)["upload"]["fields"][signature]
    assert {"Content-Type": "image/png"} in policy_of(body(again))["conditions"]
    # (its deadline: never later than the first form's, at most the second the retry's clock rounds off)
    first_ends, again_ends = (expiration(policy_of(body(response))) for response in (first, again))
    assert first_ends - timedelta(seconds=2) <= again_ends <= first_ends
    assert body(again)["expires_in"] < body(first)["expires_in"]


def test_a_retried_form_upload_gets_the_same_answer_and_stores_one_task(invoke, aws, template):
    # Given the sample POST /upload with an Idempotency-Key, sent twice
    first = invoke("ApiFunction", keyed("http-form-upload.json", "form-1"))
    again = invoke("ApiFunction", keyed("http-form-upload.json", "form-1"))
    # Then the same 202 and body, one task, one stored upload
    assert (first["statusCode"], again["statusCode"]) == (202, 202)
    assert body(again) == body(first)
    assert task_count(aws, template) == 1
    bucket = template.functions["ApiFunction"].environment["MEDIA_BUCKET"]
    assert aws.client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_without_the_header_each_submit_creates_a_task(invoke, aws, template):
    # When the same request is sent twice without a key, Then two tasks, as before
    for _ in range(2):
        assert invoke("ApiFunction", sample_event("http-create-upload.json"))["statusCode"] == 201
    assert task_count(aws, template) == 2
    # And no idempotency record was written
    table = template.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"]
    assert aws.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_the_same_key_with_another_request_is_422_and_creates_nothing(invoke, aws, template):
    # Given a POST /uploads with a key
    assert invoke("ApiFunction", keyed("http-create-upload.json", "k"))["statusCode"] == 201
    # When the key comes back with another body, or on the form route
    other_body = with_body(keyed("http-create-upload.json", "k"), b'{"content_type": "image/jpeg"}', "application/json")
    for event in (other_body, keyed("http-form-upload.json", "k")):
        response = invoke("ApiFunction", event)
        # Then 422 IDEMPOTENCY_KEY_REUSED, and still one task
        assert response["statusCode"] == 422
        assert body(response)["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert task_count(aws, template) == 1


def test_a_form_upload_is_the_same_request_whatever_its_other_parts(invoke, aws, template):
    # Given a form upload with a key
    assert invoke("ApiFunction", keyed("http-form-upload.json", "k"))["statusCode"] == 202
    # When the same image comes with another file name and an extra field, Then it is the same request
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="other.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + EXAMPLE + b"\r\n--b--\r\n"
    )
    again = invoke(
        "ApiFunction", with_body(keyed("http-form-upload.json", "k"), raw, "multipart/form-data; boundary=b")
    )
    assert again["statusCode"] == 202
    assert task_count(aws, template) == 1
    # But other bytes are another request
    other = raw.replace(b"hello", b"hi").replace(b"\r\n--b--", b"\0\r\n--b--")
    refused = invoke(
        "ApiFunction", with_body(keyed("http-form-upload.json", "k"), other, "multipart/form-data; boundary=b")
    )
    assert refused["statusCode"] == 422


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "\x7f"])
@pytest.mark.parametrize("sample", ["http-create-upload.json", "http-form-upload.json"])
def test_a_malformed_key_is_400_and_creates_nothing(invoke, aws, template, sample, key):
    response = invoke("ApiFunction", keyed(sample, key))
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert task_count(aws, template) == 0


def test_keys_are_scoped_to_the_client(invoke, aws, template):
    # Given a keyed POST /uploads from one client
    mine = invoke("ApiFunction", keyed("http-create-upload.json", "shared"))
    # When another client (another source IP) sends the same key and request
    theirs = invoke("ApiFunction", keyed("http-create-upload.json", "shared", source_ip="203.0.113.7"))
    # Then it gets a task of its own
    assert (mine["statusCode"], theirs["statusCode"]) == (201, 201)
    assert body(theirs)["task_id"] != body(mine)["task_id"]
    assert task_count(aws, template) == 2


def test_a_retry_while_the_first_is_still_handled_is_409(invoke, aws, template):
    # Given the first request with a key still being handled: its in-progress record written by Powertools'
    # persistence layer on the function's table, exactly as the route would write it
    records = records_in_an_invocation(aws, template, seconds_left=10)
    retries: list[dict[str, Any]] = []

    def first_request_still_running() -> dict[str, Any]:
        # When the retry arrives meanwhile
        retries.append(invoke("ApiFunction", keyed("http-create-upload.json", "slow")))
        return {"task_id": "00000000-0000-4000-8000-000000000000"}

    records.once(
        scoped_key(SAMPLE_CLIENT, "slow"), presigned_fingerprint("image/png", None), first_request_still_running
    )
    # Then it is 409 REQUEST_IN_PROGRESS, and it created nothing
    (retry,) = retries
    assert retry["statusCode"] == 409
    assert body(retry)["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert task_count(aws, template) == 0


def test_a_key_whose_first_request_died_is_free_again_once_that_invocation_is_over(invoke, aws, template):
    # Given an in-progress record whose invocation had 50 ms left and is now over (it died: nothing completed it)
    records = records_in_an_invocation(aws, template, seconds_left=0.05)
    retries: list[dict[str, Any]] = []

    def dies_after_the_retry() -> dict[str, Any]:
        time.sleep(0.2)
        # When the client retries after that invocation's end
        retries.append(invoke("ApiFunction", keyed("http-create-upload.json", "crashed")))
        raise SystemExit  # the first invocation never answers

    with pytest.raises(SystemExit):
        records.once(
            scoped_key(SAMPLE_CLIENT, "crashed"), presigned_fingerprint("image/png", None), dies_after_the_retry
        )
    # Then the retry ran: 201 and a task, not 409 for a day
    (retry,) = retries
    assert retry["statusCode"] == 201
    assert status_of(invoke, body(retry)["task_id"])[1]["state"] == "PENDING"


def test_a_replay_after_the_upload_landed_is_409_upload_closed_pointing_at_the_task(invoke, aws, template):
    # Given a keyed POST /uploads whose image then landed (the intake queued it)
    task_id = body(invoke("ApiFunction", keyed("http-create-upload.json", "done")))["task_id"]
    table = template.functions["ApiFunction"].environment["TASKS_TABLE"]
    aws.client("dynamodb").update_item(
        TableName=table,
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET #s = :queued",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":queued": {"S": "QUEUED"}},
    )
    # When the request is replayed
    response = invoke("ApiFunction", keyed("http-create-upload.json", "done"))
    # Then no new form (it could only land a second upload): 409 UPLOAD_CLOSED, and where the task is
    assert response["statusCode"] == 409
    assert body(response)["error"]["code"] == "UPLOAD_CLOSED"
    assert response["headers"]["Location"] == f"/status/{task_id}"
    assert task_id in body(response)["error"]["message"]


def test_a_refused_submit_is_not_replayed_so_its_retry_can_succeed(invoke, aws, template):
    # Given a keyed POST /upload refused for its content (415)
    gif = b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nGIF89a\0\0\0\r\n--b--\r\n'
    refused = invoke(
        "ApiFunction", with_body(keyed("http-form-upload.json", "k"), gif, "multipart/form-data; boundary=b")
    )
    assert refused["statusCode"] == 415
    # Then its record is gone with it: nothing holds the key
    table = template.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"]
    assert aws.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_a_key_is_kept_24_hours_and_its_in_progress_mark_only_as_long_as_the_invocation(invoke, aws, template):
    # When a keyed POST /upload is handled by a function with its template Timeout (10 s)
    started = time.time()
    task_id = body(invoke("ApiFunction", keyed("http-form-upload.json", "kept")))["task_id"]
    # Then its record holds the answer for 24 hours, under the submit prefix, without the image
    table = template.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"]
    (item,) = aws.client("dynamodb").scan(TableName=table)["Items"]
    assert item["id"]["S"].startswith("submit#")
    assert item["status"]["S"] == "COMPLETED"
    assert json.loads(item["data"]["S"]) == {"task_id": task_id}
    assert started + 86400 - 1 <= int(item["expiration"]["N"]) <= time.time() + 86400
    # And while in progress it would have blocked retries only until that invocation's end, not for a day
    timeout = template.functions["ApiFunction"].timeout_seconds
    assert int(item["in_progress_expiration"]["N"]) <= (time.time() + timeout) * 1000


def test_the_openapi_document_documents_the_header_on_both_submit_routes(invoke):
    # Given the served OpenAPI document
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
    document = body(invoke("ApiFunction", event))
    # Then both submit routes take an optional Idempotency-Key of 1 to 255 characters, and list its answers
    for path in ("/uploads", "/upload"):
        operation = document["paths"][path]["post"]
        (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"]) == ("Idempotency-Key", False)
        assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)
        assert {"409", "422"} <= set(operation["responses"])
