"""The HTTP API's response bodies, as pydantic models that document them in GET /openapi.json.

Imported only when that document is built: GET /status and POST /uploads never load pydantic
(see routes._SCHEMAS and handlers/http/request_bodies.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from leyline.models import TaskState


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable UPPER_SNAKE code", examples=["TASK_NOT_FOUND"])
    message: str = Field(description="What went wrong, in a sentence for a person")


class ErrorBody(BaseModel):
    error: ErrorDetail


class PresignedPost(BaseModel):
    url: str = Field(description="Where to POST the multipart form (the bucket)")
    fields: dict[str, str] = Field(description="Form fields to send before the file field, named `file`")


class UploadTicketBody(BaseModel):
    task_id: str
    upload: PresignedPost
    expires_in: int = Field(description="Seconds the upload form stays valid")
    max_bytes: int = Field(description="Largest file the form accepts")
    status_url: str


class AcceptedUploadBody(BaseModel):
    task_id: str
    status_url: str


class StatusBody(BaseModel):
    task_id: str
    state: TaskState
    progress: int = Field(ge=0, le=100)
    queue_position: int | None = Field(description="Tasks ahead; null unless QUEUED or PROCESSING")
    eta_seconds: int | None = Field(description="Seconds until the video should be ready")
    video_url: str | None = Field(description="Presigned GET of the MP4 (expires within 1 h); null until SUCCESS")
    error: ErrorDetail | None = Field(description="Why the task failed, on FAILURE; null otherwise (CANCELLED too)")
    created_at: str = Field(description="ISO 8601 UTC")
    started_at: str | None
    finished_at: str | None
    expires_at: str = Field(description="ISO 8601 UTC: when retention deletes the task, its upload and its video")
    slot: int | None = Field(description="The model slot (1..ModelSlots) running it; null unless PROCESSING")


class VideoRedirectBody(BaseModel):
    video_url: str


class TaskPageBody(BaseModel):
    tasks: list[StatusBody] = Field(description="The caller's tasks, newest first")
    next_cursor: str | None = Field(description="Opaque: send it as ?cursor= for the next page; null on the last")


class CognitoConfig(BaseModel):
    region: str
    user_pool_id: str
    client_id: str = Field(description="The app client (no secret) to sign in with: USER_PASSWORD_AUTH, refresh")
    endpoint: str = Field(description="The Cognito user-pool API to call (AWS's regional one, or the local emulator)")


class ConfigBody(BaseModel):
    access_mode: str = Field(description="open: anonymous; accounts: task routes need Authorization: Bearer <token>")
    cognito: CognitoConfig | None = Field(description="Where to sign up and sign in; null in open mode")


class DeliveryAttempt(BaseModel):
    event_type: str = Field(examples=["task.succeeded"])
    webhook_id: str = Field(description="The webhook-id header: the same for every attempt of one delivery")
    attempt: int = Field(ge=1)
    at: str = Field(description="ISO 8601 UTC")
    status: int | None = Field(description="The receiver's HTTP status; null when it did not answer")
    error: str | None = Field(description="Why there was no answer, or why it was not sent")
    outcome: str = Field(description="delivered, retrying, gone (410), rejected (4xx), refused, dead-lettered")
    next_retry_at: str | None = Field(description="When it is tried again, while retrying")


class DeliveriesBody(BaseModel):
    task_id: str
    attempts: list[DeliveryAttempt]


RESPONSE_BODIES = (
    ErrorBody,
    UploadTicketBody,
    AcceptedUploadBody,
    StatusBody,
    VideoRedirectBody,
    TaskPageBody,
    ConfigBody,
    DeliveriesBody,
)


def openapi_components(ref_prefix: str) -> dict[str, Any]:
    """The response bodies' JSON Schemas, each named as its model, referring to each other by `ref_prefix`."""
    bodies: list[tuple[type[BaseModel], JsonSchemaMode]] = [(body, "serialization") for body in RESPONSE_BODIES]
    _, top = models_json_schema(bodies, ref_template=ref_prefix + "{model}")
    definitions: dict[str, Any] = top["$defs"]
    return definitions
