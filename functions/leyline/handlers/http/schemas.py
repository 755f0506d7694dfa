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


RESPONSE_BODIES = (ErrorBody, UploadTicketBody, AcceptedUploadBody, StatusBody, VideoRedirectBody)


def openapi_components(ref_prefix: str) -> dict[str, Any]:
    """The response bodies' JSON Schemas, each named as its model, referring to each other by `ref_prefix`."""
    bodies: list[tuple[type[BaseModel], JsonSchemaMode]] = [(body, "serialization") for body in RESPONSE_BODIES]
    _, top = models_json_schema(bodies, ref_template=ref_prefix + "{model}")
    definitions: dict[str, Any] = top["$defs"]
    return definitions
