"""leyline.logic.tasks on the in-memory fakes: queue positions and ETAs, the per-client allowance and its
Retry-After, the upload window, and what a status says. No AWS, no process: plain arithmetic on a clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from leyline.config import Settings
from leyline.errors import InvalidImage, TooManyTasks
from leyline.logic.tasks import create_form_upload, create_presigned_upload, get_status
from leyline.models import TaskState, from_epoch, upload_key
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeTaskStore

MODEL = int(SETTINGS.model_seconds)
ME = "198.51.100.1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class World:
    """A store, storage and a clock, and the steps a task takes through them."""

    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.settings = settings
        self.clock, self.tasks, self.media = FakeClock(), FakeTaskStore(), FakeMediaStorage()

    def ticket(self, client: str = ME) -> str:
        return create_presigned_upload(self.tasks, self.media, self.settings, self.clock(), client=client).task_id

    def queued(self, client: str = ME) -> str:
        task_id = self.ticket(client)
        assert self.tasks.mark_queued(task_id, self.clock(), opened_since=self.clock() - timedelta(hours=1))
        return task_id

    def status(self, task_id: str) -> dict[str, object]:
        return get_status(self.tasks, self.media, self.settings, task_id, self.clock()).to_json()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def line() -> World:
    """A world whose per-client allowance no test of the line reaches."""
    return World(replace(SETTINGS, max_waiting_tasks_per_client=100))


def test_the_first_task_in_line_is_next_and_one_model_run_away(world):
    # Given one task in line
    task_id = world.queued()
    # Then nobody is ahead, and its video is one model run away
    status = world.status(task_id)
    assert (status["state"], status["queue_position"], status["eta_seconds"]) == ("QUEUED", 0, MODEL)


def test_behind_a_running_head_the_eta_counts_what_the_head_has_left(line):
    # Given a task that entered the model 10 s ago and one waiting behind it
    head, behind = line.queued(), line.queued()
    assert line.tasks.mark_processing(head, line.clock())
    line.clock.advance(10)
    # Then the head has 20 s left, and the one behind it its own run after that
    assert (line.status(head)["queue_position"], line.status(head)["eta_seconds"]) == (0, MODEL - 10)
    assert (line.status(behind)["queue_position"], line.status(behind)["eta_seconds"]) == (1, MODEL - 10 + MODEL)


def test_behind_a_head_not_yet_started_the_eta_counts_its_whole_run(line):
    # Given two tasks in line, the head not yet in the model
    line.queued()
    behind = line.queued()
    line.clock.advance(10)
    # Then the one behind waits for a whole run, then its own
    assert (line.status(behind)["queue_position"], line.status(behind)["eta_seconds"]) == (1, 2 * MODEL)


def test_with_several_ahead_each_adds_a_whole_run(line):
    # Given a head running for 10 s and two more waiting before the task
    head = line.queued()
    line.queued(), line.queued()
    task_id = line.queued()
    assert line.tasks.mark_processing(head, line.clock())
    line.clock.advance(10)
    # Then 3 are ahead: 20 s left of the head, two whole runs, then its own
    assert (line.status(task_id)["queue_position"], line.status(task_id)["eta_seconds"]) == (
        3,
        20 + 2 * MODEL + MODEL,
    )
    # And a finished head leaves the line: everyone moves up
    assert line.tasks.mark_succeeded(head, line.clock())
    assert (line.status(task_id)["queue_position"], line.status(task_id)["eta_seconds"]) == (2, 3 * MODEL)


def test_a_head_past_its_model_time_counts_as_done_not_negative(line):
    head, behind = line.queued(), line.queued()
    assert line.tasks.mark_processing(head, line.clock())
    line.clock.advance(MODEL + 50)
    assert line.status(head)["eta_seconds"] == 0
    assert line.status(behind)["eta_seconds"] == MODEL


def test_a_task_waiting_for_its_upload_has_no_place_and_no_eta(world):
    status = world.status(world.ticket())
    assert (status["state"], status["queue_position"], status["eta_seconds"]) == ("PENDING", None, None)


def test_a_pending_task_past_its_upload_window_is_shown_as_upload_expired(world):
    # Given a ticket whose upload never came
    task_id = world.ticket()
    created = world.clock()

    # When 20 minutes (15 min link + 5 min grace) have passed, Then it is still PENDING
    world.clock.advance(20 * 60)
    assert world.status(task_id)["state"] == "PENDING"

    # When a moment more has passed, Then it is shown as a FAILURE that finished when the window closed
    world.clock.advance(1)
    status = world.status(task_id)
    assert status["state"] == "FAILURE"
    shown = get_status(world.tasks, world.media, SETTINGS, task_id, world.clock())
    assert shown.error is not None
    assert shown.error["code"] == "UPLOAD_EXPIRED"
    assert shown.finished_at == created + timedelta(minutes=20)
    # And only the view changed: the record still says PENDING
    record = world.tasks.get(task_id)
    assert record is not None
    assert record.state is TaskState.PENDING


def test_the_status_says_when_retention_deletes_the_task(world):
    # Given a task created now, with 7 days of retention
    task_id = world.ticket()
    # Then its status says when it, its upload and its video go
    shown = get_status(world.tasks, world.media, SETTINGS, task_id, world.clock())
    assert shown.expires_at == world.clock() + timedelta(days=SETTINGS.retention_days)
    record = world.tasks.get(task_id)
    assert record is not None
    assert shown.expires_at == from_epoch(record.expires_at)
    assert str(shown.to_json()["expires_at"]).endswith("Z")


def test_a_client_gets_at_most_its_allowance_then_retry_after_the_oldest_ticket_closes(world):
    # Given a client with its 2 tickets (the allowance), the older one 19 minutes old
    world.ticket()
    world.clock.advance(60)
    world.ticket()
    world.clock.advance(18 * 60)

    # When it asks for a third, Then it is refused until the older ticket's window closes, in 60 s
    with pytest.raises(TooManyTasks) as refused:
        world.ticket()
    assert refused.value.retry_after == 60

    # And another client is not affected
    world.ticket(client="203.0.113.7")

    # When the older ticket's window has closed, Then its place is free again
    world.clock.advance(61)
    world.ticket()


def test_with_a_task_in_line_a_place_frees_one_model_run_from_now(world):
    # Given a client at its allowance with one task in line and one fresh ticket
    world.queued()
    world.ticket()
    # Then Retry-After is one model run: sooner than the ticket's 20-minute window
    with pytest.raises(TooManyTasks) as refused:
        world.ticket()
    assert refused.value.retry_after == MODEL


def test_with_a_task_of_the_client_running_a_place_frees_when_it_is_done(world):
    # Given a client at its allowance whose task in line entered the model 10 s ago, and one fresh ticket
    running = world.queued()
    assert world.tasks.mark_processing(running, world.clock())
    world.clock.advance(10)
    world.ticket()
    # Then Retry-After is what that run has left, its ETA: not a whole model run, nor the ticket's window
    with pytest.raises(TooManyTasks) as refused:
        world.ticket()
    assert refused.value.retry_after == MODEL - 10 == world.status(running)["eta_seconds"]


def test_a_client_whose_tasks_wait_behind_others_is_told_when_its_first_one_is_done(world):
    # Given another client's task running for 5 s, then this client's two tasks waiting behind it
    other = world.queued(client="203.0.113.7")
    assert world.tasks.mark_processing(other, world.clock())
    world.clock.advance(5)
    mine = [world.queued(), world.queued()]
    # Then Retry-After is the ETA of the first of them: the other's remaining run plus its own
    with pytest.raises(TooManyTasks) as refused:
        world.ticket()
    assert refused.value.retry_after == (MODEL - 5) + MODEL == world.status(mine[0])["eta_seconds"]


def test_a_finished_task_frees_its_place(world):
    task_id = world.queued()
    world.ticket()
    assert world.tasks.mark_failed(task_id, "CORRUPT_IMAGE", "Corrupt.", world.clock())
    world.ticket()


def test_a_form_upload_is_judged_by_its_bytes_and_stored_with_their_type(world):
    # Given the bytes of a PNG and of a text file
    # When they are uploaded in a form, Then the PNG is stored under its task's key as image/png
    task = create_form_upload(world.tasks, world.media, SETTINGS, PNG, world.clock(), client="198.51.100.1")
    assert world.media.objects[upload_key(task.task_id)] == (PNG, "image/png")
    # And the text is refused before any task exists
    with pytest.raises(InvalidImage) as refused:
        create_form_upload(world.tasks, world.media, SETTINGS, b"hello", world.clock(), client="198.51.100.2")
    assert (refused.value.code, refused.value.status) == ("UNSUPPORTED_FORMAT", 415)


def test_a_declared_type_outside_the_accepted_formats_is_refused_before_a_task_exists(world):
    with pytest.raises(InvalidImage) as refused:
        create_presigned_upload(world.tasks, world.media, SETTINGS, world.clock(), client="c", content_type="image/gif")
    assert refused.value.code == "UNSUPPORTED_FORMAT"
    assert "image/png, image/jpeg, image/webp" in refused.value.message
