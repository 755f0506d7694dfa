"""Accounts mode for tests over real HTTP: a local stack with AccessMode=accounts, and users signed up,
confirmed and signed in on its Cognito (the embedded moto server), as the page and the CLI do it, through
what GET /config tells a client.
The fixtures on them, `accounts` and `users`, are in tests/conftest.py."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jwt
import requests

from infra.testing import RunningStack
from leyline.states import FINAL_STATES
from tests.stack import local_stack

ACCOUNTS = {"AccessMode": "accounts"}
# Meets the user pool's password policy (template.yaml: 10+ characters, lower, upper and a digit).
PASSWORD = "Correct-horse-42"
# moto accepts any confirmation code (no email is sent locally).
ANY_CODE = "123456"
# Not a token the user pool signed: the gateway refuses it with 401, as it does an expired one.
FORGED_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def accounts_stack(log_dir: Path, **kwargs: Any) -> RunningStack:
    """tests.stack.local_stack with AccessMode=accounts (other overrides are kept)."""
    overrides = {**ACCOUNTS, **kwargs.pop("parameter_overrides", {})}
    return local_stack(log_dir, parameter_overrides=overrides, **kwargs)


def client_config(api_url: str) -> dict[str, Any]:
    """GET /config of the stack (public)."""
    with _DIRECT.open(f"{api_url}/config", timeout=10) as response:
        config: dict[str, Any] = json.load(response)
    return config


@dataclass(frozen=True)
class User:
    email: str
    password: str
    sub: str  # the user's id: the access token's `sub`, the tasks' owner
    access_token: str
    id_token: str
    refresh_token: str

    @property
    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Users:
    """Signs users up on the stack's user pool, as a client would, from GET /config."""

    def __init__(self, api_url: str) -> None:
        cognito = client_config(api_url)["cognito"]
        if cognito is None:
            raise RuntimeError("the stack runs in open mode: GET /config names no user pool")
        self.client_id: str = cognito["client_id"]
        self.user_pool_id: str = cognito["user_pool_id"]
        self.idp = boto3.client(
            "cognito-idp",
            endpoint_url=cognito["endpoint"],
            region_name=cognito["region"],
            aws_access_key_id="testing",  # the client calls need none on AWS; boto3 wants some to sign with
            aws_secret_access_key="testing",
        )

    def sign_up(self, email: str, password: str = PASSWORD, *, confirm: bool = True) -> None:
        self.idp.sign_up(ClientId=self.client_id, Username=email, Password=password)
        if confirm:
            self.idp.confirm_sign_up(ClientId=self.client_id, Username=email, ConfirmationCode=ANY_CODE)

    def sign_in(self, email: str, password: str = PASSWORD) -> User:
        result = self.idp.initiate_auth(
            ClientId=self.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )["AuthenticationResult"]
        claims = jwt.decode(result["AccessToken"], options={"verify_signature": False})  # the gateway verifies it
        return User(email, password, claims["sub"], result["AccessToken"], result["IdToken"], result["RefreshToken"])

    def new_user(self, email: str, password: str = PASSWORD) -> User:
        """Signed up, confirmed and signed in."""
        self.sign_up(email, password)
        return self.sign_in(email, password)


def submit_form(api_url: str, user: User, image: bytes, **fields: str) -> str:
    """The original API's form upload (POST /upload), signed in as `user`, with form `fields` (e.g. the page's
    checkbox): the task id."""
    response = requests.post(
        f"{api_url}/upload", files={"image": ("photo.png", image)}, data=fields, headers=user.authorization, timeout=10
    )
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def until_final(api_url: str, user: User, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """`user`'s task's status once it is final; fails the test past `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = requests.get(
            f"{api_url}/status/{task_id}", headers=user.authorization, timeout=10
        ).json()
        if status["state"] in FINAL_STATES:
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} not final within {timeout} s")
