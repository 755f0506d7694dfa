"""Settings read once from the environment that template.yaml declares for every function."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

OPEN = "open"
ACCOUNTS = "accounts"
ACCESS_MODES = (OPEN, ACCOUNTS)
# template.yaml's ModelSlots allows 1 to 20.
MAX_MODEL_SLOTS = 20
# template.yaml's VideoSeconds: 3 by default, 1 to 10.
DEFAULT_VIDEO_SECONDS = 3.0
MAX_VIDEO_SECONDS = 10.0


class ConfigError(RuntimeError):
    """A required environment variable is missing or malformed: the function cannot start."""


@dataclass(frozen=True)
class Settings:
    tasks_table: str
    media_bucket: str
    model_seconds: float
    max_upload_bytes: int
    max_form_upload_bytes: int
    retention_days: int
    upload_url_seconds: int
    video_url_seconds: int
    max_waiting_tasks_per_client: int
    # The function's own idempotency records: ProcessorFunction's model runs (IdempotencyTable),
    # ApiFunction's Idempotency-Key submits (SubmitIdempotencyTable).
    idempotency_table: str | None = None
    jobs_queue_url: str | None = None  # IntakeFunction's own
    # AccessMode: "open" (anonymous, the original API) or "accounts" (task routes need a user's token).
    access_mode: str = OPEN
    # ApiFunction's, for GET /config in accounts mode: where the page and the CLI sign in.
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None

    @property
    def accounts(self) -> bool:
        return self.access_mode == ACCOUNTS

    # Webhooks: ApiFunction checks targets at submit, WebhookFunction again at delivery; StatusFunction reads the log.
    webhook_allow_private_targets: bool = False
    deliveries_table: str | None = None
    slots_queue_url: str | None = None  # DispatchFunction's own
    # SlotWakeQueue: the functions that take a task out of a model slot wake the dispatcher through it, and
    # DispatchFunction waits on it (logic/slots.py).
    slot_wake_queue_url: str | None = None
    task_event_bus: str | None = None  # TaskEventsFunction's own: where it publishes the tasks' changes
    model_slots: int = 1  # ModelSlots: models running side by side, each one image at a time
    video_seconds: float = DEFAULT_VIDEO_SECONDS  # VideoSeconds: ProcessorFunction's own

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        settings = cls(
            tasks_table=_text(env, "TASKS_TABLE"),
            media_bucket=_text(env, "MEDIA_BUCKET"),
            model_seconds=_number(env, "MODEL_SECONDS"),
            max_upload_bytes=_whole(env, "MAX_UPLOAD_BYTES"),
            max_form_upload_bytes=_whole(env, "MAX_FORM_UPLOAD_BYTES"),
            retention_days=_whole(env, "RETENTION_DAYS"),
            upload_url_seconds=_whole(env, "UPLOAD_URL_SECONDS"),
            video_url_seconds=_whole(env, "VIDEO_URL_SECONDS"),
            max_waiting_tasks_per_client=_whole(env, "MAX_WAITING_TASKS_PER_CLIENT"),
            idempotency_table=env.get("IDEMPOTENCY_TABLE") or None,
            jobs_queue_url=env.get("JOBS_QUEUE_URL") or None,
            access_mode=env.get("ACCESS_MODE") or OPEN,
            user_pool_id=env.get("USER_POOL_ID") or None,
            user_pool_client_id=env.get("USER_POOL_CLIENT_ID") or None,
            webhook_allow_private_targets=env.get("WEBHOOK_ALLOW_PRIVATE_TARGETS", "false").strip().lower() == "true",
            deliveries_table=env.get("DELIVERIES_TABLE") or None,
            slots_queue_url=env.get("SLOTS_QUEUE_URL") or None,
            slot_wake_queue_url=env.get("SLOT_WAKE_QUEUE_URL") or None,
            task_event_bus=env.get("TASK_EVENT_BUS") or None,
            model_slots=_whole(env, "MODEL_SLOTS") if "MODEL_SLOTS" in env else 1,
            video_seconds=_number(env, "VIDEO_SECONDS") if "VIDEO_SECONDS" in env else DEFAULT_VIDEO_SECONDS,
        )
        if settings.video_url_seconds > 3600 or settings.upload_url_seconds > 3600:
            raise ConfigError("presigned URLs must expire within one hour")
        if settings.access_mode not in ACCESS_MODES:
            raise ConfigError(f"ACCESS_MODE must be one of {ACCESS_MODES}, got {settings.access_mode!r}")
        if not 1 <= settings.video_seconds <= MAX_VIDEO_SECONDS:
            raise ConfigError(f"VIDEO_SECONDS must be 1 to {MAX_VIDEO_SECONDS}, got {settings.video_seconds:g}")
        if not 1 <= settings.model_slots <= MAX_MODEL_SLOTS:
            raise ConfigError(f"MODEL_SLOTS must be 1 to {MAX_MODEL_SLOTS}, got {settings.model_slots}")
        return settings


def _text(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


def _number(env: Mapping[str, str], name: str) -> float:
    raw = _text(env, name)
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc
    if not value > 0:
        raise ConfigError(f"environment variable {name} must be positive, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str) -> int:
    value = _number(env, name)
    if not value.is_integer():
        raise ConfigError(f"environment variable {name} must be a whole number, got {env[name]!r}")
    return int(value)
