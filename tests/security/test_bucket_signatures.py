"""On the embedded moto default, the bucket answers only signed requests and forms whose policy they meet
(infra/moto_guard.py): the holes a hostile user found, closed. Over real HTTP against the local stack."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from botocore.config import Config

from tests.imagefactory import png
from tests.integration.polling import poll_until_final, status
from tests.reliability.support import create_ticket

pytestmark = pytest.mark.integration


def bucket_url(stack: Any) -> str:
    """The bucket's URL as a user sees it: the host of the presigned URLs the API hands out."""
    ticket = create_ticket(stack.api_url)
    parts = urlsplit(ticket["upload"]["url"])
    return f"{parts.scheme}://{parts.netloc}/{stack.physical_name('MediaBucket')}"


def finished_task(stack: Any) -> dict[str, Any]:
    accepted = requests.post(f"{stack.api_url}/upload", files={"image": ("a.png", png())}, timeout=10)
    final = poll_until_final(stack.api_url, accepted.json()["task_id"], timeout=60)[-1]
    assert final["state"] == "SUCCESS"
    return final


def test_an_unsigned_form_post_cannot_overwrite_another_tasks_video(stack):
    # Given another user's finished task and its video
    victim = finished_task(stack)
    video = requests.get(victim["video_url"], timeout=10).content

    # When a hostile user posts a form without any policy or signature to the bucket, naming that video
    hostile = requests.post(
        bucket_url(stack),
        data={"key": f"videos/{victim['task_id']}.mp4", "Content-Type": "video/mp4"},
        files={"file": ("evil.mp4", b"not your video")},
        timeout=10,
    )

    # Then storage refuses it, and the video is the one the model made
    assert hostile.status_code == 403
    assert "AccessDenied" in hostile.text
    assert requests.get(victim["video_url"], timeout=10).content == video


def test_a_form_signed_for_one_task_cannot_take_over_another_tasks_pending_upload(stack):
    # Given another user's task waiting for its upload, and the hostile user's own upload form
    victim = create_ticket(stack.api_url)
    own = create_ticket(stack.api_url)

    # When the hostile user sends their form with the victim's key
    fields = {**own["upload"]["fields"], "key": victim["upload"]["fields"]["key"]}
    hostile = requests.post(own["upload"]["url"], data=fields, files={"file": ("a.png", png())}, timeout=10)

    # Then storage refuses it (the policy pins the key), nothing is stored at the victim's key
    assert hostile.status_code == 403
    assert "Policy Condition failed" in hostile.text
    s3 = stack.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.physical_name("MediaBucket"), Prefix=victim["upload"]["fields"]["key"])
    assert listed.get("KeyCount", 0) == 0

    # And the victim can still upload, and gets their video
    stored = requests.post(
        victim["upload"]["url"], data=victim["upload"]["fields"], files={"file": ("a.png", png())}, timeout=10
    )
    assert stored.status_code == 204
    assert poll_until_final(stack.api_url, victim["task_id"], timeout=60)[-1]["state"] == "SUCCESS"


@pytest.mark.parametrize(
    ("why", "fields", "size"),
    [
        pytest.param("over max_bytes", {}, "max+1", id="too-big"),
        pytest.param("another content type", {"Content-Type": "text/html"}, "small", id="other-type"),
        pytest.param("a field the policy does not name", {"x-amz-meta-owner": "me"}, "small", id="extra-field"),
        pytest.param("a tampered policy", {"policy": "e30="}, "small", id="tampered-policy"),
    ],
)
def test_a_form_outside_its_policy_is_refused_and_the_task_waits(stack, why, fields, size):
    # Given a task waiting for its upload
    ticket = create_ticket(stack.api_url, "image/png")
    data = b"\0" * (ticket["max_bytes"] + 1) if size == "max+1" else png()

    # When its form is sent with {why}
    form = {**ticket["upload"]["fields"], **fields}
    response = requests.post(ticket["upload"]["url"], data=form, files={"file": ("a.png", data)}, timeout=30)

    # Then storage refuses it with S3's answer, and the task is still waiting for a valid upload
    assert response.status_code in (400, 403), response.text
    assert status(stack.api_url, ticket["task_id"])["state"] == "PENDING"


def test_an_unsigned_listing_of_the_bucket_is_refused(stack):
    # Given tasks in the bucket
    task_id = finished_task(stack)["task_id"]

    # When a hostile user lists the bucket without signing, both list APIs
    for query in ("", "?list-type=2", "?prefix=videos/"):
        listing = requests.get(f"{bucket_url(stack)}{query}", timeout=10)

        # Then storage refuses, and names no task
        assert listing.status_code == 403, query
        assert task_id not in listing.text


def test_a_forged_or_foreign_signature_is_refused(stack):
    # Given a header that looks signed: the local access key with a made-up signature, and an unknown key
    forged = "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
    foreign = forged.replace("Credential=testing", "Credential=AKIAEXAMPLE")

    # When either lists the bucket, Then storage refuses it
    answers = {
        "forged": requests.get(bucket_url(stack), headers={"Authorization": forged}, timeout=10),
        "foreign": requests.get(bucket_url(stack), headers={"Authorization": foreign}, timeout=10),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {"forged": 403, "foreign": 403}
    assert "SignatureDoesNotMatch" in answers["forged"].text
    assert "InvalidAccessKeyId" in answers["foreign"].text


def test_an_expired_presigned_download_is_refused(stack):
    # Given a video and a presigned GET of it valid for 1 second
    task_id = finished_task(stack)["task_id"]
    s3 = stack.client("s3", config=Config(signature_version="s3v4"))  # as the product signs (SigV2 is refused)
    params = {"Bucket": stack.physical_name("MediaBucket"), "Key": f"videos/{task_id}.mp4"}
    short = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=1)

    # When it is used after it expired
    time.sleep(2.0)
    expired = requests.get(short, timeout=10)

    # Then storage refuses it, while a fresh one works
    assert expired.status_code == 403
    assert "Request has expired" in expired.text
    fresh = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    assert requests.get(fresh, timeout=10).status_code == 200
