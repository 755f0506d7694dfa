"""Accounts mode (AccessMode=accounts) in ApiFunction and StatusFunction: the user comes from the authorizer's
claims, tasks belong to it, another user's task is unknown, GET /tasks pages, GET /config names the pool.

The functions are invoked with the sample events of events/ (the JWT claims as API Gateway passes them), against
template.yaml's resources (the user pool and its client included) provisioned in moto with AccessMode=accounts.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from infra.template import Stack, load_stack
from tests.handlers.support import body, cold_start
from tests.lambda_context import FakeLambdaContext
from tests.mocked_aws import empty, provisioned
from tests.sample_events import ROOT, sample_event

ALICE = sample_event("http-list-tasks.json")["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
BOB = "2b9e4f61-0c7d-4d3a-b8e5-6f1a2c3d4e5f"
CAP = 3  # MaxWaitingTasksPerClient of this module's stack
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Stack, boto3.Session]]:
    accounts = load_stack(
        ROOT / "template.yaml",
        parameter_overrides={"ModelSeconds": "1", "AccessMode": "accounts", "MaxWaitingTasksPerClient": str(CAP)},
    )
    with provisioned(accounts) as session:
        yield accounts, session


@pytest.fixture
def invoke(stack: tuple[Stack, boto3.Session], monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """As tests/handlers/conftest.py's invoke, on this module's accounts-mode stack."""
    template, session = stack
    empty(session)
    loaded: dict[str, Any] = {}

    def call(logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        if logical_id not in loaded:
            loaded[logical_id] = cold_start(template.functions[logical_id], monkeypatch)
        context = FakeLambdaContext(function_name=logical_id, timeout_seconds=10)
        response: dict[str, Any] = loaded[logical_id](event, context)
        return response

    return call


def signed_in(event: dict[str, Any], user: str | None, *, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """`event` as API Gateway sends it for `user`'s access token (None: no authorizer context at all)."""
    event = copy.deepcopy(event)
    claims = copy.deepcopy(sample_event("http-list-tasks.json")["requestContext"]["authorizer"])
    claims["jwt"]["claims"].update(sub=user, username=user)
    event["requestContext"].pop("authorizer", None)
    if user is not None:
        event["requestContext"]["authorizer"] = claims
    event["requestContext"]["http"]["sourceIp"] = source_ip
    return event


def on_task(sample: str, path: str, task_id: str, user: str | None) -> dict[str, Any]:
    event = sample_event(sample)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path.format(task_id=task_id)
    event["pathParameters"] = {"task_id": task_id}
    return signed_in(event, user)


def create_task(invoke: Invoke, user: str | None, **kwargs: Any) -> dict[str, Any]:
    return invoke("ApiFunction", signed_in(sample_event("http-create-upload.json"), user, **kwargs))


