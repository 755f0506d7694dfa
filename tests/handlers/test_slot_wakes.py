"""Model slots' wake-ups over the real handlers and moto (issue 15): each move that takes a task out of a slot
sends one wake to SlotWakeQueue right after its write (the processor's fail-fast end, a cancel, the dead-letter
FAILURE), a wake SQS refuses never fails the move, a waiting dispatch takes the slot a cancel frees, and the
adapter's wait receives the wakes that its delete then takes off the queue."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from leyline.adapters.queues import SqsQueues
from leyline.models import TaskState
from tests.handlers.support import body, dead_job_event, receive_as_lambda_event, status_of
from tests.handlers.test_task_lifecycle import cancel, delete, tasks_table
from tests.sample_events import sample_event

NO_SUCH_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/no-such-queue"


def wakes_waiting(aws, template) -> int:
    """Wakes on SlotWakeQueue, visible or received and not deleted."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=template.queue_url("SlotWakeQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def consumed(aws, template, queue: str, event: dict[str, Any]) -> None:
    """The event's message deleted, as the event source mapping does after a handler's success (it frees the
    message's FIFO group for the next one)."""
    receipt = event["Records"][0]["receiptHandle"]
    aws.client("sqs").delete_message(QueueUrl=template.queue_url(queue), ReceiptHandle=receipt)


def in_line(invoke, aws, template) -> str:
    """A form upload the intake put in line (its upload event consumed): its job waits on JobsQueue."""
    task_id = body(invoke("ApiFunction", sample_event("http-form-upload.json")))["task_id"]
    intake = receive_as_lambda_event(aws, template.queue_url("IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", intake) == {"batchItemFailures": []}
    consumed(aws, template, "IntakeQueue", intake)
    return task_id


def queued_task(invoke, aws, template) -> tuple[str, dict[str, Any]]:
    """A task in line, and its job as the dispatcher receives it."""
    task_id = in_line(invoke, aws, template)
    return task_id, receive_as_lambda_event(aws, template.queue_url("JobsQueue"), "sqs-jobs-record.json")


def in_its_slot(invoke, aws, template) -> tuple[str, dict[str, Any]]:
    """A task the dispatcher started in a slot; its job as the slot's processor would receive it."""
    task_id, job = queued_task(invoke, aws, template)
    assert invoke("DispatchFunction", job) == {"batchItemFailures": []}
    consumed(aws, template, "JobsQueue", job)
    assert status_of(invoke, task_id)[1]["state"] == "PROCESSING"
    return task_id, receive_as_lambda_event(aws, template.queue_url("SlotsQueue"), "sqs-jobs-record.json")


def test_cancelling_a_task_in_its_slot_wakes_the_dispatcher(invoke, aws, template):
    # Given a task in a model slot, and no wake waiting
    task_id, _ = in_its_slot(invoke, aws, template)
    assert wakes_waiting(aws, template) == 0

    # When it is cancelled through the API
    assert cancel(invoke, task_id)[0] == 200

    # Then one wake waits for the dispatcher
    assert wakes_waiting(aws, template) == 1


def test_deleting_a_task_in_its_slot_wakes_the_dispatcher(invoke, aws, template):
    # Given a task in a model slot
    task_id, _ = in_its_slot(invoke, aws, template)

    # When it is deleted, Then its cancel woke the dispatcher
    assert delete(invoke, task_id)["statusCode"] == 204
    assert wakes_waiting(aws, template) == 1


def test_a_run_that_fails_fast_wakes_the_dispatcher(invoke, aws, template):
    # Given a task in a model slot whose upload is gone (the run fails at once, UPLOAD_MISSING, without a decode)
    task_id, job = in_its_slot(invoke, aws, template)
    aws.client("s3").delete_object(Bucket=template.physical_name("MediaBucket"), Key=f"uploads/{task_id}")

    # When its slot runs it
    assert invoke("ProcessorFunction", job) == {"batchItemFailures": []}

    # Then it ended FAILURE and woke the dispatcher
    assert status_of(invoke, task_id)[1]["error"]["code"] == "UPLOAD_MISSING"
    assert wakes_waiting(aws, template) == 1


def test_a_dead_job_that_fails_its_task_in_its_slot_wakes_the_dispatcher(invoke, aws, template):
    # Given a task in a model slot whose run kept crashing
    task_id, _ = in_its_slot(invoke, aws, template)

    # When its job reaches the dead-letter function
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}

    # Then it is FAILURE and the dispatcher was woken
    assert status_of(invoke, task_id)[1]["error"]["code"] == "PROCESSING_FAILED"
    assert wakes_waiting(aws, template) == 1


