"""handlers/http/resolver.py turns hostile input into 4xx error objects, never a 500 (no AWS needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from leyline.errors import BadRequest
from leyline.handlers.http.resolver import build_resolver, json_object, multipart_file
from tests.lambda_context import FakeLambdaContext


def http_event(method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers or {},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1"},
            "requestId": "r",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


@pytest.fixture
def app() -> Any:
    """A resolver built like the product's, with a route of each shape."""
    resolver = build_resolver()

    @resolver.get("/things/<thing_id>")
    def get_thing(thing_id: str) -> Response[str]:
        return Response(200, "application/json", json.dumps({"id": thing_id}))

    @resolver.post("/things")
    def make_thing() -> Response[str]:
        return Response(201, "application/json", "{}")

    @resolver.get("/files/<rest+>")
    def get_file(rest: str) -> Response[str]:
        return Response(200, "application/json", json.dumps({"rest": rest}))

    return resolver


def answer(app: Any, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = app.resolve(http_event(method, path), FakeLambdaContext(function_name="f", timeout_seconds=3))
    return response["statusCode"], response.get("headers") or {}, json.loads(response["body"] or "{}")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/things/1", "GET, HEAD"),
        ("GET", "/things", "POST"),
        ("HEAD", "/things", "POST"),
        ("TRACE", "/things", "POST"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(app, method, path, allow):
    # When a path the resolver knows comes with a method it does not take
    status, headers, body = answer(app, method, path)

    # Then it is a 405 METHOD_NOT_ALLOWED naming the methods that work (a HEAD one has no body)
    assert status == 405
    assert headers["Allow"] == allow
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED" if method != "HEAD" else body == {}


@pytest.mark.parametrize("path", ["/things/1", "/nothing", "/files/a/b/c.txt"])
def test_head_is_get_without_the_body(app, path):
    # When HEAD comes on any path, Then it has GET's status and headers and an empty body
    get = app.resolve(http_event("GET", path), FakeLambdaContext(function_name="f", timeout_seconds=3))
    head = app.resolve(http_event("HEAD", path), FakeLambdaContext(function_name="f", timeout_seconds=3))
    assert get["body"]
    assert head["body"] == ""
    assert (head["statusCode"], head["headers"]) == (get["statusCode"], get["headers"])


@pytest.mark.parametrize(
    ("path", "rest"),
    [("/files/a", "a"), ("/files/http://h:1/b/c.mp4", "http://h:1/b/c.mp4"), ("/files/a//b/", "a//b/")],
)
def test_a_greedy_variable_takes_the_rest_of_the_path(app, path, rest):
    # Given a route /files/<rest+> (API Gateway's {rest+}), When a path under it comes, Then it gets all of it
    assert answer(app, "GET", path)[2] == {"rest": rest}


@pytest.mark.parametrize("path", ["/nothing", "/things/1/", "/things/", "//things", "/things/a/b", "/files/", "/files"])
def test_an_unknown_path_is_404_not_found(app, path):
    # When no route's path matches, Then it is a 404 NOT_FOUND error object, whatever the method
    for method in ("GET", "POST", "DELETE"):
        status, _, body = answer(app, method, path)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


def test_json_nested_deeper_than_the_parser_goes_is_malformed_json():
    # Given a JSON body nested 100000 levels deep
    event = APIGatewayProxyEventV2(http_event("POST", "/uploads", "[" * 100_000 + "]" * 100_000))

    # Then it is refused as MALFORMED_JSON (a RecursionError inside json.loads), not an unexpected error
    with pytest.raises(BadRequest) as refused:
        json_object(event)
    assert refused.value.code == "MALFORMED_JSON"


def test_unreadable_multipart_forms_are_missing_image():
    # Given a form whose parts nest deeper than the parser recurses, and one whose Content-Type is not Latin-1
    part = '--b{}\r\nContent-Type: multipart/mixed; boundary=b{}\r\nContent-Disposition: form-data; name="x"\r\n\r\n'
    nested = "".join(part.format(i, i + 1) for i in range(3000))
    cases = [
        http_event("POST", "/upload", nested, {"content-type": "multipart/form-data; boundary=b0"}),
        http_event("POST", "/upload", "--\u20ac--", {"content-type": "multipart/form-data; boundary=\u20ac"}),
    ]
    for event in cases:
        # Then each is refused as MISSING_IMAGE
        with pytest.raises(BadRequest) as refused:
            multipart_file(APIGatewayProxyEventV2(event), "image")
        assert refused.value.code == "MISSING_IMAGE"


def form(raw: str, boundary: str = "b") -> APIGatewayProxyEventV2:
    return APIGatewayProxyEventV2(
        http_event("POST", "/upload", raw, {"content-type": f"multipart/form-data; boundary={boundary}"})
    )


@pytest.mark.parametrize(
    ("raw", "image"),
    [
        ('--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nPNG\r\n--b--\r\n', b"PNG"),
        ('--b\nContent-Disposition: form-data; name="image"\n\nPNG\n--b--', b"PNG"),  # bare LF, as email read
        ('--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nA\r\n--bb\r\n--b--', None),  # not a delimiter
        ('--b\r\nContent-Disposition: form-data; name="image"\r\n\r\nPN\r\nG', b"PN\r\nG"),  # no close
        ('--b\r\n\r\nno headers\r\n--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n\r\n--b--', b""),
    ],
)
def test_form_parts_are_read_as_rfc_2046_delimits_them(raw, image):
    # When a form's image field is read, Then its bytes come out exactly, or the form is refused as unreadable
    if image is None:
        with pytest.raises(BadRequest) as refused:
            multipart_file(form(raw), "image")
        assert refused.value.code == "MISSING_IMAGE"
    else:
        assert multipart_file(form(raw), "image") == image


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=" + "x" * 71])
def test_a_form_without_a_usable_boundary_is_unreadable(content_type):
    event = APIGatewayProxyEventV2(http_event("POST", "/upload", "--x--", {"content-type": content_type}))
    with pytest.raises(BadRequest) as refused:
        multipart_file(event, "image")
    assert refused.value.code == "MISSING_IMAGE"
