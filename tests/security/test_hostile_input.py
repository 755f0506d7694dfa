"""Hostile requests over real HTTP against the local stack: each gets a 4xx and an error object.

Two kinds of 4xx body exist, as on AWS:
- our error object `{"error": {"code", "message"}}`: everything that reaches a function, which since the
  template's $default route is every request with a well-formed request line and headers;
- API Gateway's own `{"message": "..."}`: what the gateway refuses before any route (headers over its
  10240-byte quota, a body over 10 MB, an unreadable Content-Length or request line).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.security.rawhttp import RawResponse, send, send_bytes

pytestmark = pytest.mark.integration

UNKNOWN_TASK = str(uuid.uuid4())


def assert_error_object(response: requests.Response | RawResponse, status: int, code: str | None = None) -> Any:
    """`status` with our error object (and `code`, when given); returns the error."""
    actual = response.status_code if isinstance(response, requests.Response) else response.status
    assert actual == status
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"].isupper()
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def assert_gateway_refusal(response: RawResponse, status: int) -> None:
    """API Gateway's own refusal: the status and `{"message": ...}` as JSON."""
    assert response.status == status
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"message"}


def test_malformed_json_bodies_are_refused_as_bad_requests(stack):
    # Given bodies that are not the JSON object POST /uploads takes
    cases = {
        b"{not json": "MALFORMED_JSON",
        b"\xff\xfe{": "MALFORMED_JSON",
        b"[" * 100_000 + b"]" * 100_000: "MALFORMED_JSON",  # deeper than the parser recurses
        b"1" * 5000: "MALFORMED_JSON",  # over Python's integer-digit limit
        b"[]": "BAD_REQUEST",
        b'"image/png"': "BAD_REQUEST",
        b'{"size": "big"}': "BAD_REQUEST",
        b'{"size": 1.5}': "BAD_REQUEST",
        b'{"size": NaN}': "BAD_REQUEST",
        b'{"content_type": "image/png", "owner": "admin"}': "BAD_REQUEST",  # unknown fields are refused
    }
    for body, code in cases.items():
        # When each is posted
        response = requests.post(
            f"{stack.api_url}/uploads", data=body, headers={"content-type": "application/json"}, timeout=10
        )

        # Then it is a 400 with its error object, and no task was made
        assert_error_object(response, 400, code)


def test_wrong_methods_on_known_paths_answer_405_with_allow(stack):
    # Given the routes' paths with a method they do not take
    cases = [
        ("DELETE", f"/status/{UNKNOWN_TASK}", "GET, HEAD"),
        ("PUT", f"/video/{UNKNOWN_TASK}", "GET, HEAD"),
        ("GET", "/uploads", "POST"),
        ("PATCH", "/upload", "POST"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),
        ("TRACE", "/uploads", "POST"),
        ("HEAD", "/uploads", "POST"),  # HEAD works wherever GET does (issue 17 point 9)
    ]
    for method, path, allowed in cases:
        # When each is sent
        response = requests.request(method, f"{stack.api_url}{path}", timeout=10)

        # Then it is a 405 naming the method that works, with our error object (none for HEAD)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed
        if method != "HEAD":
            assert_error_object(response, 405, "METHOD_NOT_ALLOWED")


def test_unknown_paths_answer_404_with_an_error_object(stack):
    # Given paths the template declares no route for
    for path in ("/nope", "/admin", "/.env", "/uploads/", f"/status/{UNKNOWN_TASK}/", "/STATUS/x", "/video"):
        # When each is requested
        response = requests.get(f"{stack.api_url}{path}", timeout=10)

        # Then the $default route answers our 404 error object, not the gateway's {"message": "Not Found"}
        assert_error_object(response, 404, "NOT_FOUND")


def test_odd_task_ids_are_refused_as_invalid(stack):
    # Given task ids no task can have
    odd_ids = [
        "%C3%A9t%C3%A9",  # unicode, percent-encoded
        "a" * 2000,  # very long
        "..",
        "%2e%2e",
        ".",
        "..%2F..%2Fupload",  # percent-encoded slashes
        "%2F",
        "%00",
        UNKNOWN_TASK + "%00",
        UNKNOWN_TASK + ".mp4.mp4",
        UNKNOWN_TASK.replace("-", ""),
        "${jndi:ldap:x}",
        "'%20OR%20'1'='1",
        "%252e%252e",
    ]
    for route in ("status", "video"):
        for task_id in odd_ids:
            # When each is asked for
            response = send(stack.api_url, "GET", f"/{route}/{task_id}")

            # Then it is a 400 INVALID_TASK_ID
            assert_error_object(response, 400, "INVALID_TASK_ID")

        # When the id is raw UTF-8 bytes (not percent-encoded) in the request line
        response = send(stack.api_url, "GET", f"/{route}/\u00e9t\u00e9\u2603")

        # Then the gateway refuses the request line (not ASCII, so not a URI: RFC 9112 section 3.2 says 400)
        assert_gateway_refusal(response, 400)


