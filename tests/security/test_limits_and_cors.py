"""The per-client cap on unfinished tasks and CORS, over real HTTP against local stacks."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.imagefactory import png
from tests.integration.polling import poll_until_final

pytestmark = pytest.mark.integration

EVIL_ORIGIN = "https://evil.example"


def post_from(api_url: str, source_ip: str, path: str, body: bytes, content_type: str) -> int:
    """POST from another loopback address: the stack sees another client (another source IP)."""
    parts = urlsplit(api_url)
    assert parts.hostname
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10, source_address=(source_ip, 0))
    try:
        connection.request("POST", path, body=body, headers={"content-type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def assert_too_many(response: requests.Response, limit: int) -> None:
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TOO_MANY_TASKS"
    assert str(limit) in response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) >= 1


def test_one_client_gets_429_with_retry_after_past_its_unfinished_task_cap(make_stack):
    # Given a stack where one client may have 2 unfinished tasks
    stack = make_stack(parameter_overrides={"MaxWaitingTasksPerClient": "2"})
    api = stack.api_url

    # When the client makes two tasks (presigned, not uploaded yet: PENDING counts)
    for _ in range(2):
        assert requests.post(f"{api}/uploads", json={}, timeout=10).status_code == 201

    # Then a third task is refused on both upload routes, whatever X-Forwarded-For claims
    assert_too_many(requests.post(f"{api}/uploads", json={}, timeout=10), 2)
    assert_too_many(requests.post(f"{api}/upload", files={"image": ("a.png", png())}, timeout=10), 2)
    spoofed = requests.post(f"{api}/uploads", json={}, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert_too_many(spoofed, 2)

    # And another client (another source address) is not affected
    assert post_from(api, "127.0.0.2", "/uploads", b"{}", "application/json") == 201


def test_a_client_may_create_again_once_its_tasks_are_done(make_stack):
    # Given a stack where one client may have 1 unfinished task, and a task of that client in the model
    stack = make_stack(parameter_overrides={"MaxWaitingTasksPerClient": "1"})
    api = stack.api_url
    first = requests.post(f"{api}/upload", files={"image": ("a.png", png())}, timeout=10)
    assert first.status_code == 202

    # When the task finishes
    assert poll_until_final(api, first.json()["task_id"], timeout=60)[-1]["state"] == "SUCCESS"

    # Then the client may create another
    assert requests.post(f"{api}/upload", files={"image": ("b.png", png())}, timeout=10).status_code == 202


def _origin(stack: Any) -> str:
    origins = stack.parameters["CorsAllowedOrigins"]
    assert isinstance(origins, list)
    return str(origins[0])


def test_the_api_answers_preflights_only_for_allowed_origins(stack):
    # Given the origin the stack's CorsAllowedOrigins allows, and one it does not
    allowed = _origin(stack)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    # When a browser preflights POST /uploads from the allowed origin
    ok = requests.options(f"{stack.api_url}/uploads", headers={"Origin": allowed, **preflight}, timeout=10)

    # Then the gateway allows that origin, its methods and the content-type header
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == allowed
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "content-type" in ok.headers["Access-Control-Allow-Headers"].lower()

    # When it preflights from another origin, Then no Access-Control-Allow-* header comes back
    refused = requests.options(f"{stack.api_url}/uploads", headers={"Origin": EVIL_ORIGIN, **preflight}, timeout=10)
    assert not [name for name in refused.headers if name.lower().startswith("access-control-allow")]

    # And an actual request from another origin gets no Access-Control-Allow-Origin either
    status = requests.get(f"{stack.api_url}/openapi.json", headers={"Origin": EVIL_ORIGIN}, timeout=10)
    assert "Access-Control-Allow-Origin" not in status.headers
    allowed_get = requests.get(f"{stack.api_url}/openapi.json", headers={"Origin": allowed}, timeout=10)
    assert allowed_get.headers["Access-Control-Allow-Origin"] == allowed


def test_the_bucket_accepts_browser_uploads_only_from_allowed_origins(stack):
    # Given the upload form's URL (the bucket)
    ticket = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10).json()
    bucket_url = ticket["upload"]["url"]
    preflight = {"Access-Control-Request-Method": "POST"}

    # When a browser preflights the upload from the allowed origin, Then the bucket allows it
    ok = requests.options(bucket_url, headers={"Origin": _origin(stack), **preflight}, timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == _origin(stack)

    # When it preflights from another origin, Then the bucket refuses the preflight
    refused = requests.options(bucket_url, headers={"Origin": EVIL_ORIGIN, **preflight}, timeout=10)
    assert refused.status_code == 403
