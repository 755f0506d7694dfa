"""Accounts mode over real HTTP on the local stack (AccessMode=accounts through its parameter overrides): the
gateway's JWT authorizer refuses every kind of bad token as API Gateway does, two users never see each other's
tasks, and GET /tasks pages through a user's history with nothing missing or repeated."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

from tests.accounts import User, Users, submit_form, until_final

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).parents[2] / "examples" / "image.png").read_bytes()
UNAUTHORIZED = {"message": "Unauthorized"}


@pytest.fixture(scope="module")
def alice(users: Users) -> User:
    return users.new_user("alice@example.com")


@pytest.fixture(scope="module")
def bob(users: Users) -> User:
    return users.new_user("bob@example.com")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the authorizer ----------------------------------------------------------------------------
def _pool_key() -> Any:
    """The user pool's own signing key (moto signs every pool's tokens with this one key pair)."""
    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json")).key


def _claims(user: User) -> dict[str, Any]:
    return dict(jwt.decode(user.access_token, options={"verify_signature": False}))


def _signed(claims: dict[str, Any], key: Any, algorithm: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "dummy"})


def _bad_tokens(alice: User) -> dict[str, str]:
    """One token per way a token is refused; each differs from a good one (re-signed: accepted) in one thing."""
    claims, key = _claims(alice), _pool_key()
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "malformed": "not-a-token",
        "three garbage parts": "abc.def.ghi",
        "expired": _signed({**claims, "exp": int(time.time()) - 60}, key),
        "signed with another key": _signed(claims, other_key),
        "alg none": jwt.encode(claims, "", algorithm="none", headers={"kid": "dummy"}),
        "wrong issuer": _signed({**claims, "iss": claims["iss"].rsplit("/", 1)[0] + "/us-east-1_SomeOtherPool"}, key),
        "wrong client_id": _signed({**claims, "client_id": "another-app-client"}, key),
        "an id token for another audience": _signed({**claims, "aud": "another-app-client"}, key),
        "tampered claims": alice.access_token.rsplit(".", 2)[0] + ".e30." + alice.access_token.rsplit(".", 1)[1],
    }


def test_a_good_token_passes_and_the_function_sees_its_user(accounts, alice):
    # Given Alice's access token from sign-in, and the same claims re-signed with the pool's key
    resigned = _signed(_claims(alice), _pool_key())

    # When either is sent to GET /tasks
    for token in (alice.access_token, resigned):
        response = requests.get(f"{accounts.api_url}/tasks", headers=bearer(token), timeout=10)

        # Then the request reaches the function, which lists Alice's (empty or not) history
        assert response.status_code == 200
        assert set(response.json()) == {"tasks", "next_cursor"}


def test_every_task_route_refuses_a_request_without_a_token_as_api_gateway_does(accounts):
    task = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
    routes = [
        ("POST", "/uploads"),
        ("POST", "/upload"),
        ("GET", f"/status/{task}"),
        ("HEAD", f"/status/{task}"),
        ("GET", f"/video/{task}"),
        ("GET", f"/video/{task}.mp4"),
        ("POST", f"/tasks/{task}/cancel"),
        ("DELETE", f"/tasks/{task}"),
        ("GET", "/tasks"),
    ]
    for method, path in routes:
        # When it is called without Authorization
        response = requests.request(method, f"{accounts.api_url}{path}", timeout=10)

        # Then API Gateway's own 401 answers, before any function
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        if method != "HEAD":
            assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    "kind",
    [
        "malformed",
        "three garbage parts",
        "expired",
        "signed with another key",
        "alg none",
        "wrong issuer",
        "wrong client_id",
        "an id token for another audience",
        "tampered claims",
    ],
)
def test_a_bad_token_is_refused_with_api_gateways_401(accounts, alice, kind):
    # Given a token that is bad in one way
    token = _bad_tokens(alice)[kind]

    # When it is sent to a task route
    response = requests.get(f"{accounts.api_url}/tasks", headers=bearer(token), timeout=10)

    # Then API Gateway's 401 answers: its own body, and a www-authenticate naming the invalid token
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"].startswith('Bearer scope="" error="invalid_token"')


def test_the_public_routes_need_no_token(accounts):
    # Given no token at all
    # Then the page, its OpenAPI document and GET /config answer, and an unknown path is the API's 404
    assert requests.get(f"{accounts.api_url}/", timeout=10).status_code == 200
    document = requests.get(f"{accounts.api_url}/openapi.json", timeout=10).json()
    assert {"/tasks", "/config"} <= set(document["paths"])
    config = requests.get(f"{accounts.api_url}/config", timeout=10).json()
    assert config["access_mode"] == "accounts"
    assert config["cognito"]["endpoint"] == accounts.aws_endpoint  # locally: the emulator's Cognito API
    assert requests.get(f"{accounts.api_url}/no/such/route", timeout=10).status_code == 404


# ---- two users -----------------------------------------------------------------------------------
def test_two_users_never_see_each_others_tasks(accounts, alice, bob):
    # Given a video made for Alice, and a task of Bob's
    alices = submit_form(accounts.api_url, alice, EXAMPLE)
    bobs = submit_form(accounts.api_url, bob, EXAMPLE)
    assert until_final(accounts.api_url, alice, alices)["state"] == "SUCCESS"

    # Then each one's history holds their own task and not the other's
    def history(user: User) -> list[str]:
        response = requests.get(f"{accounts.api_url}/tasks?limit=100", headers=user.authorization, timeout=10)
        return [task["task_id"] for task in response.json()["tasks"]]

    assert alices in history(alice)
    assert bobs not in history(alice)
    assert bobs in history(bob)
    assert alices not in history(bob)

    # And every task route answers Bob about Alice's task exactly as about a task that does not exist
    unknown = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
    for method, path in [
        ("GET", "/status/{}"),
        ("GET", "/video/{}"),
        ("GET", "/video/{}.mp4"),
        ("POST", "/tasks/{}/cancel"),
        ("DELETE", "/tasks/{}"),
    ]:
        theirs = requests.request(method, accounts.api_url + path.format(alices), headers=bob.authorization, timeout=10)
        nobodys = requests.request(
            method, accounts.api_url + path.format(unknown), headers=bob.authorization, timeout=10
        )
        assert theirs.status_code == nobodys.status_code == 404, path
        assert theirs.json()["error"]["code"] == "TASK_NOT_FOUND"
        assert theirs.text.replace(alices, unknown) == nobodys.text

    # And Alice's video is still hers, untouched by Bob's cancel and delete
    video = requests.get(f"{accounts.api_url}/video/{alices}", headers=alice.authorization, allow_redirects=False)
    assert video.status_code == 302


def test_get_tasks_pages_through_a_history_with_nothing_missing_or_repeated(accounts, users):
    # Given a user with 25 tasks
    carol = users.new_user("carol@example.com")
    created = []
    for _ in range(25):
        response = requests.post(f"{accounts.api_url}/uploads", json={}, headers=carol.authorization, timeout=10)
        assert response.status_code == 201
        created.append(response.json()["task_id"])

    # When she reads her history 10 at a time, following next_cursor
    seen: list[dict[str, Any]] = []
    pages = []
    params: dict[str, str] = {"limit": "10"}
    while True:
        page = requests.get(f"{accounts.api_url}/tasks", params=params, headers=carol.authorization, timeout=10).json()
        pages.append(len(page["tasks"]))
        seen += page["tasks"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    # Then three pages hold all 25, none missing, none twice, newest first (by creation time: two tasks of the
    # same millisecond may come either way); each entry is the status object of GET /status
    assert pages == [10, 10, 5]
    assert sorted(task["task_id"] for task in seen) == sorted(created)
    assert [task["created_at"] for task in seen] == sorted((task["created_at"] for task in seen), reverse=True)
    first = requests.get(f"{accounts.api_url}/tasks?limit=1", headers=carol.authorization, timeout=10).json()
    (newest,) = first["tasks"]
    status = requests.get(f"{accounts.api_url}/status/{newest['task_id']}", headers=carol.authorization, timeout=10)
    assert newest == status.json()
    # And the default page is 20
    assert len(requests.get(f"{accounts.api_url}/tasks", headers=carol.authorization, timeout=10).json()["tasks"]) == 20
