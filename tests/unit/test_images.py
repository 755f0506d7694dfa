import io

import pytest
from PIL import Image, ImageFile

from leyline.errors import InvalidImage
from leyline.media.formats import sniff_format
from leyline.media.images import BACKGROUND, MAX_PIXELS, MIN_SIDE, load_image
from tests import imagefactory
from tests.imagefactory import BLUE, RED

BAD_INPUTS = imagefactory.bad_inputs()
VALID = {"png": imagefactory.png(), "jpeg": imagefactory.jpeg(), "webp": imagefactory.webp()}


def assert_close(actual, expected, tolerance=12):
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_every_bad_input_is_refused_with_its_code(name):
    # Given an upload from the bad-input corpus
    data, expected_code = BAD_INPUTS[name]
    # When it is loaded
    with pytest.raises(InvalidImage) as refused:
        load_image(data)
    # Then it is refused with the expected code and a sentence a user can read
    assert refused.value.code == expected_code
    assert refused.value.message.endswith(".")


def test_truncated_jpeg_is_caught_although_pillow_verify_accepts_it():
    # Given a JPEG cut in half, which Pillow's cheap verify() passes
    data, _ = BAD_INPUTS["truncated_jpeg"]
    Image.open(io.BytesIO(data)).verify()
    # When it is loaded
    with pytest.raises(InvalidImage) as refused:
        load_image(data)
    # Then the full decode finds the damage, and Pillow's global leniency was never switched on
    assert refused.value.code == "CORRUPT_IMAGE"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_supported_formats_load_upright_as_rgb(fmt):
    # Given a red-over-blue image in a supported format
    data = VALID[fmt]
    # When it is loaded
    image = load_image(data)
    # Then it is an RGB image of the same size, red on top and blue below
    assert image.mode == "RGB"
    assert image.size == (320, 240)
    assert_close(image.getpixel((160, 20)), RED)
    assert_close(image.getpixel((160, 220)), BLUE)


@pytest.mark.parametrize(
    ("declared_name", "data", "fmt"),
    [
        ("photo.png", VALID["jpeg"], "jpeg"),
        ("photo.jpg", VALID["webp"], "webp"),
        ("photo.webp", VALID["png"], "png"),
        ("photo.png", BAD_INPUTS["gif"][0], None),
        ("photo.jpeg", BAD_INPUTS["svg"][0], None),
    ],
)
def test_format_comes_from_the_bytes_not_the_name(declared_name, data, fmt):
    # Given upload bytes under a name (and so a declared type) that says otherwise
    # When the format is sniffed
    # Then the bytes alone decide it: PNG, JPEG, WebP, or nothing
    assert sniff_format(data) == fmt


@pytest.mark.parametrize("name", ["gif", "bmp", "tiff", "svg", "text", "random_bytes", "heic_header", "empty"])
def test_other_formats_are_not_sniffed(name):
    # Given bytes that are not PNG, JPEG or WebP
    data, _ = BAD_INPUTS[name]
    # When the format is sniffed
    # Then none is recognised
    assert sniff_format(data) is None


def test_exif_orientation_is_honoured():
    # Given a portrait JPEG stored on its side with EXIF orientation 6
    data = imagefactory.exif_rotated_jpeg(240, 320)
    # When it is loaded
    image = load_image(data)
    # Then it is upright: portrait, red on top, blue at the bottom
    assert image.size == (240, 320)
    assert_close(image.getpixel((120, 20)), RED)
    assert_close(image.getpixel((120, 300)), BLUE)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_flattened_onto_the_background(mode):
    # Given a PNG transparent around an opaque square
    data = imagefactory.transparent_png(mode, size=128)
    # When it is loaded
    image = load_image(data)
    # Then it is RGB, the transparent area shows the background and the square is unchanged
    assert image.mode == "RGB"
    assert image.getpixel((2, 2)) == BACKGROUND
    assert image.getpixel((64, 64)) != BACKGROUND


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_give_their_first_frame(fmt):
    # Given an animated image whose first frame is red and second blue
    data = imagefactory.animated(fmt)
    # When it is loaded
    image = load_image(data)
    # Then it is the first frame
    assert_close(image.getpixel((10, 10)), RED, tolerance=2)


def test_16_bit_greyscale_keeps_its_tones():
    # Given a 16-bit greyscale PNG at half intensity
    data = imagefactory.grey16_png(0x8000)
    # When it is loaded
    image = load_image(data)
    # Then it is mid grey, not clipped to white
    assert_close(image.getpixel((5, 5)), (128, 128, 128), tolerance=2)


def test_limits_are_documented_and_overridable():
    # Given a 320x240 PNG, within the default limits
    data = imagefactory.png(320, 240)
    assert MIN_SIDE <= 240
    assert MAX_PIXELS >= 320 * 240
    # When it is loaded with a lower pixel limit or a higher minimum side
    # Then each override applies
    with pytest.raises(InvalidImage) as too_large:
        load_image(data, max_pixels=320 * 240 - 1)
    assert too_large.value.code == "IMAGE_TOO_LARGE"
    with pytest.raises(InvalidImage) as too_small:
        load_image(data, min_side=241)
    assert too_small.value.code == "IMAGE_TOO_SMALL"
    assert load_image(data, max_pixels=320 * 240, min_side=240).size == (320, 240)


def test_pillow_bomb_warning_is_fatal_even_under_a_raised_limit():
    # Given a PNG declaring 100 MP: past Pillow's warning threshold, short of its hard error
    data = imagefactory.png_declaring(10_000, 10_000)
    # When it is loaded with a pixel limit raised above that
    with pytest.raises(InvalidImage) as refused:
        load_image(data, max_pixels=200_000_000)
    # Then Pillow's warning still refuses it before any decoding
    assert refused.value.code == "IMAGE_TOO_LARGE"
