"""Turn untrusted upload bytes into an RGB image ready to animate, or a clear `InvalidImage`.

The format is judged by the bytes alone, never by a declared Content-Type or file name.
Error codes: EMPTY_FILE, UNSUPPORTED_FORMAT, CORRUPT_IMAGE, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, IMAGE_TOO_COMPLEX.

Decoding runs in this process: `leyline.media.isolation` runs it in a child under a time budget.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from leyline.errors import InvalidImage
from leyline.media.formats import ACCEPTED_NAMES, display_name, sniff_format
from leyline.media.jpeg_markers import count_markers

MAX_PIXELS = 50_000_000
"""Largest accepted width x height, checked on the header before any pixel is decoded.

50 MP admits the 48 MP photos of current phone cameras; loading and animating one peaks under
500 MB, well inside a 1769 MB Lambda. Decoding it in `isolation`'s child holds about 600 MB more
for under a second (the child's decode, the shared pixels, their copy in the parent).
Pillow's own bomb warning (~89 MP) caps any override.
"""

MIN_SIDE = 64
"""Shortest accepted side in pixels: below this an upscale to 720p is a smear."""

MAX_JPEG_SCANS = 100
"""Most scans accepted in a JPEG, counted before decoding.

Encoders write 1 (baseline) or about 10 (libjpeg's and mozjpeg's progressive scripts); each scan makes
libjpeg walk the whole image again, about 15 ms at 48 MP, so 100 scans cost at most ~1.5 s more.
NVIDIA's nvImageCodec refuses above 256 for the same attack; ours is lower to stay within seconds.
"""

MAX_JPEG_SEGMENTS = 10_000
"""Most marker segments accepted in a JPEG: photos have a few dozen, a split XMP or ICC block a few
hundred; Pillow reads each in Python, so millions of empty ones would take it seconds."""

BACKGROUND = (255, 255, 255)
"""Transparent areas are flattened onto white, the page colour most transparent artwork is drawn for."""

_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the image upright (as Pillow's ImageOps.exif_transpose).
_UPRIGHT: dict[object, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def load_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE, max_scans: int = MAX_JPEG_SCANS
) -> Image.Image:
    """Decode `data` fully into an upright RGB image (first frame if animated).

    Raises InvalidImage with one of the module's error codes and a sentence meant for the user; any
    other error the decoder raises on the bytes is CORRUPT_IMAGE. Only MemoryError passes: within the
    pixel limit it says the host is short of memory, which a retry elsewhere can cure.
    """
    if not data:
        raise InvalidImage("The uploaded file is empty.", code="EMPTY_FILE")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(
            f"The file is not a {ACCEPTED_NAMES} image. Please upload one of those formats.",
            code="UNSUPPORTED_FORMAT",
        )
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that: make the warning fatal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Its notes on damaged metadata it skips ("Corrupt EXIF data") are about the upload, not for our logs.
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        try:
            image = _decode(data, fmt, max_pixels=max_pixels, min_side=min_side, max_scans=max_scans)
            # Converting reads decoded metadata too (a palette's transparency): inside the same net.
            return _to_rgb(_upright(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(max_pixels) from exc
        except (InvalidImage, MemoryError):
            raise
        except Exception as exc:  # Pillow's plugins raise many types on malformed bytes, none transient
            raise InvalidImage(
                f"The {display_name(fmt)} file is damaged or incomplete and cannot be decoded.",
                code="CORRUPT_IMAGE",
            ) from exc


def _decode(data: bytes, fmt: str, *, max_pixels: int, min_side: int, max_scans: int) -> Image.Image:
    if fmt == "jpeg":
        _check_jpeg_work(data, max_scans)
    # Only the sniffed plugin may claim the bytes, so no other Pillow decoder is ever reached.
    image = Image.open(io.BytesIO(data), formats=[fmt.upper()])
    _check_dimensions(image.size, max_pixels=max_pixels, min_side=min_side)
    # A full decode: verify() accepts truncated JPEGs, load() does not.
    image.load()
    return image


def _check_jpeg_work(data: bytes, max_scans: int) -> None:
    counts = count_markers(data, stop_above_scans=max_scans, stop_above_segments=MAX_JPEG_SEGMENTS)
    if counts.scans > max_scans:
        raise too_complex(f"it has more than {max_scans} scans")
    if counts.segments > MAX_JPEG_SEGMENTS:
        raise too_complex(f"it has more than {MAX_JPEG_SEGMENTS} marker segments")


def too_complex(reason: str) -> InvalidImage:
    """IMAGE_TOO_COMPLEX: an image within the size limits built to take too long to decode."""
    return InvalidImage(
        f"The image would take too long to decode: {reason}. Please save it again as a standard {ACCEPTED_NAMES}.",
        code="IMAGE_TOO_COMPLEX",
    )


def _upright(image: Image.Image) -> Image.Image:
    """Turns the image as its EXIF orientation says. Metadata is only a hint about pixels that did
    decode: unreadable metadata is ignored, and none is carried over (so none is written back)."""
    try:
        method = _UPRIGHT.get(image.getexif().get(_ORIENTATION))
    except Exception:  # malformed EXIF raises anything from SyntaxError to TypeError
        return image
    return image if method is None else image.transpose(method)


def _check_dimensions(size: tuple[int, int], *, max_pixels: int, min_side: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise _too_large(max_pixels, size)
    if min(width, height) < min_side:
        raise InvalidImage(
            f"The image is {width}x{height} pixels; its shorter side must be at least {min_side} pixels.",
            code="IMAGE_TOO_SMALL",
        )


def _too_large(max_pixels: int, size: tuple[int, int] | None = None) -> InvalidImage:
    limit = f"{max_pixels / 1e6:g} megapixels"
    subject = f"The image is {size[0]}x{size[1]} pixels, more than" if size else "The image exceeds"
    return InvalidImage(f"{subject} the limit of {limit}. Please upload a smaller image.", code="IMAGE_TOO_LARGE")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):
        # 16-bit greyscale PNG: a plain convert() clips every value above 255 to white.
        image = image.convert("I").point(lambda value: value / 257).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
