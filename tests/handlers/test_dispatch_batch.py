"""DispatchFunction's batches over the real handler and moto (issue 15): the line's event source mapping hands it
up to one job per model slot (BatchSize min(ModelSlots, 10)), which it starts one after the other in line order,
each in the next free slot, so slots that free together are taken in one invocation; a job that fails hands
itself and the jobs after it back to the line after a short backoff, not after JobsQueue's visibility timeout."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from leyline.logic.retries import retry_backoff_seconds
from leyline.models import TaskState
from tests.handlers.support import cold_start, receive_as_lambda_event, status_of
from tests.handlers.test_slot_wakes import consumed, in_its_slot, in_line
from tests.handlers.test_task_lifecycle import cancel
from tests.lambda_context import FakeLambdaContext
from tests.reliability.support import eventually


@pytest.fixture
def two_slots(template, monkeypatch):
    for spec in template.functions.values():
        monkeypatch.setitem(spec.environment, "MODEL_SLOTS", "2")


def line_batch(aws, template, count: int):
    return receive_as_lambda_event(aws, template.queue_url("JobsQueue"), "sqs-jobs-record.json", count)


def task_of(record: dict[str, Any]) -> str:
    key: str = json.loads(record["body"])["detail"]["object"]["key"]
    return key.removeprefix("uploads/")


def state_and_slot(invoke, task_id: str) -> tuple[str, int | None]:
    status = status_of(invoke, task_id)[1]
    return status["state"], status.get("slot")


def test_one_invocation_starts_its_batch_in_line_order_each_in_the_next_free_slot(
    invoke, aws, template, two_slots, monkeypatch
):
    # Given two free model slots and three tasks in line, whose jobs reach the dispatcher in one batch
    first, second, third = (in_line(invoke, aws, template) for _ in range(3))
    batch = line_batch(aws, template, 3)
    assert state_and_slot(invoke, first) == (TaskState.QUEUED.value, None)
    handler = cold_start(template.functions["DispatchFunction"], monkeypatch)  # (not imported while others are)
    context = FakeLambdaContext(function_name="DispatchFunction", timeout_seconds=300)
    answers: list[object] = []

    # When the dispatcher takes the batch
    dispatcher = threading.Thread(target=lambda: answers.append(handler(batch, context)))
    dispatcher.start()

    # Then the first two start in the two slots, in line order, and the third waits for one in the same invocation
    eventually(
        lambda: state_and_slot(invoke, second) == ("PROCESSING", 2), timeout=10, what="the second in the second slot"
    )
    assert state_and_slot(invoke, first) == ("PROCESSING", 1)
    assert state_and_slot(invoke, third) == (TaskState.QUEUED.value, None)
    # And when the first slot frees (its task cancelled), the third takes it and the invocation ends with all done
    assert cancel(invoke, first)[0] == 200
    dispatcher.join(timeout=60)
    assert answers == [{"batchItemFailures": []}]
    assert state_and_slot(invoke, third) == ("PROCESSING", 1)
    handed = receive_as_lambda_event(aws, template.queue_url("SlotsQueue"), "sqs-jobs-record.json", 3)
    assert sorted(task_of(record) for record in handed["Records"]) == sorted((first, second, third))


def test_a_job_that_fails_hands_itself_and_the_jobs_after_it_back_after_a_short_backoff(
    invoke, aws, template, monkeypatch
):
    # Given the one slot taken, and two tasks in line whose jobs reach the dispatcher in one batch
    _, run = in_its_slot(invoke, aws, template)
    consumed(aws, template, "SlotsQueue", run)
    waiting = [in_line(invoke, aws, template) for _ in range(2)]
    batch = line_batch(aws, template, 2)
    handler = cold_start(template.functions["DispatchFunction"], monkeypatch)

    # When the dispatcher has no time left to wait for a slot (the first job fails; the FIFO processor runs no
    # job after a failed one)
    with pytest.raises(BatchProcessingError, match="All records failed"):  # the invocation fails: no job done
        handler(batch, FakeLambdaContext(function_name="DispatchFunction", timeout_seconds=1))

    # Then both tasks still wait in line
    assert [state_and_slot(invoke, task_id) for task_id in waiting] == [(TaskState.QUEUED.value, None)] * 2
    # And both come back to the line, in order, after the first receive's backoff, not after JobsQueue's visibility
    # timeout (30 minutes): the second job, which never ran, was handed back with the first
    time.sleep(retry_backoff_seconds(1) + 0.5)
    again = line_batch(aws, template, 2)
    assert [record["messageId"] for record in again["Records"]] == [r["messageId"] for r in batch["Records"]]
