"""leyline.logic.submit on the in-memory fakes: what an Idempotency-Key is, whose it is, what makes two
submits the same, and what a replay answers. No AWS, no process."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from leyline.errors import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    RequestInProgress,
    TaskNotFound,
    TooManyTasks,
    UploadClosed,
)
from leyline.logic.submit import (
    Idempotency,
    key_scope,
    parse_idempotency_key,
    submit_form_upload,
    submit_presigned_upload,
)
from leyline.models import Task, TaskState, Webhook
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeSubmitRecords, FakeTaskStore

ME, SOMEONE_ELSE = "198.51.100.1", "203.0.113.9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
LONG_AGO = timedelta(days=30)


class World:
    def __init__(self) -> None:
        self.clock, self.tasks, self.media = FakeClock(), FakeTaskStore(), FakeMediaStorage()
        self.records = FakeSubmitRecords()
        self.settings = replace(SETTINGS, max_waiting_tasks_per_client=100)

    def ticket(
        self, key: str | None, *, client: str = ME, content_type: str | None = "image/png", size: int | None = 100
    ):
        idempotency = None if key is None else Idempotency(self.records, key)
        return submit_presigned_upload(
            self.tasks,
            self.media,
            self.settings,
            self.clock(),
            client=client,
            content_type=content_type,
            size=size,
            idempotency=idempotency,
        )

    def form(self, key: str | None, image: bytes = PNG, *, client: str = ME):
        idempotency = None if key is None else Idempotency(self.records, key)
        return submit_form_upload(
            self.tasks, self.media, self.settings, image, self.clock(), client=client, idempotency=idempotency
        )

    def tasks_of(self, client: str = ME) -> int:
        return self.tasks.client_backlog(client, pending_since=self.clock() - LONG_AGO).unfinished


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize("value", ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324", "x" * 255, "with space ~!", '"sf"'])
def test_a_key_is_1_to_255_printable_ascii_characters(value):
    # When a valid header value is parsed, Then it is the key, as sent
    assert parse_idempotency_key(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "new\nline", "caf\u00e9", "\x7f", "nul\x00"])
def test_anything_else_is_refused_as_invalid(value):
    # When a malformed header value is parsed, Then it is a 400 INVALID_IDEMPOTENCY_KEY
    with pytest.raises(InvalidIdempotencyKey) as refused:
        parse_idempotency_key(value)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_IDEMPOTENCY_KEY")


def test_no_header_means_no_key():
    assert parse_idempotency_key(None) is None


def test_a_retried_presigned_submit_returns_the_same_task_with_a_fresh_form_and_creates_nothing(world):
    # Given a first submit with a key
    first = world.ticket("k1")
    # When the same request is sent again with that key, a minute later
    world.clock.advance(60)
    again = world.ticket("k1")
    # Then it is the same task, one task exists, and the replay is marked as such
    assert (first.replayed, again.replayed) == (False, True)
    assert again.value.task_id == first.value.task_id
    assert world.tasks_of() == 1
    # And its form is signed anew, valid until the first form's own deadline (not stretched by the retry)
    assert again.value.expires_in == SETTINGS.upload_url_seconds - 60
    assert again.value.fields["ttl"] == str(SETTINGS.upload_url_seconds - 60)
    assert again.value.fields["key"] == f"uploads/{first.value.task_id}"


def test_without_a_key_every_submit_creates_a_task(world):
    # When the same request is sent twice without a key, Then two tasks exist, as before keys existed
    assert world.ticket(None).value.task_id != world.ticket(None).value.task_id
    assert world.tasks_of() == 2


def test_the_same_key_with_another_request_is_refused_and_creates_nothing(world):
    # Given a first submit with a key
    world.ticket("k1", size=100)
    # When the key comes back with another size, another type, or on the other route
    for reuse in (
        lambda: world.ticket("k1", size=101),
        lambda: world.ticket("k1", content_type="image/jpeg"),
        lambda: world.form("k1"),
    ):
        with pytest.raises(IdempotencyKeyReused) as refused:
            reuse()
        # Then each is a 422 IDEMPOTENCY_KEY_REUSED, and still only the first task exists
        assert (refused.value.status, refused.value.code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert world.tasks_of() == 1


def test_the_request_is_its_validated_fields_not_its_text(world):
    # Given a submit that declared nothing
    first = world.ticket("k1", content_type=None, size=None)
    # When the same key comes with the same (absent) fields, Then it is a replay
    assert world.ticket("k1", content_type=None, size=None).value.task_id == first.value.task_id


class _StoreWithARetryMeanwhile(FakeTaskStore):
    """A store whose first create lets `meanwhile` run first: a retry that arrives while the submit is handled."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], None] | None = None

    def create(self, task: Task) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile:
            meanwhile()
        super().create(task)


