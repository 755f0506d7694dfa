"""Accounts mode (issue 16): GET /tasks with 10,000 tasks of 100 users in the table, and what the JWT authorizer
adds to GET /status (accounts against open).

GET /tasks: one user signs up, confirms and signs in on the stack's Cognito (the embedded moto server), as the
page does; the table then gets 10,000 tasks, 100 for each of 100 owners (the signed-in user and 99 others),
written through the store's own create (TaskRepository.create, the write POST /uploads makes) rather than
10,000 HTTP submits. The first page (the default 20) of the signed-in user's history is timed on one persistent
connection with its bearer token.

The authorizer: GET /status of one PENDING task created through the API, on a stack in open mode and then on one
in accounts mode (the gateway verifies the RS256 token against the pool's JWKS on every call), the same number of
times each; the difference of the medians is the authorizer's cost.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import boto3
import requests

from bench.client import StatusClient
from bench.stack import bench_stack
from bench.stats import ms, percentile, summary

MODEL_SECONDS = 1  # nothing reaches the model here
USERS = 100
TASKS = 10_000
PAGE = 20
PASSWORD = "Bench-password-42"
_WRITERS = 8


def accounts(samples: int) -> dict[str, Any]:
    tasks_page = _tasks_page(samples)
    open_status = _status_latency("open", samples)
    accounts_status = _status_latency("accounts", samples)
    added = accounts_status["median"] - open_status["median"]
    return {
        "users": USERS,
        "tasks": TASKS,
        "page": PAGE,
        "samples": samples,
        "list_ms": tasks_page["latency"],
        "list_build_seconds": tasks_page["build_seconds"],
        "list_first_page_size": tasks_page["first_page_size"],
        "list_samples_ms": tasks_page["samples"],
        "status_open_ms": open_status,
        "status_accounts_ms": accounts_status,
        "authorizer_added_median_ms": round(added, 3),
    }


def _signed_in(api_url: str, email: str) -> str:
    """An access token of a new, confirmed user (moto takes any confirmation code)."""
    cognito = requests.get(f"{api_url}/config", timeout=10).json()["cognito"]
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=cognito["endpoint"],
        region_name=cognito["region"],
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    idp.sign_up(ClientId=cognito["client_id"], Username=email, Password=PASSWORD)
    idp.confirm_sign_up(ClientId=cognito["client_id"], Username=email, ConfirmationCode="000000")
    auth = idp.initiate_auth(
        ClientId=cognito["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
    )
    return str(auth["AuthenticationResult"]["AccessToken"])


def _tasks_page(samples: int) -> dict[str, Any]:
    import jwt

    from leyline.adapters.tasks_table import TaskRepository
    from leyline.models import Task, TaskState, new_task_id, utc_now

    with bench_stack(MODEL_SECONDS, "accounts-list", parameter_overrides={"AccessMode": "accounts"}) as stack:
        token = _signed_in(stack.api_url, "bench@example.com")
        me = jwt.decode(token, options={"verify_signature": False})["sub"]
        owners = [me, *(str(uuid.uuid4()) for _ in range(USERS - 1))]
        store = TaskRepository(stack.physical_name("TasksTable"), stack.client("dynamodb"))
        began = time.perf_counter()
        start = utc_now() - timedelta(hours=1)

        def write(index: int) -> None:
            created = start + timedelta(milliseconds=index)
            store.create(
                Task(
                    task_id=new_task_id(),
                    state=TaskState.PENDING,
                    created_at=created,
                    expires_at=int((created + timedelta(days=1)).timestamp()),
                    client=f"user:{owners[index % USERS]}",
                    owner=owners[index % USERS],
                )
            )

        with ThreadPoolExecutor(_WRITERS) as writers:
            list(writers.map(write, range(TASKS)))
        built = time.perf_counter() - began
        client = StatusClient(stack.api_url, headers={"Authorization": f"Bearer {token}"})
        code, first = client.get_path("/tasks")
        if code != 200:
            raise RuntimeError(f"GET /tasks answered {code}: {first}")
        seconds = _timed(client, "/tasks", samples)
        client.close()
    latency = summary(ms(seconds)) | {"p95": round(percentile(ms(seconds), 95), 4)}
    return {
        "latency": latency,
        "build_seconds": round(built, 1),
        "first_page_size": len(first["tasks"]),
        "samples": [round(value, 2) for value in ms(seconds)],
    }


def _status_latency(access_mode: str, samples: int) -> dict[str, Any]:
    overrides = {"AccessMode": access_mode}
    with bench_stack(MODEL_SECONDS, f"accounts-status-{access_mode}", parameter_overrides=overrides) as stack:
        headers: dict[str, str] = {}
        if access_mode == "accounts":
            headers = {"Authorization": f"Bearer {_signed_in(stack.api_url, 'status@example.com')}"}
        created = requests.post(f"{stack.api_url}/uploads", json={}, headers=headers, timeout=10)
        created.raise_for_status()
        client = StatusClient(stack.api_url, headers=headers)
        seconds = _timed(client, f"/status/{created.json()['task_id']}", samples)
        client.close()
    return summary(ms(seconds))


def _timed(client: StatusClient, path: str, samples: int) -> list[float]:
    for _ in range(20):  # warm the path (the workers, the connection, the JWKS cache)
        client.get_path(path)
    seconds = []
    for _ in range(samples):
        began = time.perf_counter()
        code, body = client.get_path(path)
        seconds.append(time.perf_counter() - began)
        if code != 200:
            raise RuntimeError(f"GET {path} answered {code}: {body}")
    return seconds
