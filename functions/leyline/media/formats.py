"""The image formats Leyline accepts, and what kind of image a file is from its first bytes alone.

The one place that names them: the API's checks, the upload policy's documentation, the model's decoder and
the CLI all read this table. Standard library only, so the functions in front of the model start without
Pillow and the CLI without boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    name: str  # as Pillow names its plugin, in lower case
    mime_type: str
    display_name: str
    matches: Callable[[bytes], bool]  # judges a file's first SNIFF_BYTES bytes


FORMATS = (
    ImageFormat("png", "image/png", "PNG", lambda head: head.startswith(b"\x89PNG\r\n\x1a\n")),
    ImageFormat("jpeg", "image/jpeg", "JPEG", lambda head: head.startswith(b"\xff\xd8\xff")),
    ImageFormat("webp", "image/webp", "WebP", lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
)
SNIFF_BYTES = 12
"""How many leading bytes tell the formats apart (WebP's RIFF header is the longest)."""

ALLOWED_UPLOAD_TYPES = tuple(image_format.mime_type for image_format in FORMATS)
ACCEPTED_NAMES = "PNG, JPEG or WebP"
"""The accepted formats as a sentence says them ("... is not a PNG, JPEG or WebP image")."""
_BY_NAME = {image_format.name: image_format for image_format in FORMATS}


def sniff(data: bytes) -> ImageFormat | None:
    """The format of `data` (at least its first SNIFF_BYTES bytes) by its magic bytes, or None for anything else."""
    head = data[:SNIFF_BYTES]
    return next((image_format for image_format in FORMATS if image_format.matches(head)), None)


def sniff_format(data: bytes) -> str | None:
    """Return "png", "jpeg" or "webp" from the magic bytes, or None for anything else."""
    found = sniff(data)
    return found.name if found else None


def display_name(name: str) -> str:
    """ "jpeg" -> "JPEG", as messages to a user spell it."""
    return _BY_NAME[name].display_name