@pytest.mark.parametrize("function", ["ApiFunction", "ProcessorFunction"])
def test_a_wake_sqs_refuses_does_not_fail_the_move(invoke, aws, template, monkeypatch, function):
    # Given a function whose wake queue does not exist (every send refused), and a task in a model slot
    monkeypatch.setitem(template.functions[function].environment, "SLOT_WAKE_QUEUE_URL", NO_SUCH_QUEUE)
    task_id, job = in_its_slot(invoke, aws, template)

    # When it moves the task out of its slot: a cancel, or a run that fails fast
    if function == "ApiFunction":
        code, answer = cancel(invoke, task_id)
        assert (code, answer["state"]) == (200, "CANCELLED")
    else:
        aws.client("s3").delete_object(Bucket=template.physical_name("MediaBucket"), Key=f"uploads/{task_id}")
        assert invoke("ProcessorFunction", job) == {"batchItemFailures": []}

    # Then the move stands and its slot is free for the next task (the dispatcher finds it at its fallback read)
    assert status_of(invoke, task_id)[1]["state"] in ("CANCELLED", "FAILURE")
    assert tasks_table(aws, template).line_summary(task_id).free_slot(1) == 1
    assert wakes_waiting(aws, template) == 0


def test_a_waiting_dispatch_takes_the_slot_a_cancel_frees(invoke, aws, template):
    # Given the one model slot taken, and the next task's job handed to the dispatcher, which waits
    first, run = in_its_slot(invoke, aws, template)
    consumed(aws, template, "SlotsQueue", run)  # (its run's message, so that the slot's group can take the next)
    second, job = queued_task(invoke, aws, template)
    answers: list[object] = []
    dispatcher = threading.Thread(target=lambda: answers.append(invoke("DispatchFunction", job)))
    dispatcher.start()
    assert status_of(invoke, second)[1]["state"] == "QUEUED"

    # When the running task is cancelled
    assert cancel(invoke, first)[0] == 200
    dispatcher.join(timeout=60)

    # Then the waiting dispatch took its slot and handed the job to it
    assert answers == [{"batchItemFailures": []}]
    status = status_of(invoke, second)[1]
    assert (status["state"], status["slot"]) == (TaskState.PROCESSING.value, 1)
    handed = receive_as_lambda_event(aws, template.queue_url("SlotsQueue"), "sqs-jobs-record.json")
    assert second in handed["Records"][0]["body"]


def test_a_wait_receives_the_wakes_and_deleting_them_takes_them_off_the_queue(aws, template):
    # Given three wakes sent (three slots freed while nobody waited)
    queues, url = SqsQueues(aws.client("sqs")), template.queue_url("SlotWakeQueue")
    for _ in range(3):
        queues.wake(url)

    # When the dispatcher waits, Then it returns with all three, hidden from the next wait but still queued
    received = queues.wait_for_wake(url, 2)
    assert len(received) == 3
    assert queues.wait_for_wake(url, 0.1) == []
    assert wakes_waiting(aws, template) == 3

    # And when it deletes them (after its start), they are gone
    queues.delete_wakes(url, received)
    assert wakes_waiting(aws, template) == 0


def test_the_dispatcher_and_every_function_that_frees_a_slot_are_given_the_wake_queue(template):
    # Given the template's functions, Then those that free a slot and the dispatcher know SlotWakeQueue
    url = template.queue_url("SlotWakeQueue")
    for function in ("ApiFunction", "ProcessorFunction", "DeadLetterFunction", "DispatchFunction"):
        assert template.functions[function].environment["SLOT_WAKE_QUEUE_URL"] == url, function
