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
from typing import Literal

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


def png_with_chunks(count: int, width: int = 320, height: int = 240) -> bytes:
    """A valid PNG with `count` empty private ancillary chunks between its header and its pixels."""
    data = png(width, height)
    header_end = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
    return data[:header_end] + _png_chunk(b"leYl", b"") * count + data[header_end:]


def noise(width: int = 256, height: int = 256) -> Image.Image:
    """Incompressible content, so truncating the file cuts into the pixel data."""
    channels = [Image.effect_noise((width, height), 64) for _ in range(3)]
    return Image.merge("RGB", channels)


def bad_inputs() -> dict[str, tuple[bytes, str]]:
    """Name -> (upload bytes, the InvalidImage code it must produce)."""
    return {**_unsupported(), **_corrupt(), **_wrong_size(), **_too_complex(), "empty": (b"", "EMPTY_FILE")}


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


def _too_complex() -> dict[str, tuple[bytes, str]]:
    return {
        "jpeg_4000_empty_scans": (many_scan_jpeg(), "IMAGE_TOO_COMPLEX"),
        "jpeg_500_scans_each_with_its_table": (many_scan_jpeg(scans=500, own_tables=True), "IMAGE_TOO_COMPLEX"),
        "jpeg_20000_comment_segments": (many_segment_jpeg(), "IMAGE_TOO_COMPLEX"),
    }


# --- Hostile JPEG structure --------------------------------------------------------------------------

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_EOB_TABLE = 3  # a Huffman table slot Pillow's encoder leaves free


