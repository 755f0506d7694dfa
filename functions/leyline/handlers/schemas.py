"""The HTTP API's request and response bodies, as pydantic models: they validate input and document
the API in GET /openapi.json."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leyline.adapters.media_store import ALLOWED_UPLOAD_TYPES
from leyline.models import TaskState


class CreateUploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Documented as the accepted values; other values are still parsed, and answered 415 / 400 / 413.
    content_type: str | None = Field(
        default=None,
        description="The image's type, pinned in the upload policy.",
        examples=["image/png"],
        json_schema_extra={"enum": [*ALLOWED_UPLOAD_TYPES, None]},
    )
    size: int | None = Field(
        default=None,
        strict=True,
        description="The file's size in bytes, checked before a task is created.",
        json_schema_extra={"minimum": 1},
    )

    @field_validator("size", mode="before")
    @classmethod
    def _integral_number(cls, value: object) -> object:
        """JSON Schema's integer includes 162.0; strings, booleans and 1.5 stay refused."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


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
    error: ErrorDetail | None
    created_at: str = Field(description="ISO 8601 UTC")
    started_at: str | None
    finished_at: str | None


class VideoRedirectBody(BaseModel):
    video_url: str
