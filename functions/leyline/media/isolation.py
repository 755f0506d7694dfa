"""Decode untrusted bytes in a forked child that is killed past a time budget.

Pre-checks bound the tricks we know of (pixel counts, JPEG scans); the budget bounds the ones we do not:
whatever the bytes, the model is held for at most DECODE_SECONDS before the task fails with a clear code.
Lambda has no /dev/shm, so multiprocessing's Queue and Pool fail there; a forked Process, a Pipe for
the verdict and an anonymous shared mapping for the pixels need none.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import multiprocessing
import resource
import signal
import sys
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

from PIL import Image

from leyline.errors import InvalidImage
from leyline.media.images import MAX_JPEG_SCANS, MAX_PIXELS, MIN_SIDE, load_image, too_complex

DECODE_SECONDS = 8.0
"""Longest a decode may take. The slowest valid uploads (a 49 MP WebP, a 48 MP progressive JPEG) decode
in about 2 s on one core; hostile ones that pass the pre-checks (a million empty PNG chunks, megabytes
of JPEG fill bytes) take 10 s or more per 10 MB."""

_FORK = multiprocessing.get_context("fork")
_RGB_BYTES_PER_PIXEL = 3


def load_image_within(
    data: bytes,
    *,
    seconds: float = DECODE_SECONDS,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    max_scans: int = MAX_JPEG_SCANS,
) -> Image.Image:
    """`load_image` run in a child: its image, its InvalidImage, or IMAGE_TOO_COMPLEX once `seconds` pass.

    A MemoryError in the child is raised here, to be retried like any other fault of the host.
    """
    receiver, sender = _FORK.Pipe(duplex=False)
    # Shared with the child; a page costs memory only once the child writes it.
    pixels = mmap.mmap(-1, max_pixels * _RGB_BYTES_PER_PIXEL)
    # The child inherits unflushed output and would write it a second time when it exits.
    sys.stdout.flush()
    sys.stderr.flush()
    child = _FORK.Process(
        target=_decode_and_send,
        args=(sender, pixels, data, seconds, {"max_pixels": max_pixels, "min_side": min_side, "max_scans": max_scans}),
        name="image-decode",
        daemon=True,
    )
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise too_complex(f"decoding it takes more than {seconds:g} seconds")
        return _receive(receiver, child, pixels)
    finally:
        child.kill()
        child.join()
        receiver.close()
        pixels.close()


def _decode_and_send(
    sender: Connection, pixels: mmap.mmap, data: bytes, seconds: float, limits: dict[str, int]
) -> None:
    _stop_self_after(seconds)
    # Any other exception is a bug of ours: the child prints it and exits 1 (see _receive).
    try:
        image = load_image(data, **limits)
        raw = image.tobytes()
        pixels[: len(raw)] = raw
    except InvalidImage as refused:
        sender.send(("invalid", refused.code, refused.message))
    except MemoryError:
        sender.send(("memory",))
    else:
        sender.send(("image", image.mode, image.size, len(raw)))


def _stop_self_after(seconds: float) -> None:
    """Should the parent die mid-decode (a local worker stopped by PID), the kernel still ends this
    orphan one second of CPU past the budget, without writing a core file. Best effort: a sandbox
    that refuses the limits still gets its decode, bounded by the parent."""
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = math.ceil(seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _receive(receiver: Connection, child: BaseProcess, pixels: mmap.mmap) -> Image.Image:
    try:
        kind, *details = receiver.recv()
    except EOFError:
        child.join()
        if child.exitcode is not None and child.exitcode < 0 and child.exitcode != -signal.SIGKILL:
            # A native decoder crashed on the bytes (SIGSEGV, SIGABRT...): it would again on a retry.
            raise InvalidImage("The image file is damaged and cannot be decoded.", code="CORRUPT_IMAGE") from None
        # Killed from outside (out of memory) or an exception of ours: a fault of the host or the code.
        raise RuntimeError(f"the image decoder exited with {child.exitcode} before answering") from None
    if kind == "invalid":
        code, message = details
        raise InvalidImage(message, code=code)
    if kind == "memory":
        raise MemoryError("decoding the image ran out of memory")
    mode, size, length = details
    with memoryview(pixels) as view:
        # Pillow copies from any buffer (its stubs say bytes): no extra copy of the pixels here.
        return Image.frombytes(mode, size, cast(bytes, view[:length]))
