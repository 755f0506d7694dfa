"""logic/emails.py: who gets an email when a task ends (its owner, at the verified address the user pool holds,
only if the task asked), what it says, and what a submit may ask (fakes: no Cognito, no SES)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leyline.errors import InvalidNotifyEmail
from leyline.logic.emails import notify_owner, parse_notify_email
from leyline.models import Task, TaskState, new_task_id
from tests.fakes import FakeMailer, FakeTaskStore, FakeUserDirectory

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ALICE, BOB = "alice-sub", "bob-sub"
PAGE = "https://page.example/"


def task_of(tasks: FakeTaskStore, owner: str | None, *, notify_email: bool, state: TaskState) -> Task:
    task = Task(
        task_id=new_task_id(),
        state=state,
        created_at=NOW,
        expires_at=int((NOW + timedelta(days=7)).timestamp()),
        client=f"user:{owner}" if owner else "198.51.100.1",
        owner=owner,
        notify_email=notify_email,
    )
    tasks.create(task)
    return task


def event_of(task: Task, state: TaskState, error: dict[str, str] | None = None) -> dict[str, Any]:
    """The task event as EventBridge hands it to the rule's queue: the status object in `detail`."""
    return {
        "source": "leyline.tasks",
        "detail-type": "Task State Changed",
        "time": "2026-12-01T00:00:31Z",
        "detail": {"task_id": task.task_id, "state": state.value, "error": error, "video_url": None},
    }


@pytest.fixture
def world() -> tuple[FakeTaskStore, FakeUserDirectory, FakeMailer]:
    users = FakeUserDirectory()
    users.add(ALICE, "alice@example.com")
    users.add(BOB, "bob@example.com")
    return FakeTaskStore(), users, FakeMailer()


@pytest.mark.parametrize(
    ("state", "result"),
    [(TaskState.SUCCESS, "is ready"), (TaskState.FAILURE, "failed"), (TaskState.CANCELLED, "was cancelled")],
)
def test_an_opted_in_task_that_ends_emails_its_owner_the_result_and_the_page(world, state, result):
    # Given Alice's task that asked for an email
    tasks, users, mailer = world
    task = task_of(tasks, ALICE, notify_email=True, state=state)

    # When its final event arrives
    message_id = notify_owner(event_of(task, state), tasks, users, mailer, page_url=PAGE)

    # Then one message goes to Alice's verified address, with the result and a link to the page
    assert message_id == "message-1"
    [sent] = mailer.sent
    assert sent.to == "alice@example.com"
    assert result in sent.subject
    assert task.task_id in sent.body
    assert PAGE in sent.body


def test_a_failure_says_why(world):
    tasks, users, mailer = world
    task = task_of(tasks, ALICE, notify_email=True, state=TaskState.FAILURE)
    error = {"code": "CORRUPT_IMAGE", "message": "The image cannot be read."}

    notify_owner(event_of(task, TaskState.FAILURE, error), tasks, users, mailer, page_url=PAGE)

    assert "The image cannot be read." in mailer.sent[0].body


def test_nobody_is_emailed_for_a_task_that_did_not_ask(world):
    # Given Alice's task without notify_email
    tasks, users, mailer = world
    task = task_of(tasks, ALICE, notify_email=False, state=TaskState.SUCCESS)

    # When it ends, Then no message is sent
    assert notify_owner(event_of(task, TaskState.SUCCESS), tasks, users, mailer, page_url=PAGE) is None
    assert mailer.sent == []


def test_an_unverified_address_gets_nothing(world):
    # Given Carol, whose address the user pool has not verified, and her opted-in task
    tasks, users, mailer = world
    users.add("carol-sub", "carol@example.com", verified=False)
    task = task_of(tasks, "carol-sub", notify_email=True, state=TaskState.SUCCESS)

    # When it ends, Then nothing is sent
    assert notify_owner(event_of(task, TaskState.SUCCESS), tasks, users, mailer, page_url=PAGE) is None
    assert mailer.sent == []


def test_the_recipient_is_the_tasks_owner_whatever_the_event_carries(world):
    # Given Bob's opted-in task, and an event that names an address of its own
    tasks, users, mailer = world
    task = task_of(tasks, BOB, notify_email=True, state=TaskState.SUCCESS)
    event = event_of(task, TaskState.SUCCESS)
    event["detail"] |= {"email": "mallory@example.com", "owner": ALICE}

    # When it is handled, Then the message goes to Bob's own verified address, not Alice's nor Mallory's
    notify_owner(event, tasks, users, mailer, page_url=PAGE)
    assert [message.to for message in mailer.sent] == ["bob@example.com"]


@pytest.mark.parametrize("state", [TaskState.QUEUED, TaskState.PROCESSING])
def test_a_task_that_has_not_ended_is_not_emailed(world, state):
    tasks, users, mailer = world
    task = task_of(tasks, ALICE, notify_email=True, state=state)

    assert notify_owner(event_of(task, state), tasks, users, mailer, page_url=PAGE) is None
    assert mailer.sent == []


def test_a_deleted_or_ownerless_task_is_not_emailed(world):
    # Given an anonymous task that (by an old record) asked, and an event of a task since deleted
    tasks, users, mailer = world
    anonymous = task_of(tasks, None, notify_email=True, state=TaskState.SUCCESS)
    deleted = replace(anonymous, task_id=new_task_id())

    # Then neither is emailed
    for task in (anonymous, deleted):
        assert notify_owner(event_of(task, TaskState.SUCCESS), tasks, users, mailer, page_url=PAGE) is None
    assert mailer.sent == []


@pytest.mark.parametrize(
    ("value", "wanted"),
    [(True, True), (False, False), (None, False), ("on", True), ("true", True), ("false", False), ("", False)],
)
def test_notify_email_is_a_boolean_or_a_forms_checkbox(value, wanted):
    assert parse_notify_email(value, accounts=True) is wanted


@pytest.mark.parametrize("value", ["maybe", 1, "alice@example.com", ["yes"]])
def test_notify_email_of_another_kind_is_refused(value):
    with pytest.raises(InvalidNotifyEmail):
        parse_notify_email(value, accounts=True)


def test_open_mode_refuses_an_email_there_is_no_address_for():
    # Given open mode (anonymous tasks), When a submit asks for an email, Then a clear 400
    with pytest.raises(InvalidNotifyEmail, match="accounts") as refused:
        parse_notify_email(True, accounts=False)
    assert refused.value.status == 400
    # And not asking is fine
    assert parse_notify_email(False, accounts=False) is False