def test_a_retry_while_the_first_is_still_handled_is_told_so(world):
    # Given a first submit still running when its retry arrives
    world.tasks = _StoreWithARetryMeanwhile()
    outcome: list[RequestInProgress] = []

    def retry() -> None:
        with pytest.raises(RequestInProgress) as refused:
            world.ticket("k1")
        outcome.append(refused.value)

    world.tasks.meanwhile = retry
    first = world.ticket("k1")
    # Then the retry got 409 REQUEST_IN_PROGRESS, and the first its task: one task
    assert [(e.status, e.code) for e in outcome] == [(409, "REQUEST_IN_PROGRESS")]
    assert world.tasks_of() == 1
    assert world.ticket("k1").value.task_id == first.value.task_id


def test_keys_belong_to_their_client(world):
    # Given a submit with a key from one client
    mine = world.ticket("k1")
    # When another client sends the same key and request, Then it gets a task of its own
    theirs = world.ticket("k1", client=SOMEONE_ELSE)
    assert (theirs.replayed, theirs.value.task_id != mine.value.task_id) == (False, True)
    assert key_scope(ME) != key_scope(SOMEONE_ELSE)


def test_a_refused_submit_keeps_nothing_so_its_retry_runs_again(world):
    # Given a client at its allowance: its keyed submit is refused with 429
    world.settings = replace(world.settings, max_waiting_tasks_per_client=1)
    world.ticket(None)
    with pytest.raises(TooManyTasks):
        world.ticket("k1")
    # When a place frees (the settings allow more) and it retries with the same key
    world.settings = replace(world.settings, max_waiting_tasks_per_client=2)
    retried = world.ticket("k1")
    # Then the retry ran: a new task, not a replayed refusal
    assert retried.replayed is False
    assert world.tasks_of() == 2


@pytest.mark.parametrize("state", [TaskState.QUEUED, TaskState.PROCESSING, TaskState.SUCCESS, TaskState.FAILURE])
def test_a_replay_after_the_upload_landed_points_at_the_task_instead_of_a_new_form(world, state):
    # Given a keyed submit whose task went past PENDING
    task_id = world.ticket("k1").value.task_id
    now = world.clock()
    assert world.tasks.mark_queued(task_id, now, opened_since=now - timedelta(hours=1))
    if state is not TaskState.QUEUED:
        assert world.tasks.mark_processing(task_id, now)
    if state is TaskState.SUCCESS:
        assert world.tasks.mark_succeeded(task_id, now)
    if state is TaskState.FAILURE:
        assert world.tasks.mark_failed(task_id, "CORRUPT_IMAGE", "Bad.", now)
    # When the request is replayed
    with pytest.raises(UploadClosed) as closed:
        world.ticket("k1")
    # Then it is 409 UPLOAD_CLOSED naming the task: no form that could land a second upload
    assert (closed.value.status, closed.value.code, closed.value.task_id) == (409, "UPLOAD_CLOSED", task_id)
    assert f"/status/{task_id}" in closed.value.message


