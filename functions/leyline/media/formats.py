"""What kind of image a file is, from its first bytes alone: no image library needed.

The API judges form uploads with it, so the functions in front of the model start without Pillow.
"""

from __future__ import annotations


def sniff_format(data: bytes) -> str | None:
    """Return "png", "jpeg" or "webp" from the magic bytes, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None
