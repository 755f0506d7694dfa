"""leyline.logic.jobs and leyline.logic.retries on the in-memory fakes: how a landed upload joins the line
(or, too late, does not), and how long a failed message stays hidden."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leyline.logic.jobs import Admission, admit_upload, give_up, upload_job
from leyline.logic.retries import CRASH_GRACE_SECONDS, crash_retry_seconds, retry_backoff_seconds
from leyline.logic.tasks import get_status
from leyline.models import TaskState, upload_key
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeSlotWakes, FakeTaskStore, seed_task

WINDOW = timedelta(seconds=SETTINGS.upload_url_seconds) + timedelta(minutes=5)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Intake:
    def __init__(self) -> None:
        self.clock, self.tasks, self.media = FakeClock(), FakeTaskStore(), FakeMediaStorage()

    def waiting_task(self) -> str:
        return seed_task(self.tasks, TaskState.PENDING, self.clock())

    def lands(self, task_id: str) -> Admission:
        """The task's upload lands now, and the intake handles its event."""
        self.media.put(upload_key(task_id), PNG, "image/png")
        job = upload_job("media", upload_key(task_id), len(PNG))
        return admit_upload(self.tasks, self.media, SETTINGS, job, self.clock())

    def state(self, task_id: str) -> TaskState:
        task = self.tasks.get(task_id)
        assert task is not None
        return task.state


@pytest.fixture
def intake() -> Intake:
    return Intake()


def test_an_upload_within_its_window_takes_its_place_in_line(intake):
    # Given a task waiting for its upload, 19 minutes after it was created
    task_id = intake.waiting_task()
    intake.clock.advance(19 * 60)
    # When the upload lands, Then the task is QUEUED and its upload kept for the model
    assert intake.lands(task_id) is Admission.QUEUED
    assert intake.state(task_id) is TaskState.QUEUED
    assert upload_key(task_id) in intake.media.objects
    # And the same event again (S3 is at-least-once) hands the job on again without a second place
    assert intake.lands(task_id) is Admission.IN_LINE


def test_a_late_upload_never_turns_an_expired_task_into_a_run(intake):
    # Given a task whose upload window closed a moment ago: /status shows FAILURE UPLOAD_EXPIRED
    task_id = intake.waiting_task()
    intake.clock.advance(WINDOW.total_seconds() + 1)
    shown = get_status(intake.tasks, intake.media, SETTINGS, task_id, intake.clock())
    assert shown.state is TaskState.FAILURE
    assert shown.error is not None
    assert shown.error["code"] == "UPLOAD_EXPIRED"

    # When its upload lands after all
    admission = intake.lands(task_id)

    # Then it is ignored and its object removed, and the record now holds the FAILURE /status was showing
    assert admission is Admission.IGNORED
    assert upload_key(task_id) not in intake.media.objects
    after = get_status(intake.tasks, intake.media, SETTINGS, task_id, intake.clock())
    assert after == shown
    assert intake.state(task_id) is TaskState.FAILURE


@pytest.mark.parametrize("final", [TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED])
def test_an_upload_to_a_finished_task_is_ignored_and_removed(intake, final):
    # Given a finished task (its presigned POST may still be valid: it can be sent again)
    task_id = seed_task(intake.tasks, final, intake.clock())
    # When an upload for it lands, Then it is ignored, removed, and the task keeps its outcome
    assert intake.lands(task_id) is Admission.IGNORED
    assert upload_key(task_id) not in intake.media.objects
    assert intake.state(task_id) is final


def test_an_upload_for_no_task_is_ignored_and_removed(intake):
    task_id = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
    assert intake.lands(task_id) is Admission.IGNORED
    assert upload_key(task_id) not in intake.media.objects


def test_a_task_already_in_the_model_gets_its_job_handed_on_again(intake):
    task_id = intake.waiting_task()
    assert intake.lands(task_id) is Admission.QUEUED
    assert intake.tasks.mark_processing(task_id, intake.clock())
    assert intake.lands(task_id) is Admission.IN_LINE
    assert intake.state(task_id) is TaskState.PROCESSING


def test_a_dead_job_fails_its_task_unless_it_already_ended(intake):
    task_id = intake.waiting_task()
    intake.lands(task_id)
    job = upload_job("media", upload_key(task_id), len(PNG))
    assert give_up(intake.tasks, FakeSlotWakes(), SETTINGS, job, intake.clock()) is True
    assert give_up(intake.tasks, FakeSlotWakes(), SETTINGS, job, intake.clock()) is False
    task = intake.tasks.get(task_id)
    assert task is not None
    assert (task.state, task.error_code) == (TaskState.FAILURE, "PROCESSING_FAILED")


def test_a_failed_message_comes_back_after_2_4_8_seconds():
    # Given the receive count of a message that failed, Then it stays hidden a short, doubling while
    assert [retry_backoff_seconds(count) for count in (1, 2, 3)] == [2, 4, 8]


def test_a_running_job_stays_hidden_just_past_its_invocation():
    # Given 89.2 s left of the invocation, Then a crash brings the job back 10 s after the invocation's end
    assert crash_retry_seconds(89_200) == 90 + CRASH_GRACE_SECONDS
