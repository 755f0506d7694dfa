"""ApiFunction and StatusFunction, invoked with the sample API Gateway events from events/."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from leyline.models import iso
from tests.handlers.support import body, status_of, with_body
from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()


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


def test_form_upload_stores_the_bytes_under_the_task_key(invoke, aws, template):
    # Given the sample multipart POST /upload (field `image`, file name image.png)
    response = invoke("ApiFunction", sample_event("http-form-upload.json"))

    # Then it answers like the original system, and the bytes sit at uploads/<task_id>, whatever the file name was
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
def test_form_upload_refuses_bad_forms(invoke, field, content, status, code):
    event = with_body(sample_event("http-form-upload.json"), *multipart(field, content))
    response = invoke("ApiFunction", event)
    assert response["statusCode"] == status
    assert body(response)["error"]["code"] == code


def test_form_upload_needs_a_multipart_body(invoke):
    event = with_body(sample_event("http-form-upload.json"), b"just text", "text/plain")
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
        "expires_at": answer["expires_at"],
        "slot": None,
    }
    assert answer["created_at"].endswith("Z")
    assert answer["expires_at"] > answer["created_at"]


def video_event(name: str, method: str = "GET") -> dict[str, Any]:
    """GET /video/<name> as API Gateway sends it, `name` taken as written (a task id or a whole URL)."""
    event = sample_event("http-get-video.json")
    path, _, query = name.partition("?")
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/video/{path}"
    event["rawQueryString"] = query
    event["requestContext"]["http"]["method"] = method
    greedy = "/" in path
    event["routeKey"] = event["requestContext"]["routeKey"] = (
        f"{method} /video/{{video_url+}}" if greedy else f"{method} /video/{{task_id}}"
    )
    event["pathParameters"] = {"video_url": path} if greedy else {"task_id": path}
    return event


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
    # Left out: the page, the document itself, $default, HEAD (GET without a body) and the original clients'
    # GET /video/<their whole video_url> (the same answer as GET /video/{task_id}).
    undocumented = {("GET", "/"), ("GET", "/openapi.json"), ("ANY", "$default"), ("GET", "/video/{video_url+}")}
    # In open mode, GET /tasks too: tasks belong to no one, there is no history to list (test_accounts.py checks
    # the accounts-mode document lists it)
    assert template.parameters["AccessMode"] == "open"
    undocumented.add(("GET", "/tasks"))
    assert documented == {(method, path) for method, path in declared if method != "HEAD"} - undocumented
    assert "requestBody" in document["paths"]["/upload"]["post"]
    assert "ErrorBody" in document["components"]["schemas"]
    # and every body a route names is in the document (routes name them; their models join it lazily)
    referenced = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', response["body"]))
    assert {"ErrorBody", "StatusBody", "UploadTicketBody", "ErrorDetail"} <= referenced
    assert referenced <= set(document["components"]["schemas"])


def mark(aws, template, task_id: str, state: str, **fields: object) -> None:
    set_task_fields(aws, template, task_id, state=state, **fields)


def finished_task(invoke, aws, template, state: str = "SUCCESS", **fields: object) -> str:
    """A task whose record is left as the processor leaves it (test data only)."""
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    mark(aws, template, task_id, state, **fields)
    return task_id


def test_the_video_of_a_failed_task_says_it_never_will_be_ready(invoke, aws, template):
    # Given a task that ended in FAILURE, and one whose upload link expired unused a day ago
    failed = finished_task(invoke, aws, template, "FAILURE", error_code="CORRUPT_IMAGE", error_message="Corrupt.")
    abandoned = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    set_task_fields(aws, template, abandoned, created_at="2026-01-01T00:00:00.000Z")

    for task_id in (failed, abandoned):
        # When their video is asked for
        response = invoke("StatusFunction", video_event(task_id))

        # Then the answer is its own 409 TASK_FAILED, not "not ready" (which invites waiting forever)
        assert response["statusCode"] == 409
        assert body(response)["error"]["code"] == "TASK_FAILED"
    assert "Corrupt." in body(invoke("StatusFunction", video_event(failed)))["error"]["message"]


def test_original_clients_get_video_of_the_whole_video_url_redirects_like_the_task_id(invoke, aws, template):
    # Given a finished task and the video_url its status gives (a presigned URL; the original gave a file name)
    task_id = finished_task(invoke, aws, template)
    video_url = status_of(invoke, task_id)[1]["video_url"]
    assert video_url.startswith("http")

    # When a client written for the original API asks for GET /video/<video_url>, the URL written into the path as is
    by_url = invoke("StatusFunction", video_event(video_url))

    # Then it gets the same 302 to the video as GET /video/<task_id>
    by_id = invoke("StatusFunction", video_event(task_id))
    assert by_url["statusCode"] == by_id["statusCode"] == 302
    assert f"videos/{task_id}.mp4" in by_url["headers"]["Location"].replace("%2F", "/")
    assert by_url["headers"]["Location"].split("?")[0] == by_id["headers"]["Location"].split("?")[0]

    # And percent-encoded as one segment, it is found the same way; a URL of another file is not a task
    encoded = invoke("StatusFunction", video_event(quote(video_url, safe="")))
    assert encoded["statusCode"] == 302
    other = invoke("StatusFunction", video_event("http://127.0.0.1:1/bucket/videos/cat.mp4"))
    assert (other["statusCode"], body(other)["error"]["code"]) == (400, "INVALID_TASK_ID")


def test_head_answers_what_get_would_without_the_body(invoke, aws, template):
    # Given a finished task
    task_id = finished_task(invoke, aws, template)
    status_head = sample_event("http-get-status.json")
    status_head["rawPath"] = status_head["requestContext"]["http"]["path"] = f"/status/{task_id}"
    status_head["pathParameters"] = {"task_id": task_id}
    status_head["requestContext"]["http"]["method"] = "HEAD"
    page = sample_event("http-get-status.json")
    page["rawPath"] = page["requestContext"]["http"]["path"] = "/"
    page["requestContext"]["http"]["method"] = "HEAD"
    page.pop("pathParameters")
    cases = [
        ("StatusFunction", status_head, 200),
        ("StatusFunction", video_event(task_id, "HEAD"), 302),
        ("StatusFunction", video_event("3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", "HEAD"), 404),
        ("ApiFunction", page, 200),
    ]
    for function, event, status in cases:
        # When HEAD is sent on a GET route
        head = invoke(function, event)
        get = invoke(
            function,
            {
                **event,
                "requestContext": {
                    **event["requestContext"],
                    "http": {**event["requestContext"]["http"], "method": "GET"},
                },
            },
        )

        # Then it has GET's status and headers, and no body
        assert head["statusCode"] == get["statusCode"] == status
        assert head["body"] == ""
        assert head["headers"].keys() == get["headers"].keys()
        assert head["headers"]["Content-Type"] == get["headers"]["Content-Type"]


def test_the_page_allows_only_its_own_inline_code_the_api_and_the_bucket(invoke, aws, template):
    # Given the web page as the API serves it
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/"
    event.pop("pathParameters")
    page = invoke("ApiFunction", event)
    headers = page["headers"]

    # Then it may not be framed
    assert headers["X-Frame-Options"] == "DENY"
    directives = [directive.split() for directive in headers["Content-Security-Policy"].split(";")]
    policy = {name: sources for name, *sources in directives}
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'none'"]

    # And only the page's own inline script and style run, by hash (no 'unsafe-inline')
    html = page["body"]
    for tag in ("script", "style"):
        inline = re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html, flags=re.DOTALL)
        digests = {
            "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'" for text in inline
        }
        assert inline
        assert set(policy[f"{tag}-src"]) == digests

    # And it may reach the API and the bucket's host, where its presigned upload and video URLs point
    ticket = body(invoke("ApiFunction", sample_event("http-create-upload.json")))
    upload_origin = "{0.scheme}://{0.netloc}".format(urlsplit(ticket["upload"]["url"]))
    task_id = finished_task(invoke, aws, template)
    video_origin = "{0.scheme}://{0.netloc}".format(urlsplit(status_of(invoke, task_id)[1]["video_url"]))
    assert {"'self'", upload_origin, video_origin} <= set(policy["connect-src"])
    assert {"'self'", video_origin} <= set(policy["media-src"])


def refused_retry_after(invoke) -> int:
    refused = invoke("ApiFunction", sample_event("http-create-upload.json"))
    assert refused["statusCode"] == 429
    return int(refused["headers"]["Retry-After"])


def test_retry_after_says_when_a_place_of_the_client_frees(invoke, aws, monkeypatch, template):
    # Given a cap of 2 and a client holding 2 unused upload tickets, the older one made 19 minutes ago
    monkeypatch.setitem(template.functions["ApiFunction"].environment, "MAX_WAITING_TASKS_PER_CLIENT", "2")
    older, _ = (body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"] for _ in range(2))
    nineteen_minutes_ago = datetime.now(UTC) - timedelta(minutes=19)
    set_task_fields(aws, template, older, created_at=iso(nineteen_minutes_ago))

    # When it asks for a third, Then Retry-After is when the older ticket's upload window closes (20 minutes
    # after it was made: 15 min link + 5 min grace), not one model run
    assert 50 <= refused_retry_after(invoke) <= 61

    # When that ticket's upload lands instead (its task is first in line), Then a place frees when that task
    # is done, at its ETA: one model run (ModelSeconds is 1 here)
    mark(aws, template, older, "QUEUED")
    set_task_fields(aws, template, older, queued_seq=1)
    assert refused_retry_after(invoke) == 1

    # And for another client with only fresh tickets, it is the whole window
    other = sample_event("http-create-upload.json")
    other["requestContext"]["http"]["sourceIp"] = "203.0.113.7"
    assert [invoke("ApiFunction", other)["statusCode"] for _ in range(2)] == [201, 201]
    assert 1190 <= int(invoke("ApiFunction", other)["headers"]["Retry-After"]) <= 1200


def multipart_event(raw: bytes, boundary: str = "b0undary") -> dict[str, Any]:
    return with_body(sample_event("http-form-upload.json"), raw, f"multipart/form-data; boundary={boundary}")


IMAGE_PART = (
    b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n" + EXAMPLE + b"\r\n"
)
HOSTILE_FORMS = {
    # the issue's 2.7 MB: 300,000 empty parts (they kept ApiFunction busy past its 10 s timeout)
    "300,000 empty parts": (b"--b0undary\r\n\r\n\r\n" * 300_000 + b"--b0undary--\r\n", 400, "TOO_MANY_PARTS"),
    "300,000 empty parts nested in one part": (
        b'--b0undary\r\nContent-Disposition: form-data; name="x"\r\n'
        b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
        + b"--inner\r\n\r\n\r\n" * 300_000
        + b"--inner--\r\n\r\n--b0undary--\r\n",
        400,
        "MISSING_IMAGE",
    ),
    "parts nested 100,000 deep": (
        b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(100_000)),
        400,
        "MISSING_IMAGE",
    ),
    "a 4 MB preamble": (b"x\r\n" * 1_400_000 + b"--b0undary--\r\n", 400, "MISSING_IMAGE"),
    "20,000 headers in the image's part": (
        b'--b0undary\r\nContent-Disposition: form-data; name="image"\r\n'
        + b"X-Filler: 0123456789\r\n" * 20_000
        + b"\r\n"
        + EXAMPLE
        + b"\r\n--b0undary--\r\n",
        400,
        "MISSING_IMAGE",
    ),
    "one header line of 4 MB": (
        b"--b0undary\r\nX-Long: " + b"a" * 4_000_000 + b"\r\n\r\n\r\n--b0undary--\r\n",
        400,
        "MISSING_IMAGE",
    ),
}


@pytest.mark.parametrize("shape", HOSTILE_FORMS)
def test_a_form_of_any_shape_is_answered_4xx_within_moments(invoke, aws, template, shape):
    # Given a multipart body shaped to make a parser work hard
    raw, status, code = HOSTILE_FORMS[shape]
    event = multipart_event(raw, "b0" if shape.startswith("parts nested") else "b0undary")

    # When POST /upload receives it
    started = time.monotonic()
    response = invoke("ApiFunction", event)

    # Then it is refused with an error object at once (a generous functional bound), and no task exists
    assert time.monotonic() - started < 2
    assert (response["statusCode"], body(response)["error"]["code"]) == (status, code)
    table = template.functions["ApiFunction"].environment["TASKS_TABLE"]
    assert aws.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_a_form_with_a_few_extra_fields_and_a_preamble_still_uploads(invoke):
    # Given a form with a preamble, two other fields around the image, transport padding and an epilogue
    other = b'--b0undary  \r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
    raw = b"preamble\r\n" + other + IMAGE_PART + other + b"--b0undary--\r\nepilogue"

    # Then the image field's bytes are taken, exactly
    response = invoke("ApiFunction", multipart_event(raw))
    assert response["statusCode"] == 202


def test_sixteen_parts_are_fine_and_seventeen_are_too_many(invoke):
    filler = b'--b0undary\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    assert invoke("ApiFunction", multipart_event(IMAGE_PART + filler * 15 + b"--b0undary--\r\n"))["statusCode"] == 202
    too_many = invoke("ApiFunction", multipart_event(IMAGE_PART + filler * 16 + b"--b0undary--\r\n"))
    assert (too_many["statusCode"], body(too_many)["error"]["code"]) == (400, "TOO_MANY_PARTS")
