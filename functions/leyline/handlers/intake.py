"""IntakeFunction: the line's one sequencer. Each landed upload becomes QUEUED with its place in line,
then goes to the model's queue: places are given in exactly the order the model will take the tasks."""

from __future__ import annotations

from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.media_store import MediaStore
    from leyline.adapters.queues import SqsQueues
    from leyline.adapters.tasks_table import TaskRepository
    from leyline.config import ConfigError, Settings
    from leyline.handlers.events import UploadedRecord, process_in_line_order
    from leyline.logic.jobs import Admission, admit_upload
    from leyline.models import utc_now

    settings = Settings.from_env()
    if settings.jobs_queue_url is None:
        raise ConfigError("environment variable JOBS_QUEUE_URL is required")
    jobs_queue_url = settings.jobs_queue_url
    tasks = TaskRepository(settings.tasks_table)
    media = MediaStore(settings.media_bucket)  # removes uploads that came too late
    queues = SqsQueues()  # sends to the model's queue; re-times its own messages
    logger = Logger()
    tracer = Tracer()
    # FIFO: records are handled in order, and after a failure the rest of the batch is left for the retry
    # (events.process_in_line_order), so no upload can overtake another.
    processor = SqsFifoPartialProcessor(model=UploadedRecord)


def record_handler(record: UploadedRecord) -> None:
    job = record.job()
    if job is None:
        return
    admission = admit_upload(tasks, media, settings, job, utc_now())
    if admission is Admission.IGNORED:
        logger.warning("upload ignored and removed: its task is unknown, finished or past its upload window")
        return
    # Also when the task was already in line (a retry after a failed send, or a repeated S3 event):
    # the queue drops a repeat by task id, and the processor never runs a task twice.
    queues.send_job(jobs_queue_url, record.body, job.task_id)
    logger.info("task queued" if admission is Admission.QUEUED else "task already in line; its job is handed on again")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_in_line_order(event, record_handler, processor, context, queues)