def test_a_replay_after_the_upload_link_expired_gets_no_new_form(world):
    # Given a keyed submit, and its form's 15 minutes gone by
    task_id = world.ticket("k1").value.task_id
    world.clock.advance(SETTINGS.upload_url_seconds)
    # When the request is replayed, Then no form: the intake would refuse its upload
    with pytest.raises(UploadClosed) as closed:
        world.ticket("k1")
    assert closed.value.task_id == task_id
    assert "expired" in closed.value.message


def test_a_replay_of_a_cancelled_task_gets_no_new_form(world):
    # Given a keyed submit whose task was cancelled before its upload
    task_id = world.ticket("k1").value.task_id
    assert world.tasks.mark_cancelled(task_id, world.clock())
    # When it is replayed, Then 409 UPLOAD_CLOSED: a cancelled task takes no upload
    with pytest.raises(UploadClosed) as closed:
        world.ticket("k1")
    assert "CANCELLED" in closed.value.message


def test_a_replay_for_a_deleted_task_is_404(world):
    # Given a keyed submit whose task was deleted
    world.tasks.delete(world.ticket("k1").value.task_id)
    # When it is replayed, Then 404: the key's task is gone
    with pytest.raises(TaskNotFound):
        world.ticket("k1")


def test_a_retried_form_upload_returns_the_same_task_and_stores_the_image_once(world):
    # Given a form upload with a key
    first = world.form("k1")
    # When the same image comes again with that key
    again = world.form("k1")
    # Then the same task, one task, one stored upload
    assert (again.value, again.replayed) == (first.value, True)
    assert world.tasks_of() == 1
    assert list(world.media.objects) == [f"uploads/{first.value}"]


def test_a_form_upload_is_the_same_request_when_its_image_is(world):
    # Given a form upload with a key
    world.form("k1")
    # When the key comes with other bytes, Then 422
    with pytest.raises(IdempotencyKeyReused):
        world.form("k1", PNG + b"\1")
    # And the fingerprint is the image's hash (the form's other parts never reach it)
    (fingerprint, _), *_ = world.records.records.values()
    assert fingerprint == {"route": "POST /upload", "image_sha256": hashlib.sha256(PNG).hexdigest()}


def test_a_webhook_is_part_of_the_request_and_is_kept_on_the_task(world):
    # Given a first submit with a key and a webhook
    hook = Webhook("https://hooks.example/a", ("succeeded",))
    first = submit_presigned_upload(
        world.tasks,
        world.media,
        world.settings,
        world.clock(),
        client=ME,
        content_type="image/png",
        size=100,
        idempotency=Idempotency(world.records, "k-hook"),
        webhook=hook,
    )
    # Then the task carries it (the webhook consumer reads it there)
    stored = world.tasks.get(first.value.task_id)
    assert stored is not None
    assert stored.webhook == hook
    # And the same key with another webhook is another request: refused, nothing created
    with pytest.raises(IdempotencyKeyReused):
        submit_presigned_upload(
            world.tasks,
            world.media,
            world.settings,
            world.clock(),
            client=ME,
            content_type="image/png",
            size=100,
            idempotency=Idempotency(world.records, "k-hook"),
            webhook=Webhook("https://hooks.example/b", ("succeeded",)),
        )
    assert world.tasks_of() == 1


def test_an_email_request_is_part_of_the_request_and_is_kept_on_the_task(world):
    # Given a first submit with a key that asks for an email
    def submit(notify_email: bool):
        return submit_presigned_upload(
            world.tasks,
            world.media,
            world.settings,
            world.clock(),
            client=ME,
            content_type="image/png",
            size=100,
            idempotency=Idempotency(world.records, "k-mail"),
            owner="ada",
            notify_email=notify_email,
        )

    first = submit(True)
    # Then the task carries the wish (EmailFunction reads it there)
    stored = world.tasks.get(first.value.task_id)
    assert stored is not None
    assert stored.notify_email is True
    # And the same key without the email is another request: refused, nothing created
    with pytest.raises(IdempotencyKeyReused):
        submit(False)
    assert world.tasks_of() == 1