def list_tasks(invoke: Invoke, user: str | None, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = signed_in(sample_event("http-list-tasks.json"), user)
    event["queryStringParameters"] = query or {}
    event["rawQueryString"] = "&".join(f"{key}={value}" for key, value in (query or {}).items())
    return invoke("StatusFunction", event)


def test_get_config_names_the_user_pool_its_client_and_awss_regional_cognito_endpoint(invoke, stack):
    # Given the stack in accounts mode (its user pool provisioned, ids assigned by Cognito)
    template, _ = stack

    # When a client asks GET /config, with no token
    response = invoke("ApiFunction", sample_event("http-get-config.json"))

    # Then it learns the mode and where to sign in: the pool and client the template created, and (no local
    # endpoint in this environment) AWS's regional Cognito API
    assert response["statusCode"] == 200
    assert body(response) == {
        "access_mode": "accounts",
        "cognito": {
            "region": "us-east-1",
            "user_pool_id": template.ref("UserPool"),
            "client_id": template.ref("UserPoolClient"),
            "endpoint": "https://cognito-idp.us-east-1.amazonaws.com",
        },
    }
    assert template.ref("UserPool").startswith("us-east-1_")


def test_a_task_belongs_to_the_user_of_the_token_whoever_the_body_names(invoke, stack):
    # Given Alice signed in
    _, session = stack

    # When she creates a task
    response = create_task(invoke, ALICE)

    # Then the task is recorded as hers: the claims' sub, the only place the owner comes from
    assert response["statusCode"] == 201
    task_id = body(response)["task_id"]
    item = session.client("dynamodb").get_item(
        TableName=stack[0].physical_name("TasksTable"), Key={"task_id": {"S": task_id}}
    )["Item"]
    assert item["owner"] == {"S": ALICE}
    # And a body naming another owner is no request at all (the body has no such field)
    named = signed_in(sample_event("http-create-upload.json"), ALICE)
    named["body"] = json.dumps({"owner": BOB})
    assert invoke("ApiFunction", named)["statusCode"] == 400


@pytest.mark.parametrize(
    ("function", "sample", "path"),
    [
        ("StatusFunction", "http-get-status.json", "/status/{task_id}"),
        ("StatusFunction", "http-get-video.json", "/video/{task_id}"),
        ("ApiFunction", "http-cancel-task.json", "/tasks/{task_id}/cancel"),
        ("ApiFunction", "http-delete-task.json", "/tasks/{task_id}"),
        ("StatusFunction", "http-get-status.json", "/tasks/{task_id}/deliveries"),
    ],
)
def test_another_users_task_answers_exactly_as_an_unknown_one_and_is_left_alone(invoke, function, sample, path):
    # Given Alice's task, and a task id no one has
    task_id = body(create_task(invoke, ALICE))["task_id"]
    unknown = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"

    # When Bob asks for Alice's task, and for the unknown one, on the route
    theirs = invoke(function, on_task(sample, path, task_id, BOB))
    nobodys = invoke(function, on_task(sample, path, unknown, BOB))

    # Then both answers are the same 404 TASK_NOT_FOUND, word for word but the id
    assert theirs["statusCode"] == nobodys["statusCode"] == 404
    assert body(theirs) == {
        "error": {"code": "TASK_NOT_FOUND", "message": f"No task {task_id} exists."},
    }
    assert body(theirs)["error"]["message"].replace(task_id, unknown) == body(nobodys)["error"]["message"]
    assert theirs["headers"] == nobodys["headers"]
    # And Alice's task is untouched: still hers, still waiting for its upload
    mine = invoke("StatusFunction", on_task("http-get-status.json", "/status/{task_id}", task_id, ALICE))
    assert mine["statusCode"] == 200
    assert body(mine)["state"] == "PENDING"


def test_a_task_route_reached_without_a_user_is_refused_by_the_function_too(invoke):
    # Given accounts mode, and requests that carry no authorizer context (API Gateway lets none through;
    # this is the functions' own check behind it)
    # When they reach a submit, a status and the list
    submit = create_task(invoke, None)
    status = invoke(
        "StatusFunction",
        on_task("http-get-status.json", "/status/{task_id}", "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", None),
    )
    listed = list_tasks(invoke, None)

    # Then each is 401 UNAUTHORIZED and nothing is created
    for response in (submit, status, listed):
        assert response["statusCode"] == 401
        assert body(response)["error"]["code"] == "UNAUTHORIZED"
    assert body(list_tasks(invoke, ALICE))["tasks"] == []


def test_get_tasks_lists_the_callers_tasks_newest_first_as_status_objects(invoke):
    # Given three tasks of Alice and one of Bob
    alices = [body(create_task(invoke, ALICE))["task_id"] for _ in range(3)]
    create_task(invoke, BOB)

    # When Alice lists her tasks
    response = list_tasks(invoke, ALICE)

    # Then she gets hers only, newest first, each exactly as GET /status shows it, and no next page
    assert response["statusCode"] == 200
    page = body(response)
    assert sorted(task["task_id"] for task in page["tasks"]) == sorted(alices)
    assert newest_first(page["tasks"])
    assert page["next_cursor"] is None
    for task in page["tasks"]:
        status = invoke("StatusFunction", on_task("http-get-status.json", "/status/{task_id}", task["task_id"], ALICE))
        assert task == body(status)


def test_get_tasks_pages_with_an_opaque_cursor_missing_and_repeating_nothing(invoke):
    # Given 7 tasks of Alice (the cap counts only unfinished tasks: a cancelled one frees its place)
    created = []
    for _ in range(7):
        created.append(body(create_task(invoke, ALICE))["task_id"])
        _finish(invoke, created[-1])

    # When she reads them 3 at a time, following next_cursor
    seen: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = body(list_tasks(invoke, ALICE, query))
        pages += 1
        seen += page["tasks"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then the pages hold every task once, newest first, and the last page says it is the last
    assert pages == 3
    assert sorted(task["task_id"] for task in seen) == sorted(created)
    assert newest_first(seen)
    # And the cursor is opaque: no task id or user id shows through it
    first = body(list_tasks(invoke, ALICE, {"limit": "3"}))["next_cursor"]
    assert created[-3] not in first
    assert ALICE not in first


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "2.5", ""])
def test_get_tasks_refuses_a_limit_outside_1_to_100(invoke, limit):
    response = list_tasks(invoke, ALICE, {"limit": limit})
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "INVALID_LIMIT"


