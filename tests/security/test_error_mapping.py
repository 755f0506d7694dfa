"""handlers/http.py turns hostile input into 4xx error objects, never a 500 (no AWS needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from leyline.errors import BadRequest
from leyline.handlers.http import build_resolver, json_object, multipart_file
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

    return resolver


def answer(app: Any, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = app.resolve(http_event(method, path), FakeLambdaContext(function_name="f", timeout_seconds=3))
    return response["statusCode"], response.get("headers") or {}, json.loads(response["body"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/things/1", "GET"),
        ("HEAD", "/things/1", "GET"),
        ("GET", "/things", "POST"),
        ("TRACE", "/things", "POST"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(app, method, path, allow):
    # When a path the resolver knows comes with a method it does not take
    status, headers, body = answer(app, method, path)

    # Then it is a 405 METHOD_NOT_ALLOWED naming the methods that work
    assert status == 405
    assert headers["Allow"] == allow
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("path", ["/nothing", "/things/1/", "/things/", "//things", "/things/a/b"])
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
