"""IntakeFunction and ProcessorFunction, fed by the real S3 -> EventBridge -> SQS path inside moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from infra.template import Stack
from tests.handlers.support import body, dead_job_event, receive_as_lambda_event, status_of
from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()


def queue_url(template: Stack, logical_id: str) -> str:
    return template.queue_url(logical_id)


def hand_to_the_model(invoke, aws: boto3.Session, template: Stack) -> dict[str, Any]:
    """IntakeFunction takes the next upload event off its queue; the job it hands on, as the processor gets it."""
    intake = receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", intake) == {"batchItemFailures": []}
    return receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json")


def upload(invoke) -> str:
    return str(body(invoke("ApiFunction", sample_event("http-form-upload.json")))["task_id"])


def put_upload(aws: boto3.Session, template: Stack, task_id: str, data: bytes) -> None:
    bucket = template.functions["ApiFunction"].environment["MEDIA_BUCKET"]
    aws.client("s3").put_object(Bucket=bucket, Key=f"uploads/{task_id}", Body=data, ContentType="image/png")


def test_intake_marks_the_task_queued_and_hands_its_job_to_the_model(invoke, aws, template):
    # Given an upload through the form upload
    task_id = upload(invoke)

    # When the intake function handles the event the rule delivered
    event = receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json")
    assert json.loads(event["Records"][0]["body"])["detail"]["object"]["key"] == f"uploads/{task_id}"
    assert event["Records"][0]["attributes"]["MessageGroupId"] == "uploads"
    assert invoke("IntakeFunction", event) == {"batchItemFailures": []}

    # Then the task is QUEUED, first in line, with an ETA of one model run
    code, answer = status_of(invoke, task_id)
    assert code == 200
    assert answer["state"] == "QUEUED"
    assert answer["queue_position"] == 0
    assert answer["eta_seconds"] == int(template.parameters["ModelSeconds"])
    # And the same event waits, unchanged, on the model's FIFO queue, deduplicated by the task id
    jobs = receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json")
    assert jobs["Records"][0]["body"] == event["Records"][0]["body"]
    assert jobs["Records"][0]["attributes"]["MessageGroupId"] == "model"
    assert jobs["Records"][0]["attributes"]["MessageDeduplicationId"] == task_id


def test_intake_gives_places_in_the_order_it_hands_jobs_to_the_model(invoke, aws, template):
    # Given three uploads whose events wait on the intake queue
    task_ids = [upload(invoke) for _ in range(3)]
    sqs = aws.client("sqs")
    received = sqs.receive_message(
        QueueUrl=queue_url(template, "IntakeQueue"), MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert len(received) == 3
    record = sample_event("sqs-intake-record.json")["Records"][0]
    batch = {
        "Records": [
            {**record, "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
            for m in received
        ]
    }

    # When the intake function handles them in one batch, and then the same batch again (a retry)
    assert invoke("IntakeFunction", batch) == {"batchItemFailures": []}
    assert invoke("IntakeFunction", batch) == {"batchItemFailures": []}

    # Then the queue positions count 0, 1, 2 in the order the jobs reach the model's queue, once each
    in_line = [json.loads(m["Body"])["detail"]["object"]["key"].removeprefix("uploads/") for m in received]
    assert sorted(in_line) == sorted(task_ids)
    assert [status_of(invoke, task_id)[1]["queue_position"] for task_id in in_line] == [0, 1, 2]
    jobs = []
    while batch_of_jobs := sqs.receive_message(QueueUrl=queue_url(template, "JobsQueue"), MaxNumberOfMessages=10).get(
        "Messages"
    ):
        jobs += [json.loads(m["Body"])["detail"]["object"]["key"].removeprefix("uploads/") for m in batch_of_jobs]
        sqs.delete_message_batch(
            QueueUrl=queue_url(template, "JobsQueue"),
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch_of_jobs)],
        )
    assert jobs == in_line


@pytest.mark.slow  # waits the seconds of the backoff for the messages to come back
def test_intake_stops_at_a_failed_upload_and_brings_it_and_those_behind_it_back_in_seconds(invoke, aws, template):
    # Given three uploads whose events wait on the intake queue, the second of them unreadable
    task_ids = [upload(invoke) for _ in range(3)]
    sqs = aws.client("sqs")
    intake_url = queue_url(template, "IntakeQueue")
    received = sqs.receive_message(QueueUrl=intake_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    record = sample_event("sqs-intake-record.json")["Records"][0]
    batch = {
        "Records": [
            {**record, "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]}
            for m in received
        ]
    }
    batch["Records"][1]["body"] = '{"not": "an S3 event"}'

    # When the intake function handles the batch
    answer = invoke("IntakeFunction", batch)

    # Then the second and third are reported failed, in order, and only the first went on to the model
    assert answer == {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in received[1:]]}
    in_line = [json.loads(m["Body"])["detail"]["object"]["key"].removeprefix("uploads/") for m in received]
    assert sorted(in_line) == sorted(task_ids)
    assert [status_of(invoke, task_id)[1]["state"] for task_id in in_line] == ["QUEUED", "PENDING", "PENDING"]
    # And once the event source mapping deletes the first, the other two come back after a backoff of
    # seconds, not the intake queue's 60 s visibility timeout
    sqs.delete_message(QueueUrl=intake_url, ReceiptHandle=received[0]["ReceiptHandle"])
    back = sqs.receive_message(QueueUrl=intake_url, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    assert [m["MessageId"] for m in back] == [m["MessageId"] for m in received[1:]]  # in their order


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_processor_makes_the_video_once_even_for_a_duplicate_event(invoke, aws, template, capsys):
    # Given an uploaded, queued image whose job is on the FIFO queue
    task_id = upload(invoke)
    event = hand_to_the_model(invoke, aws, template)

    # When the processor handles it
    assert invoke("ProcessorFunction", event) == {"batchItemFailures": []}

    # Then its metrics (CloudWatch EMF lines on stdout) count the run and the queue wait
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    metrics = {name for line in lines for name in line if name[0].isupper()}
    assert {"TasksStarted", "TasksSucceeded", "QueueWait"} <= metrics

    # Then the task succeeded, with a video in the bucket and a presigned link to it
    code, answer = status_of(invoke, task_id)
    assert (code, answer["state"], answer["progress"]) == (200, "SUCCESS", 100)
    assert answer["video_url"]
    assert f"videos/{task_id}.mp4" in answer["video_url"]
    s3 = aws.client("s3")
    bucket = template.functions["ProcessorFunction"].environment["MEDIA_BUCKET"]
    video = s3.get_object(Bucket=bucket, Key=f"videos/{task_id}.mp4")["Body"].read()
    assert video[4:8] == b"ftyp"

    # When the same event arrives again (S3 events are at-least-once), after the video was removed
    s3.delete_object(Bucket=bucket, Key=f"videos/{task_id}.mp4")
    assert invoke("ProcessorFunction", event) == {"batchItemFailures": []}

    # Then the model did not run a second time: no new video appeared
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="videos/")


@pytest.mark.integration  # the processor decodes the upload in a forked child
@pytest.mark.parametrize(
    ("data", "code"),
    [(b"hello, I am text", "UNSUPPORTED_FORMAT"), (b"", "EMPTY_FILE"), (EXAMPLE[: len(EXAMPLE) // 2], "CORRUPT_IMAGE")],
)
def test_processor_fails_bad_uploads_fast_and_consumes_their_message(invoke, aws, template, data, code):
    # Given a presigned upload whose bytes are not a usable image (S3 stores whatever is posted)
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    put_upload(aws, template, task_id, data)
    event = hand_to_the_model(invoke, aws, template)

    # When the processor handles it, Then the message is consumed (no retry) and the task is a FAILURE
    assert invoke("ProcessorFunction", event) == {"batchItemFailures": []}
    _, answer = status_of(invoke, task_id)
    assert answer["state"] == "FAILURE"
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert answer["queue_position"] is None


@pytest.mark.parametrize(
    ("stuck_at", "sample"),
    [("the model", "sqs-jobs-record.json"), ("the intake", "sqs-intake-record.json")],
)
def test_a_job_that_exhausted_its_retries_ends_its_task_in_failure(invoke, aws, template, stuck_at, sample):
    # Given an uploaded task the model (or, before it, the intake) could never finish
    task_id = upload(invoke)
    if stuck_at == "the model":
        hand_to_the_model(invoke, aws, template)

    # When its message arrives from the dead-letter queue
    assert invoke("DeadLetterFunction", dead_job_event(task_id, sample)) == {"batchItemFailures": []}

    # Then the task is a FAILURE with a code and a sentence, and has left the line
    _, answer = status_of(invoke, task_id)
    assert answer["state"] == "FAILURE"
    assert answer["error"]["code"] == "PROCESSING_FAILED"
    assert answer["queue_position"] is None
    assert answer["finished_at"]


@pytest.mark.integration  # the processor decodes the upload in a forked child
def test_a_dead_job_never_overwrites_a_finished_task(invoke, aws, template):
    # Given a task that succeeded
    task_id = upload(invoke)
    invoke("ProcessorFunction", hand_to_the_model(invoke, aws, template))

    # When a stale copy of its job comes from the dead-letter queue, Then it stays a SUCCESS
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["state"] == "SUCCESS"


def test_only_the_exact_key_of_its_presigned_post_starts_a_task(invoke, aws, template):
    # Given a task waiting for its upload, and objects landing under keys that only resemble its key
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    bucket = template.functions["ApiFunction"].environment["MEDIA_BUCKET"]
    for key in (f"uploads/{task_id.upper()}", f"uploads/{task_id}.mp4"):
        aws.client("s3").put_object(Bucket=bucket, Key=key, Body=EXAMPLE, ContentType="image/png")

        # When the intake handles each one's event
        event = receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json")
        assert json.loads(event["Records"][0]["body"])["detail"]["object"]["key"] == key
        assert invoke("IntakeFunction", event) == {"batchItemFailures": []}
        # handled: the event source mapping deletes it
        intake_queue, receipt = queue_url(template, "IntakeQueue"), event["Records"][0]["receiptHandle"]
        aws.client("sqs").delete_message(QueueUrl=intake_queue, ReceiptHandle=receipt)

        # Then the task still waits for its own upload, and nothing went to the model
        assert status_of(invoke, task_id)[1]["state"] == "PENDING"
        jobs = aws.client("sqs").receive_message(QueueUrl=queue_url(template, "JobsQueue"), WaitTimeSeconds=0)
        assert not jobs.get("Messages")

    # And the exact key uploads/<task_id> starts it
    put_upload(aws, template, task_id, EXAMPLE)
    event = receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json")
    assert invoke("IntakeFunction", event) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["state"] == "QUEUED"
