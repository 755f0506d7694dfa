"""TaskEventsFunction: each change of a task's state, read from TasksTable's stream, onto TaskEventBus.

Records arrive in stream order (per task: write order). The first that cannot be published is reported as
the batch's failure, so the mapping retries from it, in order (ReportBatchItemFailures on a stream checkpoints
before the lowest failed sequence number)."""

from __future__ import annotations

from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.adapters.event_bus import EventBus
    from leyline.adapters.media_store import MediaStore
    from leyline.adapters.tasks_table import TaskRepository, task_from_image
    from leyline.config import ConfigError, Settings
    from leyline.logic.task_events import TaskWrite, publish_changes
    from leyline.models import utc_now

    settings = Settings.from_env()
    if settings.task_event_bus is None:
        raise ConfigError("environment variable TASK_EVENT_BUS is required")
    tasks = TaskRepository(settings.tasks_table)
    media = MediaStore(settings.media_bucket)
    bus = EventBus(settings.task_event_bus)
    logger = Logger()
    tracer = Tracer()


def task_write(record: dict[str, Any]) -> TaskWrite:
    change = record["dynamodb"]
    old, new = change.get("OldImage"), change.get("NewImage")
    return TaskWrite(
        record_id=str(change["SequenceNumber"]),
        old=None if old is None else task_from_image(old),
        new=None if new is None else task_from_image(new),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    writes = [task_write(record) for record in event.get("Records", [])]
    first_unpublished = publish_changes(tasks, media, settings, bus, writes, utc_now())
    if first_unpublished is None:
        return {"batchItemFailures": []}
    logger.warning("task events not published: retrying from the first", extra={"sequence": first_unpublished})
    return {"batchItemFailures": [{"itemIdentifier": first_unpublished}]}
