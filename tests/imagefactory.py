"""Images made in memory for tests: valid uploads whose content is checkable, and the bad-input corpus.

Unit and integration tests share this module so both refuse exactly the same uploads.
Valid images are red on top and blue at the bottom, so a rotation or a flip shows.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib

from PIL import Image, ImageDraw

RED = (220, 30, 30)
BLUE = (30, 60, 220)
GREEN = (40, 170, 60)

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW_TO_DISPLAY = 6


def two_tone(width: int = 320, height: int = 240) -> Image.Image:
    """Top half red, bottom half blue."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width, height // 2))
    return image


def pattern(width: int = 640, height: int = 360) -> Image.Image:
    """Two-tone with a green checker drawn over it: detail that shows any zoom or pan."""
    image = two_tone(width, height)
    draw = ImageDraw.Draw(image)
    cell = max(8, width // 16)
    for top in range(0, height, cell):
        for left in range((top // cell) % 2 * cell, width, 2 * cell):
            draw.rectangle((left + cell // 4, top + cell // 4, left + cell // 2, top + cell // 2), fill=GREEN)
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """`image` saved as `fmt` ("PNG", "JPEG", "WEBP", ...) with Pillow's save parameters."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png(width: int = 320, height: int = 240) -> bytes:
    return encode(two_tone(width, height), "PNG")


def jpeg(width: int = 320, height: int = 240) -> bytes:
    return encode(two_tone(width, height), "JPEG", quality=90)


def webp(width: int = 320, height: int = 240) -> bytes:
    return encode(two_tone(width, height), "WEBP", quality=90)


def exif_rotated_jpeg(width: int = 240, height: int = 320) -> bytes:
    """A `width` x `height` two-tone stored turned a quarter left, with EXIF orientation 6 to undo it.

    A decoder that ignores EXIF sees a landscape image, red on the left.
    """
    stored = two_tone(width, height).rotate(90, expand=True)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_TO_DISPLAY
    return encode(stored, "JPEG", quality=90, exif=exif)


def transparent_png(mode: str = "RGBA", size: int = 128) -> bytes:
    """Transparent everywhere except an opaque red square in the middle.

    `mode` is "RGBA", "LA" (the square is grey) or "P" (palette with a transparent index).
    """
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    image.paste((*RED, 255), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    if mode == "P":
        return encode(image.convert("P"), "PNG", transparency=0)
    return encode(image.convert(mode), "PNG")


def animated(fmt: str, size: tuple[int, int] = (160, 120)) -> bytes:
    """Two frames, red then blue, as an animated "PNG" (APNG) or "WEBP"."""
    frames = [Image.new("RGB", size, RED), Image.new("RGB", size, BLUE)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)


def grey16_png(level: int = 0x8000, size: int = 96) -> bytes:
    """A 16-bit greyscale PNG of one `level` (0..65535)."""
    return encode(Image.new("I;16", (size, size), level), "PNG")


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims width x height over a few bytes of pixel data."""
    return _png_header(width, height) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


def noise(width: int = 256, height: int = 256) -> Image.Image:
    """Incompressible content, so truncating the file cuts into the pixel data."""
    channels = [Image.effect_noise((width, height), 64) for _ in range(3)]
    return Image.merge("RGB", channels)


def bad_inputs() -> dict[str, tuple[bytes, str]]:
    """Name -> (upload bytes, the InvalidImage code it must produce)."""
    return {**_unsupported(), **_corrupt(), **_wrong_size(), "empty": (b"", "EMPTY_FILE")}


def _unsupported() -> dict[str, tuple[bytes, str]]:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="200" height="200"/></svg>'
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic"
    entries = {
        "gif": encode(two_tone(), "GIF"),
        "bmp": encode(two_tone(), "BMP"),
        "tiff": encode(two_tone(), "TIFF"),
        "svg": svg,
        "text": b"Hello, this is not an image.\n",
        "random_bytes": random.Random(20240601).randbytes(4096),
        "heic_header": heic + bytes(64),
    }
    return {name: (data, "UNSUPPORTED_FORMAT") for name, data in entries.items()}


def _corrupt() -> dict[str, tuple[bytes, str]]:
    photo = noise()
    entries = {
        "truncated_png": _half(encode(photo, "PNG")),
        "truncated_jpeg": _half(encode(photo, "JPEG", quality=90)),
        "truncated_webp": _half(encode(photo, "WEBP", quality=90)),
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "jpeg_magic_then_garbage": b"\xff\xd8\xff" + bytes(range(256)) * 4,
        "webp_header_then_garbage": b"RIFF" + struct.pack("<I", 1028) + b"WEBP" + bytes(1024),
    }
    return {name: (data, "CORRUPT_IMAGE") for name, data in entries.items()}


def _wrong_size() -> dict[str, tuple[bytes, str]]:
    return {
        "bomb_png_64_megapixels": (_compressible_png_bomb(), "IMAGE_TOO_LARGE"),
        "bomb_png_header_400_megapixels": (png_declaring(20_000, 20_000), "IMAGE_TOO_LARGE"),
        "bomb_jpeg_header_900_megapixels": (_jpeg_declaring(30_000, 30_000), "IMAGE_TOO_LARGE"),
        "too_small": (png(32, 32), "IMAGE_TOO_SMALL"),
        "too_thin": (png(1000, 10), "IMAGE_TOO_SMALL"),
    }


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(width: int, height: int, bit_depth: int = 8) -> bytes:
    """Signature and IHDR of a greyscale PNG, without pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


@functools.cache
def _compressible_png_bomb(side: int = 8_000) -> bytes:
    """A genuine, decodable black 1-bit PNG of side x side pixels in about 10 kB."""
    row = b"\0" * (1 + side // 8)  # filter byte 0, then 8 pixels per byte
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return _png_header(side, side, bit_depth=1) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A valid small JPEG whose frame header (SOF0) is patched to claim width x height."""
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    # SOF0: marker(2) length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)
