"""Render the simulated model's output: a Ken Burns clip (slow eased zoom and pan) of one image.

The MP4 is what every browser plays: H.264 High profile, yuv420p tagged BT.709 limited range,
moov atom first so playback starts before the download ends. Frames are built with Pillow
(a sub-pixel crop box per frame keeps the motion smooth) and encoded by PyAV's libx264.

The image is converted once to BT.709 planes (Y at full size, U and V at half: 4:2:0); each frame then
resizes the three planes into a yuv420p frame. Resizing in RGB and converting every frame cost more CPU time
(the per-frame RGB resize was the largest part of a clip's), which on shared cores made runs overrun their
model time; libx264 is now most of it (`python -m bench encode` measures a clip).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc
from PIL import Image

LANDSCAPE_SIZE = (1280, 720)
"""Output for inputs at least `LANDSCAPE_MIN_ASPECT` wide; wider ones are cropped and panned."""

LANDSCAPE_MIN_ASPECT = 1.5
"""3:2 and wider count as landscape. Narrower inputs keep their own aspect ratio."""

MIN_ASPECT = 9 / 16
"""Taller inputs are cropped to 9:16 rather than becoming a sliver of a video."""

OUTPUT_PIXELS = LANDSCAPE_SIZE[0] * LANDSCAPE_SIZE[1]
"""Non-landscape outputs get about this many pixels, so no side exceeds 1280 (<= 1920 required)."""

ZOOM = 1.2
"""The last frame shows 1/ZOOM of the first frame's width."""

PAN_FROM = (0.25, 0.5)
PAN_TO = (0.75, 0.35)
"""Where the framing sits inside the room left around it (0 = left/top, 1 = right/bottom):
a drift right and slightly up, and a left-to-right sweep across panoramas."""

X264_OPTIONS = {"preset": "veryfast", "crf": "23", "profile": "high"}
"""veryfast/23 encodes a 3 s 720p clip in about 1.5 s on one core; slower presets buy little
at this length (`python -m bench.encode` measures it)."""

_AVCOL_SPC_BT709 = 1  # FFmpeg's AVColorSpace value; PyAV exposes only swscale's enum for it

ProgressCallback = Callable[[float], None]


def output_size(width: int, height: int) -> tuple[int, int]:
    """Even (width, height) of the video made from a `width` x `height` image."""
    aspect = width / height
    if aspect >= LANDSCAPE_MIN_ASPECT:
        return LANDSCAPE_SIZE
    aspect = max(aspect, MIN_ASPECT)
    out_width = math.sqrt(OUTPUT_PIXELS * aspect)
    return _even(out_width), _even(out_width / aspect)


def render_video(
    image: Image.Image,
    *,
    seconds: float = 3.0,
    fps: int = 24,
    on_progress: ProgressCallback | None = None,
    threads: int = 0,
) -> bytes:
    """Encode a `seconds` long MP4 of `image` at `fps` and return its bytes.

    `on_progress` receives a rising fraction after every frame and exactly 1.0 when the bytes are
    ready; it is called fps x seconds times, so callers that persist it should throttle. It is also the
    abort hook: an exception it raises stops the encode at that frame and propagates, and no temporary file
    is left behind (a cancelled task's run stops its encoder this way, logic/processing.py).
    `threads` is libx264's thread count; 0 lets it choose from the visible cores.
    """
    frame_count = round(seconds * fps)
    if frame_count < 2:
        raise ValueError(f"{seconds} s at {fps} fps is fewer than 2 frames: nothing to animate")
    report = on_progress or _ignore_progress
    size = output_size(*image.size)
    frames = _ken_burns_frames(_yuv_planes(_working_image(image.convert("RGB"), size)), size, frame_count)
    # The faststart pass reopens the output by name to move the moov atom, so it cannot be BytesIO.
    fd, path = tempfile.mkstemp(prefix="leyline-", suffix=".mp4")
    os.close(fd)
    try:
        _encode(path, frames, size, fps=fps, threads=threads, report=report, total=frame_count)
        with open(path, "rb") as file:
            data = file.read()
    finally:
        os.unlink(path)
    report(1.0)
    return data


