"""The task lifecycle over the real adapters (moto): the DynamoDB writes follow leyline.states' transition
table, a run that ends after its task did leaves no trace, a late upload is never run, the status says when
retention deletes the task, and POST /tasks/{task_id}/cancel and DELETE /tasks/{task_id} over the real handlers."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from leyline.adapters.tasks_table import TaskRepository
from leyline.models import TaskState, parse_iso, utc_now
from leyline.states import can_move
from tests.fakes import TRANSITION_WRITES, seed_task
from tests.handlers.support import body, dead_job_event, receive_as_lambda_event, status_of
from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()


def tasks_table(aws, template) -> TaskRepository:
    return TaskRepository(template.functions["ApiFunction"].environment["TASKS_TABLE"], aws.client("dynamodb"))


def bucket_keys(aws, template, prefix: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=template.physical_name("MediaBucket"), Prefix=prefix)
    return [stored["Key"] for stored in listed.get("Contents", [])]


def processor_running(
    invoke, store: TaskRepository, task_id: str, job: dict[str, Any]
) -> tuple[threading.Thread, list[object]]:
    """ProcessorFunction invoked with `job` in a thread, once its task is PROCESSING; its answer lands in the list."""
    answers: list[object] = []
    run = threading.Thread(target=lambda: answers.append(invoke("ProcessorFunction", job)))
    run.start()
    deadline = time.monotonic() + 30
    while (task := store.get(task_id)) is not None and task.state is not TaskState.PROCESSING:
        assert time.monotonic() < deadline, "the model never started"
        time.sleep(0.01)
    return run, answers


def late_upload_is_dropped(invoke, aws, template, task_id: str) -> None:
    """An upload lands for `task_id` and the intake handles its event: checks nothing went to the model and the
    object was removed."""
    aws.client("s3").put_object(
        Bucket=template.physical_name("MediaBucket"), Key=f"uploads/{task_id}", Body=EXAMPLE, ContentType="image/png"
    )
    event = receive_as_lambda_event(aws, template.queue_url("IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", event) == {"batchItemFailures": []}
    jobs = aws.client("sqs").receive_message(QueueUrl=template.queue_url("JobsQueue"), WaitTimeSeconds=0)
    assert not jobs.get("Messages")
    assert bucket_keys(aws, template, "uploads/") == []


def test_the_table_s_writes_move_a_task_exactly_when_the_transition_table_allows_it(aws, template):
    # Given the real repository over the template's table, and a task in each state
    store, now = tasks_table(aws, template), utc_now()
    for source in TaskState:
        for target, write in TRANSITION_WRITES.items():
            task_id = seed_task(store, source, now)

            # When the write leading to `target` is made
            moved = write(store, task_id, now + timedelta(seconds=1))

            # Then its derived condition lets it through exactly when the table lists the move
            task = store.get(task_id)
            assert task is not None
            assert (moved, task.state) == (can_move(source, target), target if moved else source), (source, target)
        # And progress is written only inside the model
        assert store.set_progress(seed_task(store, source, now), 10) == (source is TaskState.PROCESSING)


def test_success_is_refused_once_the_task_has_failed(aws, template):
    # Given a task in the model that DeadLetterFunction (or a cancel) ended meanwhile
    store, now = tasks_table(aws, template), utc_now()
    task_id = seed_task(store, TaskState.QUEUED, now)
    assert store.mark_processing(task_id, now)
    assert store.mark_failed(task_id, "PROCESSING_FAILED", "Failed.", now)

    # When the run finishes, Then SUCCESS is refused and the task stays a FAILURE
    assert store.mark_succeeded(task_id, now + timedelta(seconds=30)) is False
    task = store.get(task_id)
    assert task is not None
    assert (task.state, task.progress, task.error_code) == (TaskState.FAILURE, 0, "PROCESSING_FAILED")


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_a_run_that_finishes_after_its_task_failed_leaves_no_video(invoke, aws, template):
    # Given a form upload handed to the model (ModelSeconds is 1 here), and the dead-letter function ready
    task_id = body(invoke("ApiFunction", sample_event("http-form-upload.json")))["task_id"]
    intake = receive_as_lambda_event(aws, template.queue_url("IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", intake) == {"batchItemFailures": []}
    job = receive_as_lambda_event(aws, template.queue_url("JobsQueue"), "sqs-jobs-record.json")
    assert invoke("DeadLetterFunction", dead_job_event(str(uuid.uuid4()))) == {"batchItemFailures": []}
    store = tasks_table(aws, template)

    # When the processor runs it, and the task ends in FAILURE while the model is at work
    run, answers = processor_running(invoke, store, task_id, job)
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}
    run.join(timeout=60)

    # Then the run ends without an error, the task stays a FAILURE, and no video is left in the bucket
    assert answers == [{"batchItemFailures": []}]
    _, answer = status_of(invoke, task_id)
    assert (answer["state"], answer["error"]["code"], answer["video_url"]) == ("FAILURE", "PROCESSING_FAILED", None)
    assert bucket_keys(aws, template, "videos/") == []


def test_a_late_upload_to_an_expired_task_is_removed_and_never_run(invoke, aws, template):
    # Given a presigned task created a day ago, shown as FAILURE UPLOAD_EXPIRED since its window closed
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    aws.client("dynamodb").update_item(
        TableName=template.functions["ApiFunction"].environment["TASKS_TABLE"],
        Key={"task_id": {"S": task_id}},
        UpdateExpression="SET created_at = :day_ago",
        ExpressionAttributeValues={":day_ago": {"S": "2026-01-01T00:00:00.000Z"}},
    )
    _, shown = status_of(invoke, task_id)
    assert (shown["state"], shown["error"]["code"]) == ("FAILURE", "UPLOAD_EXPIRED")

    # When its upload lands after all and the intake handles the event,
    # Then nothing went to the model, the object is gone, and the status is what it was
    late_upload_is_dropped(invoke, aws, template, task_id)
    assert status_of(invoke, task_id)[1] == shown


def test_the_status_says_when_retention_deletes_the_task(invoke, template):
    # Given a new task
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    # Then its status's expires_at is RetentionDays after its creation, in ISO 8601 UTC
    _, answer = status_of(invoke, task_id)
    created, expires = parse_iso(answer["created_at"]), parse_iso(answer["expires_at"])
    assert created is not None
    assert expires is not None
    assert answer["expires_at"].endswith("Z")
    retention = timedelta(days=int(template.parameters["RetentionDays"]))
    assert retention - timedelta(seconds=1) <= expires - created <= retention


def test_the_openapi_document_describes_expires_at_and_every_state(invoke):
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
    event.pop("pathParameters")
    schemas = json.loads(invoke("ApiFunction", event)["body"])["components"]["schemas"]
    status = schemas["StatusBody"]
    assert "expires_at" in status["required"]
    assert status["properties"]["expires_at"]["type"] == "string"
    assert set(schemas["TaskState"]["enum"]) == {state.value for state in TaskState}


def test_a_metric_a_status_route_emits_is_flushed(invoke, capsys):
    # Given StatusFunction, started, and a metric added while it serves a request (its routes share
    # routes.metrics with ApiFunction's)
    assert status_of(invoke, str(uuid.uuid4()))[0] == 404
    capsys.readouterr()
    sys.modules["leyline.handlers.http.routes"].metrics.add_metric(name="StatusProbe", unit="Count", value=1)

    # When it handles a request
    status_of(invoke, str(uuid.uuid4()))

    # Then the metric is published on stdout as a CloudWatch EMF line, not kept (and lost) in memory
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any("StatusProbe" in line for line in lines)


# ---- cancel and delete over the real handlers (issue 11) -----------------------------------------
def lifecycle_call(invoke, sample: str, task_id: str, method: str | None = None) -> dict[str, Any]:
    """POST /tasks/{task_id}/cancel or DELETE /tasks/{task_id} (the sample events), to ApiFunction."""
    event = sample_event(sample)
    path = event["rawPath"].replace("3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", task_id)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"task_id": task_id}
    if method:
        event["requestContext"]["http"]["method"] = method
    response: dict[str, Any] = invoke("ApiFunction", event)
    return response


def cancel(invoke, task_id: str) -> tuple[int, dict[str, Any]]:
    response = lifecycle_call(invoke, "http-cancel-task.json", task_id)
    return response["statusCode"], body(response)


def delete(invoke, task_id: str) -> dict[str, Any]:
    return lifecycle_call(invoke, "http-delete-task.json", task_id)


def queued_task(invoke, aws, template) -> tuple[str, dict[str, Any]]:
    """A form upload the intake put in line; its job (as the processor would receive it) returned too."""
    task_id = body(invoke("ApiFunction", sample_event("http-form-upload.json")))["task_id"]
    intake = receive_as_lambda_event(aws, template.queue_url("IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", intake) == {"batchItemFailures": []}
    return task_id, receive_as_lambda_event(aws, template.queue_url("JobsQueue"), "sqs-jobs-record.json")


def test_cancel_answers_the_cancelled_status_and_the_same_again(invoke, aws, template):
    # Given a task in line
    task_id, _ = queued_task(invoke, aws, template)

    # When it is cancelled, twice
    code, cancelled = cancel(invoke, task_id)
    again = cancel(invoke, task_id)

    # Then both answers are 200 with the same status object: CANCELLED, out of the line, no error, finished
    assert code == 200
    assert again == (200, cancelled)
    assert cancelled["state"] == "CANCELLED"
    assert (cancelled["queue_position"], cancelled["eta_seconds"], cancelled["error"]) == (None, None, None)
    assert cancelled["finished_at"] is not None
    assert status_of(invoke, task_id) == (200, cancelled)

    # And its video is never coming: GET /video says so
    video = sample_event("http-get-video.json")
    video["rawPath"] = video["requestContext"]["http"]["path"] = f"/video/{task_id}"
    video["pathParameters"] = {"task_id": task_id}
    answer = invoke("StatusFunction", video)
    assert (answer["statusCode"], body(answer)["error"]["code"]) == (409, "TASK_CANCELLED")


def test_cancel_refuses_finished_unknown_and_malformed_tasks(invoke, aws, template):
    # Given a task that succeeded
    store, now = tasks_table(aws, template), utc_now()
    done = seed_task(store, TaskState.SUCCESS, now)

    # Then cancelling it is 409 TASK_FINISHED, an unknown task 404, a malformed id 400
    assert cancel(invoke, done)[0] == 409
    assert cancel(invoke, done)[1]["error"]["code"] == "TASK_FINISHED"
    assert cancel(invoke, str(uuid.uuid4()))[1]["error"]["code"] == "TASK_NOT_FOUND"
    assert cancel(invoke, "not-a-task")[0] == 400
    assert status_of(invoke, done)[1]["state"] == "SUCCESS"


def test_a_job_that_comes_back_after_a_cancel_never_revives_its_task(invoke, aws, template, capsys):
    # Given a task whose run was cut short (its worker crashed, say) and that was then cancelled
    task_id, job = queued_task(invoke, aws, template)
    store = tasks_table(aws, template)
    assert store.mark_processing(task_id, utc_now())
    assert store.set_progress(task_id, 30)
    assert cancel(invoke, task_id)[0] == 200

    # When the job comes back to the processor, and then through the dead-letter queue
    assert invoke("ProcessorFunction", job) == {"batchItemFailures": []}
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}

    # Then the task stays CANCELLED at the progress it had, the model never ran it, and no video exists
    _, answer = status_of(invoke, task_id)
    assert (answer["state"], answer["progress"], answer["error"]) == ("CANCELLED", 30, None)
    assert bucket_keys(aws, template, "videos/") == []
    assert "TasksStarted" not in capsys.readouterr().out


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_a_run_cancelled_in_the_model_stops_and_is_counted_as_cancelled(invoke, aws, template, capsys):
    # Given the processor running a task (ModelSeconds is 1 here)
    task_id, job = queued_task(invoke, aws, template)
    store = tasks_table(aws, template)
    run, answers = processor_running(invoke, store, task_id, job)

    # When it is cancelled through the API
    assert cancel(invoke, task_id)[0] == 200
    run.join(timeout=60)

    # Then the run ends without an error (its message is deleted, the next job comes), no video is stored,
    # and the run counts as TasksCancelled, not as a success or a failure
    assert answers == [{"batchItemFailures": []}]
    assert status_of(invoke, task_id)[1]["state"] == "CANCELLED"
    assert bucket_keys(aws, template, "videos/") == []
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for line in metrics for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"TasksStarted", "TasksCancelled"} <= names
    assert not names & {"TasksSucceeded", "TasksFailed"}


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_delete_removes_the_task_its_upload_and_its_video_and_every_route_then_answers_404(invoke, aws, template):
    # Given a task that succeeded: its upload and its video in the bucket
    task_id, job = queued_task(invoke, aws, template)
    assert invoke("ProcessorFunction", job) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["state"] == "SUCCESS"
    assert bucket_keys(aws, template, "") == [f"uploads/{task_id}", f"videos/{task_id}.mp4"]

    # When it is deleted
    response = delete(invoke, task_id)

    # Then the answer is 204 with no body, the bucket holds nothing of it, and the record is gone
    assert (response["statusCode"], response.get("body") or "") == (204, "")
    assert bucket_keys(aws, template, "") == []
    assert tasks_table(aws, template).get(task_id) is None

    # And every route answers 404 for it from then on
    assert status_of(invoke, task_id)[0] == 404
    assert cancel(invoke, task_id)[0] == 404
    assert delete(invoke, task_id)["statusCode"] == 404
    video = sample_event("http-get-video.json")
    video["rawPath"] = video["requestContext"]["http"]["path"] = f"/video/{task_id}"
    video["pathParameters"] = {"task_id": task_id}
    assert invoke("StatusFunction", video)["statusCode"] == 404


def test_a_pending_task_deleted_before_its_upload_lands_is_never_run(invoke, aws, template):
    # Given a presigned task, deleted before its upload
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    assert delete(invoke, task_id)["statusCode"] == 204

    # When the upload lands after all (the presigned POST is still valid) and the intake handles its event,
    # Then nothing goes to the model and the object is removed
    late_upload_is_dropped(invoke, aws, template, task_id)
    assert bucket_keys(aws, template, "") == []


def test_tasks_routes_answer_405_with_allow_for_another_method(invoke):
    # Given GET on /tasks/{task_id}, which only DELETE serves (the $default route brings it to ApiFunction)
    response = lifecycle_call(invoke, "http-delete-task.json", str(uuid.uuid4()), method="GET")
    # Then it is 405 with Allow
    assert (response["statusCode"], response["headers"]["Allow"]) == (405, "DELETE")


def test_the_openapi_document_describes_cancel_and_delete(invoke):
    # Given the served OpenAPI document
    event = sample_event("http-get-status.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /openapi.json"
    event.pop("pathParameters")
    paths = json.loads(invoke("ApiFunction", event)["body"])["paths"]

    # Then cancel answers the status object or an error; delete answers 204 with no body (nothing to parse)
    cancel_responses = paths["/tasks/{task_id}/cancel"]["post"]["responses"]
    assert set(cancel_responses) == {"200", "400", "404", "409", "410"}
    assert cancel_responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StatusBody"
    }
    delete_responses = paths["/tasks/{task_id}"]["delete"]["responses"]
    assert set(delete_responses) == {"204", "400", "404"}
    assert "content" not in delete_responses["204"]
