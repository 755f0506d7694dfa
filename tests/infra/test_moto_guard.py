"""infra/moto_guard.py as a WSGI layer, on requests botocore signs (no server, no network): what reaches moto."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from werkzeug.test import EnvironBuilder

from infra.moto_guard import SignatureGuard

ENDPOINT = "http://127.0.0.1:4566"
KEY, SECRET = "testing", "testing"
BUCKET = "leyline-local-mediabucket"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Recorder:
    """Stands for moto's app: records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["wsgi.input"].read()))
        start_response("200 OK", [])
        return [b"moto"]


def send(guard: SignatureGuard, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> int:
    """`guard`'s status for the request (200: it reached moto)."""
    path, _, query = url.removeprefix(ENDPOINT).partition("?")
    environ = EnvironBuilder(
        path=path, query_string=query, method=method, headers=list((headers or {}).items()), base_url=ENDPOINT, **kw
    ).get_environ()
    environ["RAW_URI"] = url.removeprefix(ENDPOINT)  # as werkzeug's server records it
    statuses: list[str] = []
    b"".join(guard(environ, lambda status, _headers: statuses.append(status)))
    return int(statuses[0].split()[0])


def signed(method: str, url: str, service: str, body: bytes = b"", at: datetime = NOW) -> dict[str, str]:
    """The headers botocore signs `url` with (S3's flavour for s3), dated `at`."""
    request = AWSRequest(method=method, url=url, data=body, headers={"X-Amz-Date": at.strftime("%Y%m%dT%H%M%SZ")})
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    auth = signer(Credentials(KEY, SECRET), service, "us-east-1")
    auth._timestamp = at  # type: ignore[attr-defined]  # botocore reads the clock otherwise
    auth.add_auth(request)
    return dict(request.headers.items())


def s3_client() -> Any:
    return boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1").client(
        "s3", endpoint_url=ENDPOINT, config=Config(signature_version="s3v4")
    )


@pytest.fixture
def moto() -> Recorder:
    return Recorder()


def guard_at(moto: Recorder, now: datetime) -> SignatureGuard:
    return SignatureGuard(moto, {KEY: SECRET}, clock=lambda: now)


def test_requests_botocore_signs_reach_moto_and_altered_ones_do_not(moto):
    guard = guard_at(moto, datetime.now(UTC))
    url = f"{ENDPOINT}/{BUCKET}?list-type=2&prefix=videos%2F"
    headers = signed("GET", url, "s3", at=datetime.now(UTC))
    # Given a listing signed by botocore, Then it passes
    assert send(guard, "GET", url, headers) == 200
    # And the same signature on another prefix, another key id, or a JSON service's body changed, does not
    assert send(guard, "GET", url.replace("videos", "uploads"), headers) == 403
    assert send(guard, "GET", url, {**headers, "Authorization": headers["Authorization"].replace(KEY, "other")}) == 403
    body = b'{"TableName": "leyline-local-TasksTable"}'
    dynamodb = signed("POST", f"{ENDPOINT}/", "dynamodb", body, at=datetime.now(UTC))
    assert send(guard, "POST", f"{ENDPOINT}/", dynamodb, data=body) == 200
    assert send(guard, "POST", f"{ENDPOINT}/", dynamodb, data=body.replace(b"Tasks", b"Other")) == 403
    # And what passed reached moto whole
    assert moto.seen[-1] == ("POST", "/", body)


def test_unsigned_requests_are_refused_but_preflights_public_cognito_calls_and_motos_own_api_pass(moto):
    guard = guard_at(moto, NOW)
    assert send(guard, "GET", f"{ENDPOINT}/{BUCKET}") == 403
    assert send(guard, "PUT", f"{ENDPOINT}/{BUCKET}/videos/a.mp4", data=b"x") == 403
    assert send(guard, "OPTIONS", f"{ENDPOINT}/{BUCKET}", {"Origin": "http://localhost:8080"}) == 200
    assert send(guard, "POST", f"{ENDPOINT}/moto-api/recorder/reset-recording") == 200
    # And what AWS serves without credentials: a user pool's keys, Cognito's sign-up and sign-in
    assert send(guard, "GET", f"{ENDPOINT}/us-east-1_AbC123/.well-known/jwks.json") == 200
    cognito = {"X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth"}
    assert send(guard, "POST", f"{ENDPOINT}/", cognito, data=b"{}") == 200
    # But not an object that merely ends like those keys
    assert send(guard, "GET", f"{ENDPOINT}/{BUCKET}/x/.well-known/jwks.json") == 403
    assert len(moto.seen) == 4


def test_a_presigned_get_passes_until_it_expires(moto):
    url = s3_client().generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "videos/a.mp4"}, ExpiresIn=60
    )
    signed_at = datetime.strptime(url.split("X-Amz-Date=")[1][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert send(guard_at(moto, signed_at + timedelta(seconds=59)), "GET", url) == 200
    assert send(guard_at(moto, signed_at + timedelta(seconds=61)), "GET", url) == 403
    assert send(guard_at(moto, signed_at), "GET", url.replace("videos/a.mp4", "videos/b.mp4")) == 403


def form_post(moto: Recorder, now: datetime, post: dict[str, Any], data: bytes, **fields: str) -> int:
    form = {**post["fields"], **fields, "file": (io.BytesIO(data), "a.png")}
    return send(guard_at(moto, now), "POST", post["url"], data=form)


def test_a_form_upload_passes_only_within_its_policy(moto):
    # Given the product's policy shape: the key, 1..100 bytes, a content type starting with image/
    post = s3_client().generate_presigned_post(
        Bucket=BUCKET,
        Key="uploads/task",
        Conditions=[["content-length-range", 1, 100], ["starts-with", "$Content-Type", "image/"]],
        ExpiresIn=900,
    )
    now = datetime.now(UTC)
    # Then a form within it passes
    assert form_post(moto, now, post, b"x" * 100, **{"Content-Type": "image/png"}) == 200
    # And one past its size, with another type, another key, an extra field, or after it expired does not
    assert form_post(moto, now, post, b"x" * 101, **{"Content-Type": "image/png"}) == 400
    assert form_post(moto, now, post, b"x", **{"Content-Type": "text/html"}) == 403
    assert form_post(moto, now, post, b"x", key="uploads/other", **{"Content-Type": "image/png"}) == 403
    assert form_post(moto, now, post, b"x", **{"Content-Type": "image/png", "acl": "public-read"}) == 403
    assert form_post(moto, now + timedelta(seconds=901), post, b"x", **{"Content-Type": "image/png"}) == 403
    assert len(moto.seen) == 1
