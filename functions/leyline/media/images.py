"""Turn untrusted upload bytes into an RGB image ready to animate, or a clear `InvalidImage`.

The format is judged by the bytes alone, never by a declared Content-Type or file name.
Error codes: EMPTY_FILE, UNSUPPORTED_FORMAT, CORRUPT_IMAGE, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL.
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, ImageOps

from leyline.errors import InvalidImage
from leyline.media.formats import sniff_format

MAX_PIXELS = 50_000_000
"""Largest accepted width x height, checked on the header before any pixel is decoded.

50 MP admits the 48 MP photos of current phone cameras; loading and animating one peaks under
500 MB, well inside a 1769 MB Lambda. Pillow's own bomb warning (~89 MP) caps any override.
"""

MIN_SIDE = 64
"""Shortest accepted side in pixels: below this an upscale to 720p is a smear."""

BACKGROUND = (255, 255, 255)
"""Transparent areas are flattened onto white, the page colour most transparent artwork is drawn for."""

_DISPLAY_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}

# Pillow reports malformed data through all of these, depending on the plugin and where it breaks.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def load_image(data: bytes, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """Decode `data` fully into an upright RGB image (first frame if animated).

    Raises InvalidImage with one of the module's error codes and a sentence meant for the user.
    """
    if not data:
        raise InvalidImage("The uploaded file is empty.", code="EMPTY_FILE")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(
            "The file is not a PNG, JPEG or WebP image. Please upload one of those formats.",
            code="UNSUPPORTED_FORMAT",
        )
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that: make the warning fatal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = _decode(data, fmt, max_pixels=max_pixels, min_side=min_side)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(max_pixels) from exc
        except _DECODE_ERRORS as exc:
            raise InvalidImage(
                f"The {_DISPLAY_NAMES[fmt]} file is damaged or incomplete and cannot be decoded.",
                code="CORRUPT_IMAGE",
            ) from exc
    return _to_rgb(image)


def _decode(data: bytes, fmt: str, *, max_pixels: int, min_side: int) -> Image.Image:
    # Only the sniffed plugin may claim the bytes, so no other Pillow decoder is ever reached.
    image = Image.open(io.BytesIO(data), formats=[fmt.upper()])
    _check_dimensions(image.size, max_pixels=max_pixels, min_side=min_side)
    # A full decode: verify() accepts truncated JPEGs, load() does not.
    image.load()
    return ImageOps.exif_transpose(image)


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
