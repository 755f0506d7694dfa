"""Open mode (the default AccessMode): no user, GET /config says so, GET /tasks has no one to list."""

from __future__ import annotations

from tests.handlers.support import body, status_of
from tests.sample_events import sample_event


def test_get_config_says_open_and_names_no_user_pool(invoke):
    # Given the stack with its default AccessMode
    # When a client asks GET /config
    response = invoke("ApiFunction", sample_event("http-get-config.json"))

    # Then the API is anonymous: no user pool to sign in to
    assert response["statusCode"] == 200
    assert body(response) == {"access_mode": "open", "cognito": None}


def test_tasks_have_no_owner_and_stay_readable_by_anyone(invoke, aws, template):
    # Given a task created anonymously
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]

    # Then it records no owner (it is in no user's history), and its status is anyone's to read
    item = aws.client("dynamodb").get_item(
        TableName=template.physical_name("TasksTable"), Key={"task_id": {"S": task_id}}
    )["Item"]
    assert "owner" not in item
    assert status_of(invoke, task_id)[0] == 200


def test_get_tasks_needs_accounts(invoke):
    # Given open mode, where tasks belong to no one
    # When GET /tasks is asked (a claims-carrying event: nothing in open mode reads it)
    response = invoke("StatusFunction", sample_event("http-list-tasks.json"))

    # Then there is no "mine" to list: 401 UNAUTHORIZED, saying accounts are needed
    assert response["statusCode"] == 401
    assert body(response)["error"]["code"] == "UNAUTHORIZED"
    assert "AccessMode=accounts" in body(response)["error"]["message"]


def test_the_openapi_document_asks_for_no_token(invoke):
    event = sample_event("http-get-config.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    document = body(invoke("ApiFunction", event))
    # Given open mode: no token is asked anywhere, GET /config is documented, and GET /tasks (no one's history
    # to list in open mode) is not offered
    assert "securitySchemes" not in document["components"]
    assert "/config" in document["paths"]
    assert "/tasks" not in document["paths"]
    assert all("security" not in op for operations in document["paths"].values() for op in operations.values())
