"""IntakeFunction and ProcessorFunction, fed by the real S3 -> EventBridge -> SQS path inside moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from infra.template import Stack
from tests.handlers.test_http_handlers import body, status_of
from tests.sample_events import ROOT, sample_event

EXAMPLE = (ROOT / "examples" / "image.png").read_bytes()


def queue_url(template: Stack, logical_id: str) -> str:
    return template.queue_url(logical_id)


def receive_as_lambda_event(aws: boto3.Session, url: str, sample: str) -> dict[str, Any]:
    """One received message dressed as the sample SQS event from events/ (as the event source mapping would)."""
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0, AttributeNames=["All"])
    assert messages.get("Messages"), f"nothing arrived on {url}"
    message = messages["Messages"][0]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event = sample_event(sample)
    record = event["Records"][0]
    record.update(
        messageId=message["MessageId"],
        receiptHandle=message["ReceiptHandle"],
        body=message["Body"],
        md5OfBody=message["MD5OfBody"],
        eventSourceARN=arn,
        attributes={**record["attributes"], **message["Attributes"]},
    )
    return event


def upload(invoke) -> str:
    return str(body(invoke("ApiFunction", sample_event("http-legacy-upload.json")))["task_id"])


def put_upload(aws: boto3.Session, template: Stack, task_id: str, data: bytes) -> None:
    bucket = template.functions["ApiFunction"].environment["MEDIA_BUCKET"]
    aws.client("s3").put_object(Bucket=bucket, Key=f"uploads/{task_id}", Body=data, ContentType="image/png")


def test_the_upload_event_reaches_both_queues_and_intake_marks_the_task_queued(invoke, aws, template):
    # Given an upload through the seed's call
    task_id = upload(invoke)

    # When the intake function handles the event the rule delivered
    event = receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json")
    assert json.loads(event["Records"][0]["body"])["detail"]["object"]["key"] == f"uploads/{task_id}"
    assert invoke("IntakeFunction", event) == {"batchItemFailures": []}

    # Then the task is QUEUED, first in line, with an ETA of one model run
    code, answer = status_of(invoke, task_id)
    assert code == 200
    assert answer["state"] == "QUEUED"
    assert answer["queue_position"] == 0
    assert answer["eta_seconds"] == int(template.parameters["ModelSeconds"])
    # And the same job waits on the FIFO queue for the model
    jobs = receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json")
    assert jobs["Records"][0]["attributes"]["MessageGroupId"] == "model"


def test_processor_makes_the_video_once_even_for_a_duplicate_event(invoke, aws, template, capsys):
    # Given an uploaded, queued image whose job is on the FIFO queue
    task_id = upload(invoke)
    invoke("IntakeFunction", receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json"))
    event = receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json")

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


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"hello, I am text", "UNSUPPORTED_FORMAT"), (b"", "EMPTY_FILE"), (EXAMPLE[: len(EXAMPLE) // 2], "CORRUPT_IMAGE")],
)
def test_processor_fails_bad_uploads_fast_and_consumes_their_message(invoke, aws, template, data, code):
    # Given a presigned upload whose bytes are not a usable image (S3 stores whatever is posted)
    task_id = body(invoke("ApiFunction", sample_event("http-create-upload.json")))["task_id"]
    put_upload(aws, template, task_id, data)
    event = receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json")

    # When the processor handles it, Then the message is consumed (no retry) and the task is a FAILURE
    assert invoke("ProcessorFunction", event) == {"batchItemFailures": []}
    _, answer = status_of(invoke, task_id)
    assert answer["state"] == "FAILURE"
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]
    assert answer["queue_position"] is None


def dead_job_event(task_id: str) -> dict[str, Any]:
    """The job as it sits in the dead-letter queue: the same body, redriven after its last receive."""
    event = sample_event("sqs-jobs-record.json")
    body = json.loads(event["Records"][0]["body"])
    body["detail"]["object"]["key"] = f"uploads/{task_id}"
    event["Records"][0]["body"] = json.dumps(body)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"
    return event


def test_a_job_that_exhausted_its_retries_ends_its_task_in_failure(invoke, aws, template):
    # Given a queued task the model could never finish
    task_id = upload(invoke)
    invoke("IntakeFunction", receive_as_lambda_event(aws, queue_url(template, "IntakeQueue"), "sqs-intake-record.json"))

    # When its job arrives from the dead-letter queue
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}

    # Then the task is a FAILURE with a code and a sentence, and has left the line
    _, answer = status_of(invoke, task_id)
    assert answer["state"] == "FAILURE"
    assert answer["error"]["code"] == "PROCESSING_FAILED"
    assert answer["queue_position"] is None
    assert answer["finished_at"]


def test_a_dead_job_never_overwrites_a_finished_task(invoke, aws, template):
    # Given a task that succeeded
    task_id = upload(invoke)
    invoke("ProcessorFunction", receive_as_lambda_event(aws, queue_url(template, "JobsQueue"), "sqs-jobs-record.json"))

    # When a stale copy of its job comes from the dead-letter queue, Then it stays a SUCCESS
    assert invoke("DeadLetterFunction", dead_job_event(task_id)) == {"batchItemFailures": []}
    assert status_of(invoke, task_id)[1]["state"] == "SUCCESS"