def _encode(
    path: str,
    frames: Iterator[av.VideoFrame],
    size: tuple[int, int],
    *,
    fps: int,
    threads: int,
    report: ProgressCallback,
    total: int,
) -> None:
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        codec = stream.codec_context
        codec.thread_count = threads
        codec.colorspace = _AVCOL_SPC_BT709
        codec.color_primaries = ColorPrimaries.BT709
        codec.color_trc = ColorTrc.BT709
        codec.color_range = ColorRange.MPEG
        for index, frame in enumerate(frames):
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
            # The +1 leaves room for flushing the encoder and the faststart rewrite.
            report((index + 1) / (total + 1))
        container.mux(stream.encode(None))


def _yuv_planes(image: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The RGB image's Y plane at its full size and its U and V planes at half its width and height (4:2:0, as
    each frame's), BT.709 limited range (converted here rather than in the encoder, which would use BT.601 and
    leave the video untagged)."""
    yuv = av.VideoFrame.from_image(image).reformat(
        format="yuv444p", dst_colorspace=_AVCOL_SPC_BT709, dst_color_range=ColorRange.MPEG
    )
    y, u, v = (Image.frombuffer("L", image.size, bytes(plane), "raw", "L", plane.line_size, 1) for plane in yuv.planes)
    return y, u.reduce(2), v.reduce(2)


def _working_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Downscale once so the tightest crop still has `size[0]` source pixels across, no more."""
    full_width = min(image.width, image.height * size[0] / size[1])
    scale = size[0] * ZOOM / full_width
    if scale >= 1:
        return image
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _ken_burns_frames(
    planes: tuple[Image.Image, Image.Image, Image.Image], size: tuple[int, int], frame_count: int
) -> Iterator[av.VideoFrame]:
    chroma_size = (size[0] // 2, size[1] // 2)
    luma = planes[0]
    for index in range(frame_count):
        box = _crop_box(index / (frame_count - 1), luma.size, size[0] / size[1])
        frame = av.VideoFrame(size[0], size[1], "yuv420p")
        for plane, picture_size, source in zip(frame.planes, (size, chroma_size, chroma_size), planes, strict=True):
            # The same framing on a plane of another size; bilinear is enough: each frame shrinks it by <= ZOOM.
            scale_x, scale_y = source.width / luma.width, source.height / luma.height
            scaled = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
            _fill(plane, source.resize(picture_size, Image.Resampling.BILINEAR, box=scaled))
        frame.colorspace = _AVCOL_SPC_BT709
        frame.color_range = ColorRange.MPEG
        yield frame


def _fill(plane: av.video.plane.VideoPlane, picture: Image.Image) -> None:
    """The plane's bytes from the picture, each row padded to the plane's line size (FFmpeg aligns rows)."""
    if plane.line_size != picture.width:
        padded = Image.new("L", (plane.line_size, picture.height))
        padded.paste(picture)
        picture = padded
    plane.update(picture.tobytes())


def _crop_box(progress: float, image_size: tuple[int, int], aspect: float) -> tuple[float, float, float, float]:
    """Crop of `aspect` at `progress` (0..1) through the move, in image pixels, sub-pixel exact."""
    eased = (1 - math.cos(math.pi * progress)) / 2
    width, height = image_size
    crop_width = min(width, height * aspect) / ZOOM**eased
    crop_height = min(height, crop_width / aspect)
    left = _lerp(PAN_FROM[0], PAN_TO[0], eased) * (width - crop_width)
    top = _lerp(PAN_FROM[1], PAN_TO[1], eased) * (height - crop_height)
    return (left, top, min(width, left + crop_width), min(height, top + crop_height))


def _lerp(start: float, end: float, fraction: float) -> float:
    return start + (end - start) * fraction


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def _ignore_progress(_fraction: float) -> None:
    return None
