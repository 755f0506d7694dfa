"""Inspect an MP4 the way a test needs to: stream facts, box order, and decoded frames.

Shared by unit and integration tests (a downloaded video is checked the same way as a rendered one).
"""

from __future__ import annotations

import collections
import io
import struct
from dataclasses import dataclass

import av
from PIL import Image


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    profile: str | None
    pix_fmt: str | None
    width: int
    height: int
    fps: float
    frame_count: int
    """Frames actually decoded, not what the container claims."""
    duration: float
    faststart: bool
    """The moov atom comes before mdat, so a browser can start playing while downloading."""


def probe_video(data: bytes) -> VideoInfo:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        frame_count = sum(1 for _ in container.decode(stream))
        return VideoInfo(
            codec=context.name,
            profile=context.profile,
            pix_fmt=context.pix_fmt,
            width=context.width,
            height=context.height,
            fps=float(stream.average_rate or 0),
            frame_count=frame_count,
            duration=float((stream.duration or 0) * stream.time_base) if stream.time_base else 0.0,
            faststart=_moov_before_mdat(data),
        )


def frame_at(data: bytes, index: int) -> Image.Image:
    """Decoded frame `index` as RGB; negative indexes count from the end like a list's."""
    with av.open(io.BytesIO(data), mode="r") as container:
        frames = container.decode(video=0)
        if index >= 0:
            for position, frame in enumerate(frames):
                if position == index:
                    return frame.to_image()
            raise IndexError(index)
        tail = collections.deque(frames, maxlen=-index)
        if len(tail) < -index:
            raise IndexError(index)
        return tail[0].to_image()


def top_level_boxes(data: bytes) -> list[str]:
    """Types of the MP4's top-level boxes, in file order."""
    boxes = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - offset
        if size < 8:
            raise ValueError(f"malformed MP4 box at offset {offset}")
        boxes.append(kind.decode("latin-1"))
        offset += size
    return boxes


def _moov_before_mdat(data: bytes) -> bool:
    boxes = top_level_boxes(data)
    return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
