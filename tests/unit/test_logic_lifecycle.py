"""Cancel and delete (leyline.logic.lifecycle) and how the model run obeys them (leyline.logic.processing), on the
in-memory fakes. Queue arithmetic runs on a clock that stands still; the tests that run the model for real (it
decodes the upload in a forked child) are marked integration and shorten it through Settings."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from leyline.config import Settings
from leyline.errors import TaskCancelled, TaskExpired, TaskFinished, TaskNotFound
from leyline.logic.jobs import give_up
from leyline.logic.lifecycle import cancel_task, delete_task
from leyline.logic.processing import Outcome, run_model
from leyline.logic.tasks import UPLOAD_EXPIRED_MESSAGE, create_presigned_upload, get_status, video_location
from leyline.media.video import render_video
from leyline.models import TaskState, UploadJob, upload_key, video_key
from tests import imagefactory
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeSlotWakes, FakeTaskStore

MODEL = int(SETTINGS.model_seconds)
ME = "198.51.100.1"


class World:
    """A store, storage and a clock, and the steps a task takes through them."""

    def __init__(self, settings: Settings = SETTINGS, tasks: FakeTaskStore | None = None) -> None:
        self.settings = settings
        self.clock, self.tasks, self.media = FakeClock(), tasks or FakeTaskStore(), FakeMediaStorage()
        self.wakes = FakeSlotWakes()

    def ticket(self) -> str:
        return create_presigned_upload(self.tasks, self.media, self.settings, self.clock(), client=ME).task_id

    def queued(self) -> str:
        """A task whose upload (a real PNG) landed and took its place in line."""
        task_id = self.ticket()
        self.media.put(upload_key(task_id), imagefactory.png(), "image/png")
        assert self.tasks.mark_queued(task_id, self.clock(), opened_since=self.clock() - timedelta(hours=1))
        return task_id

    def status(self, task_id: str) -> dict[str, object]:
        return get_status(self.tasks, self.media, self.settings, task_id, self.clock()).to_json()

    def cancel(self, task_id: str) -> dict[str, object]:
        return cancel_task(self.tasks, self.media, self.wakes, self.settings, task_id, self.clock()).to_json()

    def delete(self, task_id: str) -> None:
        delete_task(self.tasks, self.media, self.wakes, self.settings, task_id, self.clock())

    def run(self, task_id: str) -> Outcome:
        job = UploadJob(task_id=task_id, bucket="media", key=upload_key(task_id), size=0)
        return run_model(self.tasks, self.media, self.settings, job, self.clock, wakes=self.wakes)


@pytest.fixture
def world() -> World:
    return World(replace(SETTINGS, max_waiting_tasks_per_client=100, slot_wake_queue_url="wakes"))


def _in_line(status: dict[str, object]) -> tuple[object, object]:
    return status["queue_position"], status["eta_seconds"]


# ---- cancel ------------------------------------------------------------------------------------
def test_cancelling_the_middle_of_three_moves_the_last_up_and_saves_one_model_run(world):
    # Given three tasks in line, the first not yet in the model
    first, middle, last = world.queued(), world.queued(), world.queued()
    assert _in_line(world.status(last)) == (2, 3 * MODEL)

    # When the middle one is cancelled
    cancelled = world.cancel(middle)

    # Then it is CANCELLED with no place in line, no ETA, no error, and when it ended
    assert cancelled["state"] == "CANCELLED"
    assert _in_line(cancelled) == (None, None)
    assert (cancelled["error"], cancelled["video_url"]) == (None, None)
    assert cancelled["finished_at"] is not None

    # And on their very next status read the first keeps its place and the last moves up: a model run sooner
    assert _in_line(world.status(first)) == (0, MODEL)
    assert _in_line(world.status(last)) == (1, 2 * MODEL)


def test_the_model_skips_a_task_cancelled_in_line_without_spending_any_time_on_it(world):
    # Given a task in line, cancelled
    task_id = world.queued()
    world.cancel(task_id)

    # When the model reaches its job
    started = time.monotonic()
    outcome = world.run(task_id)

    # Then it does not run it: no start, no progress, no video, and at once
    assert (outcome.ran, outcome.state) == (False, "CANCELLED")
    assert time.monotonic() - started < 1
    status = world.status(task_id)
    assert (status["state"], status["started_at"], status["progress"]) == ("CANCELLED", None, 0)
    assert video_key(task_id) not in world.media.objects


def test_a_task_waiting_for_its_upload_can_be_cancelled_and_frees_its_clients_place():
    # Given a client at its allowance of two unfinished tasks, one still waiting for its upload
    limited = World(replace(SETTINGS, max_waiting_tasks_per_client=2))
    waiting, _ = limited.ticket(), limited.queued()
    assert limited.tasks.client_backlog(ME, limited.clock() - timedelta(hours=1)).unfinished == 2

    # When the waiting one is cancelled
    assert limited.cancel(waiting)["state"] == "CANCELLED"

    # Then it no longer counts against the client, which may create another task
    assert limited.tasks.client_backlog(ME, limited.clock() - timedelta(hours=1)).unfinished == 1
    assert limited.ticket()


def test_cancelling_a_cancelled_task_answers_the_same_status_again(world):
    # Given a cancelled task
    task_id = world.queued()
    first = world.cancel(task_id)

    # When it is cancelled again a little later
    world.clock.advance(5)
    again = world.cancel(task_id)

    # Then the answer is the same object, its finished_at that of the first cancel
    assert again == first


@pytest.mark.parametrize("ended", [TaskState.SUCCESS, TaskState.FAILURE])
def test_a_finished_task_cannot_be_cancelled(world, ended):
    # Given a task that ended
    task_id = world.queued()
    assert world.tasks.mark_processing(task_id, world.clock())
    if ended is TaskState.SUCCESS:
        assert world.tasks.mark_succeeded(task_id, world.clock())
    else:
        assert world.tasks.mark_failed(task_id, "CORRUPT_IMAGE", "Corrupt.", world.clock())
    before = world.status(task_id)

    # When it is cancelled, Then that is refused as TASK_FINISHED (409) and the task is as it was
    with pytest.raises(TaskFinished) as refused:
        world.cancel(task_id)
    assert (refused.value.code, refused.value.status) == ("TASK_FINISHED", 409)
    assert world.status(task_id) == before


def test_a_task_shown_as_upload_expired_cannot_be_cancelled(world):
    # Given a task whose upload never came, shown as FAILURE UPLOAD_EXPIRED once its window closed
    task_id = world.ticket()
    world.clock.advance(3600)
    assert world.status(task_id)["error"] == {"code": "UPLOAD_EXPIRED", "message": UPLOAD_EXPIRED_MESSAGE}

    # When it is cancelled, Then it is finished as far as anyone can see: 409, and it stays shown so
    with pytest.raises(TaskFinished, match="UPLOAD_EXPIRED"):
        world.cancel(task_id)
    assert world.status(task_id)["state"] == "FAILURE"


def test_an_unknown_or_expired_task_cannot_be_cancelled(world):
    with pytest.raises(TaskNotFound):
        world.cancel("3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c")
    task_id = world.queued()
    world.clock.advance(8 * 86400)
    with pytest.raises(TaskExpired):
        world.cancel(task_id)


class _FinishesFirst(FakeTaskStore):
    """A store where the model's SUCCESS lands between the cancel's read and its write."""

    def mark_cancelled(self, task_id: str, now: datetime) -> bool:
        assert self.mark_succeeded(task_id, now)
        return super().mark_cancelled(task_id, now)


def test_a_cancel_that_loses_the_race_to_success_is_refused_and_the_success_stands():
    # Given a task in the model that finishes just as the cancel is written
    world = World(tasks=_FinishesFirst())
    task_id = world.queued()
    assert world.tasks.mark_processing(task_id, world.clock())

    # When it is cancelled, Then the cancel is TASK_FINISHED and the task one SUCCESS
    with pytest.raises(TaskFinished):
        world.cancel(task_id)
    assert world.status(task_id)["state"] == "SUCCESS"


def test_a_cancelled_task_has_no_video_to_redirect_to(world):
    task_id = world.queued()
    world.cancel(task_id)
    with pytest.raises(TaskCancelled) as refused:
        video_location(world.tasks, world.media, world.settings, task_id, world.clock(), attachment=False)
    assert (refused.value.code, refused.value.status) == ("TASK_CANCELLED", 409)


def test_a_job_that_comes_back_after_a_cancel_never_revives_its_task(world):
    # Given a task that was in the model when it was cancelled (its run then crashed, say)
    task_id = world.queued()
    assert world.tasks.mark_processing(task_id, world.clock())
    assert world.tasks.set_progress(task_id, 40)
    world.cancel(task_id)

    # When its job comes back to the model, and later to the dead-letter function
    outcome = world.run(task_id)
    given_up = give_up(
        world.tasks, world.wakes, world.settings, UploadJob(task_id, "media", upload_key(task_id), 0), world.clock()
    )

    # Then neither moves it: it stays CANCELLED at the progress it had, with no video
    assert (outcome.ran, given_up) == (False, False)
    status = world.status(task_id)
    assert (status["state"], status["progress"], status["error"]) == ("CANCELLED", 40, None)
    assert video_key(task_id) not in world.media.objects


def test_cancelling_a_task_in_the_model_wakes_the_dispatcher_and_one_waiting_for_its_upload_does_not(world):
    # Given a task in the model (it holds a slot) and one still waiting for its upload (it holds none)
    running, waiting = world.queued(), world.ticket()
    assert world.tasks.take_slot(running, world.clock(), slots=1) == 1

    # When both are cancelled
    world.cancel(waiting)
    assert world.wakes.sent == []
    world.cancel(running)

    # Then only the running one's cancel woke the dispatcher, once, after its slot was free
    assert world.wakes.sent == [world.settings.slot_wake_queue_url]
    assert world.tasks.line_summary(running).free_slot(1) == 1


def test_a_cancel_whose_wake_sqs_refuses_still_cancels_the_task(world):
    # Given a task in the model, and a wake queue that refuses every send
    task_id = world.queued()
    assert world.tasks.take_slot(task_id, world.clock(), slots=1) == 1
    world.wakes.refuse = True

    # When it is cancelled, Then the cancel answers CANCELLED and its slot is free all the same
    assert world.cancel(task_id)["state"] == "CANCELLED"
    assert world.tasks.line_summary(task_id).free_slot(1) == 1


def test_a_dead_job_that_fails_its_task_in_the_model_wakes_the_dispatcher(world):
    # Given a task in the model whose run kept crashing
    task_id = world.queued()
    assert world.tasks.take_slot(task_id, world.clock(), slots=1) == 1

    # When its job reaches the dead-letter function (twice: a repeated delivery)
    job = UploadJob(task_id, "media", upload_key(task_id), 0)
    assert give_up(world.tasks, world.wakes, world.settings, job, world.clock()) is True
    assert give_up(world.tasks, world.wakes, world.settings, job, world.clock()) is False

    # Then the one FAILURE that freed its slot woke the dispatcher
    assert world.wakes.sent == [world.settings.slot_wake_queue_url]


# ---- delete ------------------------------------------------------------------------------------
def test_deleting_a_finished_task_removes_its_upload_video_and_record(world):
    # Given a task that succeeded, with its upload and its video stored
    task_id = world.queued()
    assert world.tasks.mark_processing(task_id, world.clock())
    world.media.put(video_key(task_id), b"video", "video/mp4")
    assert world.tasks.mark_succeeded(task_id, world.clock())

    # When it is deleted
    world.delete(task_id)

    # Then nothing of it is left, and it is unknown from then on
    assert world.media.objects == {}
    assert world.tasks.get(task_id) is None
    with pytest.raises(TaskNotFound):
        world.status(task_id)
    with pytest.raises(TaskNotFound):
        world.delete(task_id)


def test_deleting_a_task_in_the_model_wakes_the_dispatcher(world):
    # Given a task in the model
    task_id = world.queued()
    assert world.tasks.take_slot(task_id, world.clock(), slots=1) == 1

    # When it is deleted, Then its cancel freed the slot and woke the dispatcher
    world.delete(task_id)
    assert world.wakes.sent == [world.settings.slot_wake_queue_url]
    assert world.tasks.line_summary(task_id).free_slot(1) == 1


def test_deleting_a_task_in_line_takes_it_out_of_the_line(world):
    # Given two tasks in line
    first, second = world.queued(), world.queued()

    # When the first is deleted
    world.delete(first)

    # Then the second is next, its upload stays, the first's is gone, and the model skips the first's job
    assert _in_line(world.status(second)) == (0, MODEL)
    assert set(world.media.objects) == {upload_key(second)}
    assert world.run(first).ran is False


def test_deleting_an_expired_task_removes_it_too(world):
    task_id = world.queued()
    world.clock.advance(8 * 86400)
    world.delete(task_id)
    assert world.tasks.get(task_id) is None
    assert world.media.objects == {}


# ---- the model run -----------------------------------------------------------------------------
def _run_in_background(world: World, task_id: str) -> tuple[threading.Thread, list[Outcome]]:
    outcomes: list[Outcome] = []
    thread = threading.Thread(target=lambda: outcomes.append(world.run(task_id)), name="model")
    thread.start()
    return thread, outcomes


def _wait_for_progress(world: World, task_id: str, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (task := world.tasks.get(task_id)) is not None and task.progress < at_least:
        assert time.monotonic() < deadline, f"no progress {at_least} within {timeout} s"
        time.sleep(0.02)
    assert task is not None
    return task.progress


@pytest.mark.integration  # the model decodes the upload in a forked child
@pytest.mark.parametrize("how", ["cancel", "delete"])
def test_a_run_in_the_model_stops_within_2_s_of_a_cancel_or_delete_and_stores_nothing(how):
    # Given a task running in a model that takes 10 s, some way in
    world = World(replace(SETTINGS, model_seconds=10))
    task_id = world.queued()
    thread, outcomes = _run_in_background(world, task_id)
    progress = _wait_for_progress(world, task_id, at_least=3)

    # When it is cancelled (or deleted)
    asked = time.monotonic()
    if how == "cancel":
        assert world.cancel(task_id)["state"] == "CANCELLED"
    else:
        world.delete(task_id)
    thread.join(timeout=30)

    # Then the run ends normally within 2 s, its encoder stopped with it, and no video is stored
    assert not thread.is_alive()
    assert time.monotonic() - asked < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("encode")]
    assert len(outcomes) == 1
    assert video_key(task_id) not in world.media.objects
    if how == "cancel":
        # And the task stays CANCELLED with the progress it had (a write or two may have landed meanwhile)
        assert outcomes[0].state == "CANCELLED"
        task = world.tasks.get(task_id)
        assert task is not None
        assert task.state is TaskState.CANCELLED
        assert progress <= task.progress < 99
    else:
        assert outcomes[0].state == "UNKNOWN_TASK"
        assert world.media.objects == {}


class _CancelledWhileStoring(FakeTaskStore):
    """A store where a cancel lands after the model stored the video and before its SUCCESS."""

    def __init__(self, media: FakeMediaStorage) -> None:
        super().__init__()
        self.media = media
        self.video_was_stored = False

    def mark_succeeded(self, task_id: str, now: datetime) -> bool:
        self.video_was_stored = video_key(task_id) in self.media.objects
        assert self.mark_cancelled(task_id, now)
        return super().mark_succeeded(task_id, now)


@pytest.mark.integration  # the model decodes the upload in a forked child
def test_a_cancel_between_storing_the_video_and_success_leaves_no_video():
    # Given a model run whose cancel lands once the video is stored, just before SUCCESS is written
    world = World(replace(SETTINGS, model_seconds=1))
    store = _CancelledWhileStoring(world.media)
    world.tasks = store
    task_id = world.queued()

    # When the run ends
    outcome = world.run(task_id)

    # Then SUCCESS was refused, the video it had stored is deleted, and the task is one CANCELLED
    assert store.video_was_stored
    assert outcome.state == "CANCELLED"
    assert video_key(task_id) not in world.media.objects
    assert world.status(task_id)["state"] == "CANCELLED"


def test_the_encoder_stops_at_the_frame_its_progress_callback_raises():
    # Given an encode whose progress callback raises at its 5th frame (the model's abort hook)
    class Stop(Exception):
        pass

    calls: list[float] = []

    def on_progress(fraction: float) -> None:
        calls.append(fraction)
        if len(calls) == 5:
            raise Stop

    # When it runs, Then the exception comes out of render_video and no further frame is encoded
    with pytest.raises(Stop):
        render_video(imagefactory.two_tone(), on_progress=on_progress)
    assert len(calls) == 5
