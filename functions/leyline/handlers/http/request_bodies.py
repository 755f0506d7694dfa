"""POST /uploads's JSON body: one JSON Schema both validates it (fastjsonschema) and documents it.

A JSON Schema rather than a pydantic model because of the cold start: the first POST /uploads of a new
ApiFunction instance paid about 60 ms to import pydantic (docs/benchmarks.md); importing fastjsonschema
takes about 2 ms and compiling this schema about 1.5 ms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastjsonschema

from leyline.errors import BadRequest
from leyline.logic.webhooks import EVENTS
from leyline.media.formats import ALLOWED_UPLOAD_TYPES

# Types only: the service checks the values itself, with their own codes (415 for a type it does not take,
# 400 EMPTY_FILE and 413 for a size), and the document states them (_DOCUMENTED_VALUES).
CREATE_UPLOAD_REQUEST: dict[str, Any] = {
    "title": "CreateUploadRequest",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "content_type": {
            "type": ["string", "null"],
            "default": None,
            "description": "The image's type, pinned in the upload policy.",
            "examples": [ALLOWED_UPLOAD_TYPES[0]],
        },
        "size": {
            # JSON Schema's integer includes 162.0 (and excludes true); strings and 1.5 are refused.
            "type": ["integer", "null"],
            "default": None,
            "description": "The file's size in bytes, checked before a task is created.",
        },
        "webhook_url": {
            "type": ["string", "null"],
            "default": None,
            "description": "https URL of a public address that gets the task's events (Standard Webhooks v1 signed).",
        },
        "webhook_events": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "default": None,
            "description": "Which events: some of started, succeeded, failed, cancelled (default: the final ones).",
        },
        "notify_email": {
            "type": ["boolean", "null"],
            "default": None,
            "description": "accounts mode: email the signed-in user's verified address when the task ends.",
        },
    },
}
_DOCUMENTED_VALUES = {
    "content_type": {"enum": [*ALLOWED_UPLOAD_TYPES, None]},
    "size": {"minimum": 1},
    "webhook_events": {"items": {"type": "string", "enum": list(EVENTS)}, "minItems": 1},
}


@dataclass(frozen=True)
class CreateUploadRequest:
    content_type: str | None = None
    size: int | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    notify_email: bool | None = None


def create_upload_request(body: dict[str, Any]) -> CreateUploadRequest:
    """The body, validated; a BadRequest names the first problem."""
    try:
        valid = _validator()(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        name = exc.name or "data"  # "data.size": the body is "data"
        where = name.removeprefix("data").removeprefix(".") or "body"
        problem = exc.message.removeprefix(name).strip()
        raise BadRequest(f"The request body is not valid: {where} {problem}.") from exc
    size = valid.get("size")
    return CreateUploadRequest(
        content_type=valid.get("content_type"),
        size=None if size is None else int(size),
        webhook_url=valid.get("webhook_url"),
        webhook_events=valid.get("webhook_events"),
        notify_email=valid.get("notify_email"),
    )


def create_upload_request_schema(*, accounts: bool = True) -> dict[str, Any]:
    """The schema as /openapi.json shows it: the validated types and the values the service accepts.
    Without accounts there is no verified address to email: notify_email is not offered (400 if sent)."""
    documented = copy.deepcopy(CREATE_UPLOAD_REQUEST)
    for name, keywords in _DOCUMENTED_VALUES.items():
        documented["properties"][name].update(keywords)
    if not accounts:
        del documented["properties"]["notify_email"]
    return documented


@cache  # compiled by the first POST /uploads, not at every cold start
def _validator() -> Any:
    return fastjsonschema.compile(CREATE_UPLOAD_REQUEST)
