"""ApiFunction and StatusFunction, invoked with the sample API Gateway events from events/."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()


def body(response: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response["body"])
    return parsed


def with_body(event: dict[str, Any], raw: bytes, content_type: str) -> dict[str, Any]:
    return {
        **event,
        "headers": {**event["headers"], "content-type": content_type},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def status_of(invoke, task_id: str) -> tuple[int, dict[str, Any]]:
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/status/{task_id}"
    event["pathParameters"] = {"task_id": task_id}
    response = invoke("StatusFunction", event)
    return response["statusCode"], body(response)


def test_create_upload_issues_a_presigned_post_pinned_to_the_task_key(invoke, template):
    # Given the sample POST /uploads event asking for a PNG upload
    response = invoke("ApiFunction", sample_event("http-create-upload.json"))

    # Then a task exists in PENDING and the presigned POST pins key, type and size range
    assert response["statusCode"] == 201
    ticket = body(response)
    task_id = ticket["task_id"]
    fields = ticket["upload"]["fields"]
    assert fields["key"] == f"uploads/{task_id}"
    assert fields["Content-Type"] == "image/png"
    policy = json.loads(base64.b64decode(fields["policy"]))
    max_bytes = int(template.parameters["MaxUploadBytes"])
    assert ["content-length-range", 1, max_bytes] in policy["conditions"]
    assert {"key": f"uploads/{task_id}"} in policy["conditions"]
    assert ticket["max_bytes"] == max_bytes
    assert ticket["status_url"] == f"/status/{task_id}"
    assert status_of(invoke, task_id)[1]["state"] == "PENDING"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "MALFORMED_JSON"),
        (b"\r\n\r\n", 400, "MALFORMED_JSON"),
        (b"[1, 2]", 400, "BAD_REQUEST"),
        (b'{"content_type": 5}', 400, "BAD_REQUEST"),
        (b'{"content_type": "image/gif"}', 415, "UNSUPPORTED_FORMAT"),
        (b'{"size": "big"}', 400, "BAD_REQUEST"),
        (b'{"size": 0}', 400, "EMPTY_FILE"),
        (b'{"size": 999999999999}', 413, "FILE_TOO_LARGE"),
    ],
)
def test_create_upload_refuses_bad_bodies_with_error_objects(invoke, aws, template, raw, status, code):
    event = with_body(sample_event("http-create-upload.json"), raw, "application/json")
    response = invoke("ApiFunction", event)
    assert response["statusCode"] == status
    assert body(response)["error"]["code"] == code
    # and no task was created for a refused request
    table = template.functions["ApiFunction"].environment["TASKS_TABLE"]
    assert aws.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_seed_multipart_upload_stores_the_bytes_under_the_task_key(invoke, aws, template):
    # Given the sample multipart POST /upload (field `image`, file name image.png)
    response = invoke("ApiFunction", sample_event("http-legacy-upload.json"))

    # Then it answers like the seed, and the bytes sit at uploads/<task_id>, whatever the file name was
    assert response["statusCode"] == 202
    task_id = body(response)["task_id"]
    assert body(response) == {"task_id": task_id, "status_url": f"/status/{task_id}"}
    bucket = template.functions["ApiFunction"].environment["MEDIA_BUCKET"]
    stored = aws.client("s3").get_object(Bucket=bucket, Key=f"uploads/{task_id}")
    assert stored["Body"].read() == EXAMPLE
    assert stored["ContentType"] == "image/png"


def multipart(field: str, content: bytes, boundary: str = "b0undary") -> tuple[bytes, str]:
    raw = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="../../evil.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return raw, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("field", "content", "status", "code"),
    [
        ("photo", EXAMPLE, 400, "MISSING_IMAGE"),
        ("image", b"", 400, "EMPTY_FILE"),
        ("image", b"GIF89a" + b"\0" * 100, 415, "UNSUPPORTED_FORMAT"),
        ("image", b"\x89PNG\r\n\x1a\n" + b"\0" * 5_000_000, 413, "FILE_TOO_LARGE"),
    ],
)
def test_seed_upload_refuses_bad_forms(invoke, field, content, status, code):
    event = with_body(sample_event("http-legacy-upload.json"), *multipart(field, content))
    response = invoke("ApiFunction", event)
    assert response["statusCode"] == status
    assert body(response)["error"]["code"] == code


def test_seed_upload_needs_a_multipart_body(invoke):
    event = with_body(sample_event("http-legacy-upload.json"), b"just text", "text/plain")
    response = invoke("ApiFunction", event)
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "MISSING_IMAGE"


def test_status_of_unknown_and_malformed_ids(invoke):
    unknown = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
    code, answer = status_of(invoke, unknown)
    assert code == 404
    assert answer["error"]["code"] == "TASK_NOT_FOUND"
    assert unknown in answer["error"]["message"]

    code, answer = status_of(invoke, "nope")
    assert code == 400
    assert answer["error"]["code"] == "INVALID_TASK_ID"


def test_pending_status_has_every_documented_field(invoke):
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    code, answer = status_of(invoke, task_id)
    assert code == 200
    assert answer == {
        "task_id": task_id,
        "state": "PENDING",
        "progress": 0,
        "queue_position": None,
        "eta_seconds": None,
        "video_url": None,
        "error": None,
        "created_at": answer["created_at"],
        "started_at": None,
        "finished_at": None,
    }
    assert answer["created_at"].endswith("Z")


def test_video_of_an_unfinished_task_is_409(invoke):
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    event = sample_event("http-get-video.json")
    event["pathParameters"] = {"task_id": task_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/video/{task_id}"
    response = invoke("StatusFunction", event)
    assert response["statusCode"] == 409
    assert body(response)["error"]["code"] == "VIDEO_NOT_READY"


def test_video_redirect_plays_inline_or_downloads_on_request(invoke, aws, template):
    # Given a finished task (its record set to SUCCESS as the processor leaves it)
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    table = aws.resource("dynamodb").Table(template.functions["ApiFunction"].environment["TASKS_TABLE"])
    table.update_item(
        Key={"task_id": task_id},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": "SUCCESS"},
    )
    event = sample_event("http-get-video.json")
    event["pathParameters"] = {"task_id": task_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/video/{task_id}"

    # When the video is asked for plainly, Then the presigned GET plays it inline
    inline = invoke("StatusFunction", event)
    assert inline["statusCode"] == 302
    assert "inline" in inline["headers"]["Location"]
    assert (
        f"videos%2F{task_id}.mp4" in inline["headers"]["Location"]
        or f"videos/{task_id}.mp4" in inline["headers"]["Location"]
    )

    # When asked with ?download=1, Then the presigned GET makes the browser save it
    event["rawQueryString"] = "download=1"
    event["queryStringParameters"] = {"download": "1"}
    download = invoke("StatusFunction", event)
    assert "attachment" in download["headers"]["Location"]


def set_task_fields(aws, template, task_id: str, **fields: object) -> None:
    """Ages a task record the way time would (test data only: the code under test is untouched)."""
    table = aws.resource("dynamodb").Table(template.functions["ApiFunction"].environment["TASKS_TABLE"])
    names = {f"#{name}": name for name in fields}
    table.update_item(
        Key={"task_id": task_id},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{name}": value for name, value in fields.items()},
    )


def test_an_expired_task_is_gone_with_410_even_before_dynamodb_deletes_it(invoke, aws, template):
    # Given a task past its retention (DynamoDB's TTL deletes it lazily, possibly days later)
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    set_task_fields(aws, template, task_id, expires_at=1)

    # Then its status says it is gone, with an error object
    code, answer = status_of(invoke, task_id)
    assert code == 410
    assert answer["error"]["code"] == "TASK_EXPIRED"


def test_a_task_whose_upload_never_came_is_not_pending_forever(invoke, aws, template):
    # Given a task created a day ago whose presigned upload was never used
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    set_task_fields(aws, template, task_id, created_at="2026-01-01T00:00:00.000Z")

    # Then it reports FAILURE with a code saying why, instead of PENDING
    code, answer = status_of(invoke, task_id)
    assert code == 200
    assert answer["state"] == "FAILURE"
    assert answer["error"]["code"] == "UPLOAD_EXPIRED"
    assert answer["finished_at"] > answer["created_at"]


def test_one_client_cannot_queue_more_than_its_allowance(invoke, monkeypatch, template):
    # Given a cap of 2 unfinished tasks per client
    monkeypatch.setitem(template.functions["ApiFunction"].environment, "MAX_WAITING_TASKS_PER_CLIENT", "2")
    create = sample_event("http-create-upload.json")
    assert [invoke("ApiFunction", create)["statusCode"] for _ in range(2)] == [201, 201]

    # When the same client asks for a third, Then it is told to come back later
    refused = invoke("ApiFunction", create)
    assert refused["statusCode"] == 429
    assert body(refused)["error"]["code"] == "TOO_MANY_TASKS"
    assert int(refused["headers"]["Retry-After"]) >= 1

    # And another client is not affected
    other = {**create, "requestContext": {**create["requestContext"], "http": {**create["requestContext"]["http"]}}}
    other["requestContext"]["http"]["sourceIp"] = "203.0.113.7"
    assert invoke("ApiFunction", other)["statusCode"] == 201


def test_openapi_document_lists_every_route_of_the_template(invoke, template):
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
    event.pop("pathParameters")
    response = invoke("ApiFunction", event)
    assert response["statusCode"] == 200
    document = json.loads(response["body"])
    documented = {
        (method.upper(), path.replace("<", "{").replace(">", "}"))
        for path, operations in document["paths"].items()
        for method in operations
    }
    declared = {route for spec in template.functions.values() for route in spec.http_routes}
    assert documented == declared - {("GET", "/"), ("GET", "/openapi.json"), ("ANY", "$default")}
    assert "requestBody" in document["paths"]["/upload"]["post"]
    assert "ErrorBody" in document["components"]["schemas"]
    # and every body a route names is in the document (routes name them; their models join it lazily)
    referenced = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', response["body"]))
    assert {"ErrorBody", "StatusBody", "UploadTicketBody", "ErrorDetail"} <= referenced
    assert referenced <= set(document["components"]["schemas"])
