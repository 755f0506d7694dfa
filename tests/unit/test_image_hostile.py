"""Issue 17: hostile images fail fast with a clear code, and unusable metadata never costs a video.

The pure checks run in this process; the time budget forks a child, so those tests are `integration`.
"""

from __future__ import annotations

import multiprocessing
import random
import time

import pytest

from leyline.errors import InvalidImage
from leyline.media.images import MAX_JPEG_SCANS, load_image
from leyline.media.isolation import load_image_within
from leyline.media.jpeg_markers import count_markers
from tests import imagefactory
from tests.imagefactory import BLUE, MALFORMED_EXIF, RED

UNBOUNDED = 10**9


def assert_close(actual, expected, tolerance=12):
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def assert_upright_portrait(image):
    """The red-over-blue 240x320 picture of imagefactory.sideways_with_exif, turned as its EXIF said."""
    assert image.mode == "RGB"
    assert image.size == (240, 320)
    assert_close(image.getpixel((120, 20)), RED)
    assert_close(image.getpixel((120, 300)), BLUE)


# --- Many scans --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [imagefactory.many_scan_jpeg(), imagefactory.many_scan_jpeg(scans=500, own_tables=True)],
    ids=["4000_empty_scans", "500_scans_each_with_its_table_and_fill_bytes"],
)
def test_a_jpeg_of_many_scans_is_refused_before_decoding(data):
    # Given a small, valid 12 MP progressive JPEG with hundreds or thousands of near-empty scans
    assert len(data) < 300_000
    # When it is loaded
    started = time.monotonic()
    with pytest.raises(InvalidImage) as refused:
        load_image(data)
    # Then it is refused as too complex, within seconds rather than the minutes libjpeg would take
    assert refused.value.code == "IMAGE_TOO_COMPLEX"
    assert f"more than {MAX_JPEG_SCANS} scans" in refused.value.message
    assert time.monotonic() - started < 5


def test_a_jpeg_with_scans_up_to_the_limit_still_decodes():
    # Given a progressive JPEG (10 scans of its own) with empty scans up to the limit
    data = imagefactory.many_scan_jpeg(640, 480, scans=MAX_JPEG_SCANS - 10)
    # When it is loaded, Then it is the picture: the extra scans changed nothing
    image = load_image(data)
    assert image.size == (640, 480)
    assert_close(image.getpixel((320, 240)), RED)


def test_real_progressive_jpegs_have_about_ten_scans():
    # Given a JPEG saved progressive by Pillow (libjpeg's standard script)
    data = imagefactory.encode(imagefactory.pattern(), "JPEG", quality=90, progressive=True)
    # When its markers are counted, Then it has 10 scans: the limit leaves a tenfold margin
    assert count_markers(data, stop_above_scans=UNBOUNDED, stop_above_segments=UNBOUNDED).scans == 10
    assert MAX_JPEG_SCANS >= 10 * 10


def test_markers_inside_a_segment_payload_are_not_counted():
    # Given a baseline JPEG that carries a 300-scan JPEG inside an APP13 segment
    data = imagefactory.jpeg_with_embedded_scans(300)
    # When its markers are counted, Then only its own single scan counts, and it loads
    assert count_markers(data, stop_above_scans=UNBOUNDED, stop_above_segments=UNBOUNDED).scans == 1
    assert load_image(data).size == (320, 240)


def test_counting_stops_at_its_bound():
    # Given a JPEG of 4000 extra scans
    data = imagefactory.many_scan_jpeg()
    # When its markers are counted with a bound of 100, Then counting stops just past it
    assert count_markers(data, stop_above_scans=100, stop_above_segments=UNBOUNDED).scans == 101


def test_a_jpeg_of_many_tiny_segments_is_refused():
    # Given a valid JPEG whose header holds 20,000 empty comments (Pillow reads each in Python)
    data = imagefactory.many_segment_jpeg(20_000)
    # When it is loaded, Then it is refused as too complex
    with pytest.raises(InvalidImage) as refused:
        load_image(data)
    assert refused.value.code == "IMAGE_TOO_COMPLEX"


