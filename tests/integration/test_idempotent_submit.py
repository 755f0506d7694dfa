"""Idempotency-Key on POST /uploads and POST /upload, over real HTTP against the local stack: every case of
issue 11's "Idempotent submit", including concurrent identical submits."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.testing import RunningStack
from tests.integration.polling import poll_until_final

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).parents[2] / "examples" / "image.png").read_bytes()
PNG = {"content_type": "image/png"}


def tasks_in_table(stack: RunningStack) -> set[str]:
    table = stack.physical_name("TasksTable")
    pages = stack.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return {item["task_id"]["S"] for page in pages for item in page["Items"]}


def submit(stack: RunningStack, key: str, body: dict[str, Any] | None = None) -> requests.Response:
    headers = {"Idempotency-Key": key}
    return requests.post(f"{stack.api_url}/uploads", json=PNG if body is None else body, headers=headers, timeout=10)


def form(stack: RunningStack, key: str, image: bytes = EXAMPLE, name: str = "photo.png") -> requests.Response:
    files = {"image": (name, image)}
    return requests.post(f"{stack.api_url}/upload", files=files, headers={"Idempotency-Key": key}, timeout=10)


def upload(ticket: dict[str, Any]) -> None:
    stored = requests.post(
        ticket["upload"]["url"], data=ticket["upload"]["fields"], files={"file": EXAMPLE}, timeout=10
    )
    assert stored.status_code == 204, stored.text


def key() -> str:
    return str(uuid.uuid4())


def test_a_retried_submit_gets_the_same_task_and_a_form_that_works(stack):
    # Given a POST /uploads with a key, whose answer the client "lost"
    k, before = key(), tasks_in_table(stack)
    first = submit(stack, k)
    # When it retries with the same key and request
    again = submit(stack, k)
    # Then the same status and task, one task created
    assert (first.status_code, again.status_code) == (201, 201)
    task_id = first.json()["task_id"]
    assert again.json()["task_id"] == task_id
    assert tasks_in_table(stack) - before == {task_id}
    # And the replay's fresh form uploads the image: the task runs to SUCCESS
    upload(again.json())
    assert poll_until_final(stack.api_url, task_id)[-1]["state"] == "SUCCESS"
    # And once the upload landed, a replay points at the task rather than handing out another form
    closed = submit(stack, k)
    assert closed.status_code == 409
    assert closed.json()["error"]["code"] == "UPLOAD_CLOSED"
    assert closed.headers["Location"] == f"/status/{task_id}"


def test_a_retried_form_upload_gets_the_same_answer_and_one_task(stack):
    # Given a POST /upload with a key, sent twice (the second with another file name: the image is the request)
    k, before = key(), tasks_in_table(stack)
    first, again = form(stack, k), form(stack, k, name="renamed.png")
    # Then the same 202 and body, and one task, which runs
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    task_id = first.json()["task_id"]
    assert tasks_in_table(stack) - before == {task_id}
    assert poll_until_final(stack.api_url, task_id)[-1]["state"] == "SUCCESS"


def test_without_a_key_nothing_changes(stack):
    # When the same request is sent twice without the header, Then two tasks
    before = tasks_in_table(stack)
    answers = [requests.post(f"{stack.api_url}/uploads", json=PNG, timeout=10) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert len(tasks_in_table(stack) - before) == 2


def test_the_same_key_with_another_request_is_422(stack):
    # Given a keyed POST /uploads
    k = key()
    assert submit(stack, k).status_code == 201
    before = tasks_in_table(stack)
    # When the key comes with another body, or with an image on the form route
    for refused in (submit(stack, k, {"content_type": "image/jpeg"}), form(stack, k)):
        # Then 422 IDEMPOTENCY_KEY_REUSED, and nothing created
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert tasks_in_table(stack) == before


def test_a_malformed_key_is_400(stack):
    before = tasks_in_table(stack)
    for sent in (submit(stack, "x" * 256), form(stack, "x" * 256)):
        assert sent.status_code == 400
        assert sent.json()["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert tasks_in_table(stack) == before


def test_the_same_key_from_another_client_is_another_request(stack):
    # Given a keyed POST /uploads from 127.0.0.1
    k = key()
    mine = submit(stack, k).json()["task_id"]
    # When the same key and body come from another address (127.0.0.2: another client, by its source IP)
    connection = http.client.HTTPConnection("127.0.0.1", stack.api_port, timeout=10, source_address=("127.0.0.2", 0))
    try:
        body = json.dumps(PNG)
        connection.request("POST", "/uploads", body, {"Content-Type": "application/json", "Idempotency-Key": k})
        answer = connection.getresponse()
        status, theirs = answer.status, json.loads(answer.read())["task_id"]
    finally:
        connection.close()
    # Then it gets a task of its own
    assert status == 201
    assert theirs != mine


def _concurrently(stack: RunningStack, k: str, clients: int) -> list[requests.Response]:
    start = threading.Barrier(clients)
    answers: list[requests.Response] = []

    def send() -> None:
        start.wait(timeout=10)
        answers.append(form(stack, k))

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == clients
    return answers


def test_concurrent_identical_submits_create_exactly_one_task(stack):
    # Given rounds of 6 identical keyed form uploads sent at the same moment
    in_progress_seen = 0
    for _ in range(8):
        k, before = key(), tasks_in_table(stack)
        answers = _concurrently(stack, k, 6)
        # Then exactly one task was created, and every answer is that task (202) or "still in progress" (409)
        created = tasks_in_table(stack) - before
        assert len(created) == 1, created
        (task_id,) = created
        outcomes = Counter(
            "same task" if a.status_code == 202 and a.json()["task_id"] == task_id else a.json()["error"]["code"]
            for a in answers
        )
        assert set(outcomes) <= {"same task", "REQUEST_IN_PROGRESS"}, outcomes
        assert [a.status_code for a in answers].count(409) == outcomes["REQUEST_IN_PROGRESS"]
        in_progress_seen += outcomes["REQUEST_IN_PROGRESS"]
        # And a retry after them all gets the task
        assert form(stack, k).json()["task_id"] == task_id
        if in_progress_seen:
            break
    # And at least once a request arrived while the first was still handled, and was told so
    assert in_progress_seen > 0
