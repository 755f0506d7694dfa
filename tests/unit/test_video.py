import itertools

import pytest
from PIL import Image, ImageChops, ImageStat

from leyline.media.images import load_image
from leyline.media.video import output_size, render_video
from tests import imagefactory
from tests.imagefactory import BLUE, RED
from tests.videoprobe import frame_at, probe_video


# Tests that render a clip are `slow` (seconds of H.264 encoding each); choosing the size and refusing are not.
@pytest.fixture(scope="module")
def landscape_clip() -> tuple[bytes, list[float]]:
    """A default clip of a detailed 16:9 image, with every progress report it made."""
    progress: list[float] = []
    data = render_video(imagefactory.pattern(640, 360), on_progress=progress.append)
    return data, progress


@pytest.fixture(scope="module")
def portrait_clip() -> bytes:
    """A default clip of a portrait JPEG stored on its side with EXIF orientation 6."""
    return render_video(load_image(imagefactory.exif_rotated_jpeg(360, 640)))


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    return ImageStat.Stat(ImageChops.difference(first, second).convert("L")).mean[0]


def mean_colour(image: Image.Image, box: tuple[int, int, int, int]) -> list[float]:
    return ImageStat.Stat(image.crop(box)).mean


def assert_close(actual, expected, tolerance=20):
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


@pytest.mark.slow
def test_default_clip_is_browser_ready_h264(landscape_clip):
    # Given a default clip of a landscape image
    data, _ = landscape_clip
    # When it is probed
    info = probe_video(data)
    # Then it is H.264 High/Main in yuv420p, moov first, 720p, at least 24 fps and 2 s
    assert info.codec == "h264"
    assert info.profile in ("High", "Main")
    assert info.pix_fmt == "yuv420p"
    assert info.faststart
    assert (info.width, info.height) == (1280, 720)
    assert info.fps >= 24
    assert info.duration >= 2


@pytest.mark.slow
def test_default_clip_has_one_frame_per_tick(landscape_clip):
    # Given a default clip (3 s at 24 fps)
    data, _ = landscape_clip
    # When its frames are decoded
    info = probe_video(data)
    # Then there are exactly 72 of them over 3 seconds
    assert info.frame_count == 72
    assert info.duration == pytest.approx(3.0)


@pytest.mark.slow
def test_clip_moves_and_eases_in(landscape_clip):
    # Given a default clip
    data, _ = landscape_clip
    # When its first, second, middle and last frames are compared
    first, second, last = frame_at(data, 0), frame_at(data, 1), frame_at(data, -1)
    middle, after_middle = frame_at(data, 35), frame_at(data, 36)
    # Then the picture moves, slowly at the start and fastest in the middle
    assert mean_difference(first, last) > 3
    assert mean_difference(first, second) < mean_difference(middle, after_middle)


@pytest.mark.slow
def test_portrait_input_gives_an_upright_portrait_video(portrait_clip):
    # Given a clip of a portrait photo that only EXIF turns upright
    info = probe_video(portrait_clip)
    # When its first frame is decoded
    first = frame_at(portrait_clip, 0)
    # Then the video is portrait with even sides, red on top and blue at the bottom
    assert info.height > info.width
    assert info.width % 2 == 0
    assert info.height % 2 == 0
    assert max(info.width, info.height) <= 1920
    assert_close(mean_colour(first, (0, 0, first.width, first.height // 8)), RED)
    assert_close(mean_colour(first, (0, first.height * 7 // 8, first.width, first.height)), BLUE)


@pytest.mark.slow
def test_progress_rises_to_exactly_one(landscape_clip):
    # Given the progress reports of a default clip
    _, progress = landscape_clip
    # When they are inspected
    # Then there is one per frame plus the final one, each higher than the last, ending at 1.0
    assert len(progress) == 72 + 1
    assert all(0 < fraction <= 1 for fraction in progress)
    assert all(earlier < later for earlier, later in itertools.pairwise(progress))
    assert progress[-1] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("colour", [RED, BLUE])
def test_colours_survive_the_yuv_round_trip(colour):
    # Given a flat colour
    image = Image.new("RGB", (320, 180), colour)
    # When a clip of it is rendered and its first frame decoded as its colour tags say
    first = frame_at(render_video(image, seconds=1.0), 0)
    # Then the colour matches: the RGB to YUV matrix agrees with the BT.709 tags
    assert_close(first.getpixel((10, 10)), colour, tolerance=6)


@pytest.mark.slow
def test_length_and_rate_are_honoured():
    # Given a square image
    image = imagefactory.pattern(400, 400)
    # When a 2 s clip at 30 fps is rendered
    data = render_video(image, seconds=2.0, fps=30)
    # Then it has 60 frames over 2 s at 30 fps, in a square frame
    info = probe_video(data)
    assert (info.frame_count, info.fps) == (60, 30)
    assert info.duration == pytest.approx(2.0)
    assert info.width == info.height


def test_a_clip_too_short_to_move_is_refused():
    # Given an image
    image = imagefactory.two_tone()
    # When a clip of a single frame is asked for
    # Then the request is refused
    with pytest.raises(ValueError, match="fewer than 2 frames"):
        render_video(image, seconds=0.01)


@pytest.mark.parametrize(
    ("image_size", "expected"),
    [
        ((1920, 1080), (1280, 720)),
        ((6000, 4000), (1280, 720)),
        ((9000, 1000), (1280, 720)),
        ((1000, 1000), (960, 960)),
        ((4000, 3000), (1108, 832)),
        ((1080, 1920), (720, 1280)),
        ((500, 5000), (720, 1280)),
    ],
)
def test_output_keeps_landscape_at_720p_and_other_shapes_at_a_similar_pixel_count(image_size, expected):
    # Given an image size
    # When the video size is chosen
    size = output_size(*image_size)
    # Then landscape gets 1280x720, other shapes keep their ratio (no taller than 9:16) at ~0.9 MP
    assert size == expected
    assert all(side % 2 == 0 and side <= 1920 for side in size)