@functools.cache
def many_scan_jpeg(width: int = 4000, height: int = 3000, scans: int = 4000, *, own_tables: bool = False) -> bytes:
    """A valid progressive red JPEG followed by `scans` extra scans that change nothing but take time.

    Each extra scan covers every luma block with end-of-band runs (a few bytes), yet libjpeg walks the
    whole image for it: 4000 of them at 12 MP take libjpeg about 8 s. `own_tables` gives each its own
    Huffman table and pads markers with 0xFF fill bytes, as some encoders write them.
    """
    base = encode(Image.new("RGB", (width, height), RED), "JPEG", quality=90, progressive=True)
    blocks = -(-width // 8) * -(-height // 8)
    scan = b"\xff\xff" + _empty_ac_scan(blocks) if own_tables else _empty_ac_scan(blocks)
    extra = (_eob_table() + scan) * scans if own_tables else _eob_table() + scan * scans
    return base.removesuffix(_EOI) + extra + _EOI


def many_segment_jpeg(segments: int = 20_000) -> bytes:
    """A valid JPEG whose header holds `segments` empty comments: each costs Pillow a Python loop turn."""
    data = jpeg()
    return _SOI + b"\xff\xfe\x00\x02" * segments + data.removeprefix(_SOI)


def jpeg_with_embedded_scans(scans: int = 300) -> bytes:
    """A valid baseline JPEG carrying, in an APP13 segment, a small JPEG of `scans` scans (as a preview):
    the payload's markers are not the image's."""
    preview = many_scan_jpeg(64, 64, scans)
    data = jpeg()
    return _SOI + _segment(0xED, preview) + data.removeprefix(_SOI)


def _segment(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def _eob_table() -> bytes:
    """DHT: AC table _EOB_TABLE coding the 15 end-of-band-run symbols EOB0..EOB14 in 4 bits each."""
    counts = bytes(3) + bytes([15]) + bytes(12)
    return _segment(0xC4, bytes([0x10 | _EOB_TABLE]) + counts + bytes(k << 4 for k in range(15)))


def _empty_ac_scan(blocks: int) -> bytes:
    """SOS for component 1, AC band 1..63, first pass; its data: EOB runs over `blocks` blocks."""
    header = struct.pack(">BBBBBB", 1, 1, _EOB_TABLE, 1, 63, 0)
    bits = ""
    while blocks:
        run = min(blocks, 32767)  # EOB14 with 14 extra bits is the longest run
        size = run.bit_length() - 1
        bits += format(size, "04b") + (format(run - (1 << size), f"0{size}b") if size else "")
        blocks -= run
    bits += "1" * (-len(bits) % 8)  # pad with ones, as JPEG requires
    coded = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")  # byte stuffing
    return _segment(0xDA, header) + coded


# --- Malformed EXIF --------------------------------------------------------------------------------

_SHORT, _ASCII, _LONG, _RATIONAL = 3, 2, 4, 5


def tiff_exif(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """EXIF block (little-endian TIFF, one IFD) from raw (tag, type, count, value bytes) entries,
    whatever they say: values over 4 bytes go after the IFD."""
    values_at = 8 + 2 + 12 * len(entries) + 4
    directory, values = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            directory += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        else:
            directory += struct.pack("<HHII", tag, kind, count, values_at + len(values))
            values += value
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + directory + bytes(4) + values


_ROTATE_6 = (EXIF_ORIENTATION, _SHORT, 1, struct.pack("<H", ROTATE_90_CW_TO_DISPLAY))

MALFORMED_EXIF = {
    # Orientation 6 (readable) beside a tag Pillow cannot write back: ImageOps.exif_transpose raised TypeError.
    "resolution_as_text": tiff_exif([_ROTATE_6, (0x011A, _ASCII, 8, b"seventy\0")]),
    # ... or struct.error.
    "positioning_as_fraction": tiff_exif([_ROTATE_6, (0x0213, _RATIONAL, 1, struct.pack("<II", 1, 0))]),
    # Not TIFF at all: Pillow's EXIF reader raises SyntaxError.
    "not_tiff": b"Exif\0\0XX*\0\x08\0\0\0",
    # The first directory far outside the block.
    "directory_outside": b"Exif\0\0II*\0" + struct.pack("<I", 0x7FFFFFFF),
    # The EXIF sub-directory pointing back at the first one.
    "directory_loop": tiff_exif([_ROTATE_6, (0x8769, _LONG, 1, struct.pack("<I", 8))]),
}
"""Name -> EXIF block; where it says orientation 6 that much is readable."""


def sideways_with_exif(exif: bytes, fmt: str = "JPEG", width: int = 240, height: int = 320) -> bytes:
    """Like exif_rotated_jpeg (portrait, stored turned a quarter left) but with the given EXIF bytes."""
    return encode(two_tone(width, height).rotate(90, expand=True), fmt, quality=90, exif=exif)


def fuzzed_exif(rng: random.Random) -> bytes:
    """A plausible phone EXIF block (orientation, text, fractions, sub-directories) with a few random
    byte changes, cuts, insertions or entry types rewritten."""
    block = bytearray(_phone_exif())
    for _ in range(rng.randint(1, 6)):
        where = rng.randrange(6, len(block))
        roll = rng.random()
        if roll < 0.5:
            block[where] = rng.randrange(256)
        elif roll < 0.7:  # the low byte of a first-directory entry's type (TIFF's types are 1..13)
            at = _type_byte(rng.randrange(_phone_exif_entries()))
            if at < len(block):
                block[at] = rng.randrange(1, 14)
        elif roll < 0.85:
            del block[max(8, where) :]
        else:
            block[where:where] = rng.randbytes(rng.randint(1, 8))
    return bytes(block)


@functools.cache
def _phone_exif() -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_TO_DISPLAY
    exif[0x010F] = "Maker"
    exif[0x0110] = "Phone 12"
    exif[0x011A] = 72.0
    exif[0x0128] = 2
    exif[0x0131] = "Camera 1.0"
    exif.get_ifd(0x8769).update({0x9003: "2024:06:01 12:00:00", 0x829A: 0.01, 0x8827: 100})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 5.5)})
    return exif.tobytes()


def _phone_exif_order() -> Literal["little", "big"]:
    return "little" if _phone_exif()[6:8] == b"II" else "big"


def _phone_exif_entries() -> int:
    # After "Exif\0\0" (6 bytes) and the TIFF header (8, pointing at the directory right after it).
    return int.from_bytes(_phone_exif()[14:16], _phone_exif_order())


def _type_byte(entry: int) -> int:
    """Offset of the low byte of entry `entry`'s 2-byte type (entries: tag, type, count, value)."""
    return 16 + 12 * entry + (2 if _phone_exif_order() == "little" else 3)


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