def test_get_tasks_takes_only_a_cursor_it_gave_to_the_same_user(invoke):
    # Given a next_cursor given to Alice
    for _ in range(2):
        _finish(invoke, body(create_task(invoke, ALICE))["task_id"])
    cursor = body(list_tasks(invoke, ALICE, {"limit": "1"}))["next_cursor"]
    assert cursor

    # When Bob sends it, or anyone sends a made-up one
    for user, sent in ((BOB, cursor), (ALICE, "not-a-cursor"), (ALICE, cursor[:-4])):
        response = list_tasks(invoke, user, {"cursor": sent})

        # Then it is a 400 INVALID_CURSOR, and nothing of Alice's is shown
        assert response["statusCode"] == 400, (user, sent)
        assert body(response)["error"]["code"] == "INVALID_CURSOR"


def test_the_cap_on_unfinished_tasks_counts_per_user_whatever_the_ip(invoke):
    # Given Alice with CAP unfinished tasks, created from two addresses
    for index in range(CAP):
        assert create_task(invoke, ALICE, source_ip=f"10.0.0.{index % 2}")["statusCode"] == 201

    # When she asks for one more from a third address, and Bob from her first one
    refused = create_task(invoke, ALICE, source_ip="10.0.0.9")
    bobs = create_task(invoke, BOB, source_ip="10.0.0.0")

    # Then she is refused with 429 and a Retry-After; Bob, another user, is not
    assert refused["statusCode"] == 429
    assert int(refused["headers"]["Retry-After"]) >= 1
    assert bobs["statusCode"] == 201


def test_an_idempotency_key_belongs_to_its_user(invoke):
    # Given Alice and Bob sending the same Idempotency-Key
    requests = []
    for user in (ALICE, ALICE, BOB):
        event = signed_in(sample_event("http-create-upload.json"), user)
        event["headers"]["idempotency-key"] = "order-42"
        requests.append(body(invoke("ApiFunction", event))["task_id"])

    # Then Alice's retry is her first task, and Bob's request is a task of his own
    assert requests[0] == requests[1]
    assert requests[2] != requests[0]
    assert [task["task_id"] for task in body(list_tasks(invoke, BOB))["tasks"]] == [requests[2]]


def newest_first(tasks: list[dict[str, Any]]) -> bool:
    """Ordered by creation time, newest first (two tasks of the same millisecond may come either way)."""
    created = [task["created_at"] for task in tasks]
    return created == sorted(created, reverse=True)


def _finish(invoke: Invoke, task_id: str) -> None:
    """Alice cancels the task: it ends, and no longer counts towards her cap."""
    response = invoke("ApiFunction", on_task("http-cancel-task.json", "/tasks/{task_id}/cancel", task_id, ALICE))
    assert body(response)["state"] == "CANCELLED"


def test_the_openapi_document_lists_the_new_routes_and_the_token_they_need(invoke):
    # Given accounts mode, when GET /openapi.json is asked (public)
    event = sample_event("http-get-config.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    document = body(invoke("ApiFunction", event))

    # Then GET /tasks (with its page parameters) and GET /config are documented
    listing = document["paths"]["/tasks"]["get"]
    assert {parameter["name"] for parameter in listing["parameters"]} == {"limit", "cursor"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("TaskPageBody")
    assert "ConfigBody" in document["components"]["schemas"]
    # And every task route needs the bearer token, GET /config none
    assert document["components"]["securitySchemes"]["CognitoUser"]["scheme"] == "bearer"
    assert "security" not in document["paths"]["/config"]["get"]
    for path in ("/tasks", "/status/{task_id}", "/uploads", "/tasks/{task_id}"):
        for operation in document["paths"][path].values():
            assert operation["security"] == [{"CognitoUser": []}], path


def test_the_page_may_call_the_cognito_api_get_config_names(invoke):
    # Given accounts mode deployed (no local endpoint: GET /config names AWS's regional Cognito API)
    endpoint = body(invoke("ApiFunction", sample_event("http-get-config.json")))["cognito"]["endpoint"]
    assert endpoint == "https://cognito-idp.us-east-1.amazonaws.com"

    # When the page is served
    event = sample_event("http-get-config.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/"
    page = invoke("ApiFunction", event)

    # Then its Content-Security-Policy lets it sign in there (connect-src), and nowhere else new
    policy = {
        name: sources
        for name, *sources in (directive.split() for directive in page["headers"]["Content-Security-Policy"].split(";"))
    }
    assert endpoint in policy["connect-src"]
    assert endpoint not in policy["media-src"]
