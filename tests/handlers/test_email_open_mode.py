"""Open mode (the template's default) has no verified address to write to: a submit that asks for an email is
refused with a clear 400, on both submit routes, and no task is created."""

from __future__ import annotations

import base64
import json

from tests.handlers.support import body
from tests.sample_events import sample_event


def test_open_mode_refuses_notify_email_on_post_uploads(invoke, aws, template):
    # Given open mode, When an anonymous POST /uploads asks for an email
    event = sample_event("http-create-upload.json")
    event["body"] = json.dumps({"notify_email": True})
    response = invoke("ApiFunction", event)

    # Then a 400 that says why, and no task exists
    assert response["statusCode"] == 400
    error = body(response)["error"]
    assert error["code"] == "INVALID_NOTIFY_EMAIL"
    assert "accounts" in error["message"]
    assert aws.client("dynamodb").scan(TableName=template.physical_name("TasksTable"))["Items"] == []


def test_open_mode_refuses_the_forms_checkbox_but_takes_it_unticked(invoke):
    # Given the original API's form upload with the page's checkbox field
    boundary = "------------------------leyline0123456789"
    image = base64.b64decode(sample_event("http-form-upload.json")["body"])

    def with_checkbox(value: str) -> dict:
        field = f'--{boundary}\r\nContent-Disposition: form-data; name="notify_email"\r\n\r\n{value}\r\n'.encode()
        event = sample_event("http-form-upload.json")
        event["body"] = base64.b64encode(field + image).decode()
        return invoke("ApiFunction", event)

    # When it is ticked, Then 400 INVALID_NOTIFY_EMAIL; unticked ("false"), the upload is taken as before
    ticked = with_checkbox("on")
    assert ticked["statusCode"] == 400
    assert body(ticked)["error"]["code"] == "INVALID_NOTIFY_EMAIL"
    assert with_checkbox("false")["statusCode"] == 202