# --- Malformed EXIF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("name", ["resolution_as_text", "positioning_as_fraction", "directory_loop"])
def test_orientation_is_honoured_beside_malformed_tags(name, fmt):
    # Given a portrait picture stored sideways with orientation 6 beside a malformed EXIF tag
    data = imagefactory.sideways_with_exif(MALFORMED_EXIF[name], fmt)
    # When it is loaded, Then it decodes, upright: only the unusable tag was ignored
    assert_upright_portrait(load_image(data))


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("name", ["not_tiff", "directory_outside"])
def test_unreadable_exif_is_ignored(name, fmt):
    # Given a picture whose EXIF block cannot be read at all
    data = imagefactory.sideways_with_exif(MALFORMED_EXIF[name], fmt)
    # When it is loaded, Then its pixels come out as stored (landscape, red on the left)
    image = load_image(data)
    assert image.size == (320, 240)
    assert_close(image.getpixel((20, 120)), RED)


FUZZ_CASES = 400


def test_fuzzed_exif_never_stops_a_decodable_image():
    # Given a few hundred valid JPEG and WebP pictures, each with a randomly damaged phone EXIF block
    rng = random.Random(17)
    # When each is loaded
    failures = []
    for case in range(FUZZ_CASES):
        exif = imagefactory.fuzzed_exif(rng)
        fmt = ("JPEG", "WEBP")[case % 2]
        data = imagefactory.sideways_with_exif(exif, fmt, 96, 64)
        try:
            image = load_image(data)
        except Exception as exc:  # any exception, InvalidImage included, is a lost video
            failures.append((case, fmt, exif.hex(), repr(exc)))
            continue
        # Then it decodes to its pixels, as stored or turned upright, whatever the EXIF said
        assert image.mode == "RGB"
        assert image.size in ((64, 96), (96, 64))
    assert failures == []


# --- The time budget (forks a child) ---------------------------------------------------------------


@pytest.mark.integration
def test_the_isolated_decode_gives_the_same_image():
    # Given valid uploads in each format, one needing EXIF orientation
    for data in (imagefactory.png(), imagefactory.webp(), imagefactory.exif_rotated_jpeg()):
        # When each is decoded in a child, Then the image is the one load_image gives
        isolated, direct = load_image_within(data), load_image(data)
        assert (isolated.mode, isolated.size) == (direct.mode, direct.size)
        assert isolated.tobytes() == direct.tobytes()
    assert multiprocessing.active_children() == []


@pytest.mark.integration
@pytest.mark.parametrize("name", ["truncated_jpeg", "bomb_png_64_megapixels", "jpeg_4000_empty_scans", "gif"])
def test_the_isolated_decode_passes_on_the_childs_verdict(name):
    # Given a bad upload
    data, code = imagefactory.bad_inputs()[name]
    # When it is decoded in a child, Then the child's InvalidImage comes back with its code
    with pytest.raises(InvalidImage) as refused:
        load_image_within(data)
    assert refused.value.code == code


@pytest.mark.integration
@pytest.mark.parametrize(
    ("data", "limits"),
    [
        # The many-scan JPEG with the scan limit lifted: libjpeg alone would take ~8 s.
        (imagefactory.many_scan_jpeg(), {"max_scans": UNBOUNDED}),
        # A PNG with 400,000 empty chunks before its pixels: Pillow reads each in Python, ~5 s.
        (imagefactory.png_with_chunks(400_000), {}),
    ],
    ids=["jpeg_scans_unchecked", "png_400000_chunks"],
)
def test_a_decode_past_its_budget_is_stopped(data, limits):
    # Given a hostile image no pre-check stops, and a budget of 1 s
    started = time.monotonic()
    # When it is decoded in a child
    with pytest.raises(InvalidImage) as refused:
        load_image_within(data, seconds=1, **limits)
    # Then the child is stopped at the budget and the image refused as too complex
    assert refused.value.code == "IMAGE_TOO_COMPLEX"
    assert time.monotonic() - started < 4
    assert multiprocessing.active_children() == []