def test_a_well_formed_id_of_no_task_is_not_found(stack):
    # Given a valid task id no one created (also in capitals and as the original API's video file name)
    for task_id in (UNKNOWN_TASK, UNKNOWN_TASK.upper(), f"{UNKNOWN_TASK}.mp4"):
        # When it is asked for
        response = requests.get(f"{stack.api_url}/status/{task_id}", timeout=10)

        # Then it is a 404 TASK_NOT_FOUND
        assert_error_object(response, 404, "TASK_NOT_FOUND")


def test_path_tricks_never_reach_another_route(stack):
    # Given paths that try to climb out of a route or dress one route as another, sent verbatim
    cases = [
        ("GET", "/status/../upload"),
        ("POST", "/status/../upload"),
        ("POST", "/status/%2e%2e/upload"),
        ("POST", "/status/..%2Fupload"),
        ("POST", "/./upload/."),
        ("POST", "//upload"),
        ("GET", f"//status/{UNKNOWN_TASK}"),
        ("GET", f"/status//{UNKNOWN_TASK}"),
        ("GET", f"/status/{UNKNOWN_TASK}/"),
        ("GET", f"/status/{UNKNOWN_TASK}/../../openapi.json"),
        ("POST", "/uploads/"),
        ("POST", "/uploads;.json"),
    ]
    for method, target in cases:
        # When each is sent
        response = send(stack.api_url, method, target, {"content-type": "application/json"}, b"{}")

        # Then it is a 404 or 405 error object: no task is created, no status is read
        assert response.status in (404, 405), (method, target, response.status)
        assert_error_object(response, response.status)


def test_oversized_headers_are_refused_by_the_gateway_and_it_keeps_serving(stack):
    # Given API Gateway's quota of 10240 bytes for the request line and header values together
    just_under = "x" * 9000
    over = "x" * 11_000

    # When a request stays under it, Then it is served as usual
    assert send(stack.api_url, "GET", "/openapi.json", {"x-padding": just_under}).status == 200

    # When one header, or many small ones, go over it, Then the gateway answers 431 without invoking anything
    assert_gateway_refusal(send(stack.api_url, "GET", "/openapi.json", {"x-padding": over}), 431)
    many = {f"x-h{i}": "y" * 200 for i in range(60)}
    assert_gateway_refusal(send(stack.api_url, "POST", "/uploads", many, b"{}"), 431)

    # When one header line is longer than the HTTP server reads (64 KiB), or there are over 100 headers,
    # Then the refusal is still a JSON 431, not an HTML page or a dropped connection
    assert_gateway_refusal(send(stack.api_url, "GET", "/openapi.json", {"x-huge": "x" * 70_000}), 431)
    assert_gateway_refusal(send(stack.api_url, "GET", "/openapi.json", {f"x-{i}": "1" for i in range(150)}), 431)

    # And the stack still serves
    assert requests.get(f"{stack.api_url}/openapi.json", timeout=10).status_code == 200


def test_a_request_line_longer_than_the_quota_is_refused(stack):
    # Given a path of 12000 characters
    response = send(stack.api_url, "GET", "/status/" + "a" * 12_000)

    # Then the gateway refuses it with a 4xx and its JSON message
    assert response.status in (414, 431)
    assert set(response.json()) == {"message"}


def test_unreadable_content_lengths_and_request_lines_are_refused(stack):
    # Given a Content-Length that is not a number, a negative one, and a chunked body (API Gateway needs a length)
    for length in ("abc", "-5", "1e3", " 4 4"):
        raw = f"POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{{}}"
        # Then each is a 400 from the gateway, answered at once (nothing waits for a body that never comes)
        assert_gateway_refusal(send_bytes(stack.api_url, raw.encode()), 400)
    chunked = b"POST /uploads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunked += b"2\r\n{}\r\n0\r\n\r\n"
    assert_gateway_refusal(send_bytes(stack.api_url, chunked), 411)

    # Given request lines that are not HTTP, Then the refusal is a JSON 400 too
    for raw in (b"GARBAGE\r\n\r\n", b"GET /openapi.json HTTP/1.x\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n"):
        response = send_bytes(stack.api_url, raw)
        assert 400 <= response.status < 500, raw
        assert set(response.json()) == {"message"}


def test_multipart_bodies_that_are_no_image_form_are_refused(stack):
    # Given multipart bodies without a readable `image` field
    part = '--b{}\r\nContent-Type: multipart/mixed; boundary=b{}\r\nContent-Disposition: form-data; name="x"\r\n\r\n'
    nested = "".join(part.format(i, i + 1) for i in range(3000))
    cases = [
        ("multipart/form-data", b"x"),
        ("multipart/form-data; boundary=", b"x"),
        ('multipart/form-data; boundary="', b"--\r\n"),
        ("multipart/form-data; boundary=b0", nested.encode()),  # parts nested deeper than the parser recurses
        ("text/plain", b"image=..."),
        ("application/json", b'{"image": "iVBORw0KGgo="}'),
    ]
    for content_type, body in cases:
        # When each is posted to the form upload
        response = requests.post(
            f"{stack.api_url}/upload", data=body, headers={"content-type": content_type}, timeout=10
        )

        # Then it is a 400 MISSING_IMAGE
        assert_error_object(response, 400, "MISSING_IMAGE")
