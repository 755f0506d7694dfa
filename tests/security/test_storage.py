"""What reaches the bucket, and how it can be read back: over real HTTP against the local stack."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.imagefactory import jpeg, png
from tests.integration.polling import poll_until_final

pytestmark = pytest.mark.integration

HOUR = 3600


def media_keys(stack: Any, *task_ids: str) -> set[str]:
    """Every key in the media bucket that names one of `task_ids`."""
    s3 = stack.client("s3")
    bucket = stack.physical_name("MediaBucket")
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return {key for key in keys if any(task_id in key for task_id in task_ids)}


def presigned_post(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    ticket = requests.post(f"{stack.api_url}/uploads", json=body, timeout=10)
    assert ticket.status_code == 201, ticket.text
    result: dict[str, Any] = ticket.json()
    return result


def store(ticket: dict[str, Any], data: bytes, filename: str, content_type: str) -> None:
    """The browser's upload: the form's fields, then the file (with the user's file name and type)."""
    fields = dict(ticket["upload"]["fields"])
    fields.setdefault("Content-Type", content_type)
    stored = requests.post(ticket["upload"]["url"], data=fields, files={"file": (filename, data)}, timeout=10)
    assert stored.status_code in (200, 201, 204), stored.text


def test_user_file_names_never_reach_storage_keys(stack):
    # Given a form upload whose file name tries to climb out of uploads/
    inline = requests.post(
        f"{stack.api_url}/upload", files={"image": ("../../etc/passwd", png(), "image/png")}, timeout=10
    )
    assert inline.status_code == 202
    inline_id = inline.json()["task_id"]

    # And a presigned upload whose file name tries the same
    ticket = presigned_post(stack, {"content_type": "image/png"})
    presigned_id = ticket["task_id"]
    assert ticket["upload"]["fields"]["key"] == f"uploads/{presigned_id}"
    store(ticket, png(), "../../videos/evil.mp4", "image/png")

    # When both are processed
    for task_id in (inline_id, presigned_id):
        assert poll_until_final(stack.api_url, task_id, timeout=60)[-1]["state"] == "SUCCESS"

    # Then the bucket holds exactly uploads/<task_id> and videos/<task_id>.mp4 for each, and nothing named by the user
    assert media_keys(stack, inline_id, presigned_id) == {
        f"uploads/{inline_id}",
        f"videos/{inline_id}.mp4",
        f"uploads/{presigned_id}",
        f"videos/{presigned_id}.mp4",
    }
    every_key = media_keys(stack, "")
    assert not [key for key in every_key if "passwd" in key or "evil" in key or ".." in key]


@pytest.mark.parametrize(
    ("declared", "data", "expected_state", "expected_error"),
    [
        pytest.param("image/png", jpeg(), "SUCCESS", None, id="jpeg-bytes-declared-png"),
        pytest.param("image/png", b"#!/bin/sh\nrm -rf /\n" * 50, "FAILURE", "UNSUPPORTED_FORMAT", id="text-as-png"),
        pytest.param("image/webp", b"<svg onload=alert(1)>" * 50, "FAILURE", "UNSUPPORTED_FORMAT", id="svg-as-webp"),
    ],
)
def test_the_pipeline_judges_an_upload_by_its_bytes_not_its_declared_type(
    stack, declared, data, expected_state, expected_error
):
    # Given a presigned upload declaring `declared`, whose bytes are something else
    ticket = presigned_post(stack, {"content_type": declared})
    store(ticket, data, "picture.png", declared)

    # When the model has had its turn
    final = poll_until_final(stack.api_url, ticket["task_id"], timeout=60)[-1]

    # Then the outcome follows the bytes: a JPEG makes a video, text or SVG fails as unsupported
    assert final["state"] == expected_state
    assert (final["error"] or {}).get("code") == expected_error


def test_the_form_upload_refuses_non_image_bytes_whatever_their_declared_type(stack):
    # Given a text file sent as image/png named photo.png
    response = requests.post(
        f"{stack.api_url}/upload", files={"image": ("photo.png", b"GIF89a not really", "image/png")}, timeout=10
    )

    # Then it is refused before a task exists: 415 UNSUPPORTED_FORMAT
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_FORMAT"


def test_download_and_upload_links_expire_within_an_hour(stack):
    # Given a finished task
    response = requests.post(f"{stack.api_url}/upload", files={"image": ("a.png", png())}, timeout=10)
    task_id = response.json()["task_id"]
    final = poll_until_final(stack.api_url, task_id, timeout=60)[-1]
    assert final["state"] == "SUCCESS"

    # Then its video_url and the /video redirect (both ways) are SigV4 presigned GETs valid for at most an hour
    redirects = [
        requests.get(f"{stack.api_url}/video/{task_id}{suffix}", allow_redirects=False, timeout=10)
        for suffix in ("", "?download=1")
    ]
    assert all(redirect.status_code == 302 for redirect in redirects)
    for url in [final["video_url"], *(redirect.headers["Location"] for redirect in redirects)]:
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert 0 < int(query["X-Amz-Expires"][0]) <= HOUR
        assert query["X-Amz-Signature"]

    # And an upload form's policy expires within an hour, and pins the key, the size and the type
    ticket = presigned_post(stack, {"content_type": "image/jpeg"})
    policy = json.loads(base64.b64decode(ticket["upload"]["fields"]["policy"]))
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= HOUR
    assert 0 < ticket["expires_in"] <= HOUR
    conditions = policy["conditions"]
    assert {"key": f"uploads/{ticket['task_id']}"} in conditions
    assert ["content-length-range", 1, ticket["max_bytes"]] in conditions
    assert {"Content-Type": "image/jpeg"} in conditions


def test_objects_are_refused_without_a_signature(stack):
    # Given a finished task: its upload and its video are in the bucket
    response = requests.post(f"{stack.api_url}/upload", files={"image": ("a.png", png())}, timeout=10)
    task_id = response.json()["task_id"]
    final = poll_until_final(stack.api_url, task_id, timeout=60)[-1]
    signed = final["video_url"]
    parts = urlsplit(signed)
    bucket_url = f"{parts.scheme}://{parts.netloc}/{stack.physical_name('MediaBucket')}"

    # When the objects' plain URLs are requested without a signature
    for key in (f"videos/{task_id}.mp4", f"uploads/{task_id}"):
        unsigned = requests.get(f"{bucket_url}/{key}", timeout=10)

        # Then storage refuses them (private objects, no public grant, no policy allowing anyone)
        assert unsigned.status_code == 403, key

    # And the presigned URL works (its expiry is not emulated locally: see the README)
    assert requests.get(signed, timeout=10).status_code == 200
