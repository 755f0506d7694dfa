"""Issues 3 and 17 through the real local stack: every bad input gets a clear answer fast, good ones become videos."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
from PIL import Image

from tests import imagefactory
from tests.integration.polling import poll_until_final, upload_presigned
from tests.stack import VIDEO_SECONDS
from tests.videoprobe import frame_at, probe_video

pytestmark = pytest.mark.integration

BAD_INPUTS = imagefactory.bad_inputs()
# Refused by the upload form's policy itself (S3's content-length-range starts at 1 byte): they reach the bucket
# only where the policy is not enforced, which store_past_the_policy stands for.
REFUSED_BY_THE_POLICY = {"empty"}


def store_past_the_policy(stack, data: bytes) -> str:
    """A task whose upload is in the bucket although its POST policy refuses it, as an emulator that does not
    enforce the policy would store it (here with the stack's own credentials): the processor re-checks it."""
    ticket = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10).json()
    bucket = stack.physical_name("MediaBucket")
    stack.client("s3").put_object(
        Bucket=bucket, Key=ticket["upload"]["fields"]["key"], Body=data, ContentType="image/png"
    )
    return str(ticket["task_id"])


# What POST /upload can tell from the bytes alone, before anything is stored or queued.
REFUSED_AT_THE_DOOR = {"UNSUPPORTED_FORMAT": 415, "EMPTY_FILE": 400}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_through_the_presigned_flow_ends_in_failure_with_its_code(stack, name):
    # Given bytes that cannot become a video, posted straight to S3 as if they were a PNG
    data, code = BAD_INPUTS[name]
    task_id = (
        store_past_the_policy(stack, data) if name in REFUSED_BY_THE_POLICY else upload_presigned(stack.api_url, data)
    )

    # When the pipeline gets to it, Then the task is a FAILURE with the code and a sentence for a person
    final = poll_until_final(stack.api_url, task_id, timeout=60)[-1]
    assert final["state"] == "FAILURE"
    assert final["error"]["code"] == code
    assert len(final["error"]["message"]) > 10
    assert final["video_url"] is None


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_through_the_form_upload_is_refused_or_fails(stack, name):
    data, code = BAD_INPUTS[name]
    response = requests.post(f"{stack.api_url}/upload", files={"image": ("photo.png", data)}, timeout=30)
    if code in REFUSED_AT_THE_DOOR:
        assert response.status_code == REFUSED_AT_THE_DOOR[code]
        assert response.json()["error"]["code"] == code
    else:
        assert response.status_code == 202
        final = poll_until_final(stack.api_url, response.json()["task_id"], timeout=60)[-1]
        assert (final["state"], final["error"]["code"]) == ("FAILURE", code)


def test_an_upload_over_the_size_limit_fails_even_though_the_emulator_accepted_it(stack):
    # Given a valid PNG padded past MaxUploadBytes, in the bucket past its policy's size range (S3 refuses it; an
    # emulator that does not enforce the policy would store it)
    limit = int(stack.parameters["MaxUploadBytes"])
    data = imagefactory.png() + b"\0" * limit
    task_id = store_past_the_policy(stack, data)
    final = poll_until_final(stack.api_url, task_id, timeout=60)[-1]
    assert (final["state"], final["error"]["code"]) == ("FAILURE", "FILE_TOO_LARGE")


@pytest.mark.parametrize(
    ("make", "content_type"),
    [(imagefactory.png, "image/png"), (imagefactory.jpeg, "image/jpeg"), (imagefactory.webp, "image/webp")],
)
def test_each_accepted_format_becomes_a_browser_ready_moving_video(stack, make, content_type):
    # Given a two-tone picture (red top, blue bottom) in each accepted format
    task_id = upload_presigned(stack.api_url, make(640, 360), content_type)

    # When it is done
    final = poll_until_final(stack.api_url, task_id)[-1]
    assert final["state"] == "SUCCESS"
    video = requests.get(final["video_url"], timeout=10).content

    # Then it is H.264 yuv420p, moov first, 24 fps for the stack's VideoSeconds, even 1280x720
    info = probe_video(video)
    assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
    assert info.fps == 24
    assert info.frame_count == 24 * int(VIDEO_SECONDS)
    assert (info.width, info.height) == (1280, 720)
    # And it moves: the first and last frames differ
    first, last = frame_at(video, 0), frame_at(video, -1)
    assert first.tobytes() != last.tobytes()


def test_a_phone_photo_with_exif_orientation_is_upright(stack):
    # Given a portrait JPEG stored sideways with EXIF orientation 6 (red must end up on top)
    task_id = upload_presigned(stack.api_url, imagefactory.exif_rotated_jpeg(), "image/jpeg")
    final = poll_until_final(stack.api_url, task_id)[-1]
    assert final["state"] == "SUCCESS"

    # Then the video is portrait and its first frame has red at the top and blue at the bottom
    first = upright_portrait_first_frame(final)
    bottom = first.getpixel((first.width // 2, first.height * 7 // 8))
    assert isinstance(bottom, tuple)
    assert bottom[2] > 150 > bottom[0]


def upright_portrait_first_frame(final: dict) -> Image.Image:
    """The finished task's video is portrait and red on top (the test images put red at their top); its first frame."""
    video = requests.get(final["video_url"], timeout=10).content
    info = probe_video(video)
    assert info.height > info.width
    first = frame_at(video, 0)
    top = first.getpixel((first.width // 2, first.height // 8))
    assert isinstance(top, tuple)
    assert top[0] > 150 > top[2]
    return first


def held_the_model_seconds(final: dict) -> float:
    return (datetime.fromisoformat(final["finished_at"]) - datetime.fromisoformat(final["started_at"])).total_seconds()


def test_a_many_scan_jpeg_fails_in_seconds_and_the_task_behind_it_succeeds(stack):
    # Given a small valid JPEG of 4000 near-empty scans (libjpeg alone would take ~8 s on it), and right
    # behind it a good image
    hostile = upload_presigned(stack.api_url, imagefactory.many_scan_jpeg(), "image/jpeg")
    behind = upload_presigned(stack.api_url, imagefactory.png(640, 360))

    # When the model gets to them
    refused = poll_until_final(stack.api_url, hostile, timeout=60)[-1]
    done = poll_until_final(stack.api_url, behind, timeout=60)[-1]

    # Then the hostile one is a FAILURE with the clear code, having held the model for seconds at most
    assert refused["state"] == "FAILURE"
    assert refused["error"]["code"] == "IMAGE_TOO_COMPLEX"
    assert held_the_model_seconds(refused) < 5
    # And the one behind it became a video
    assert done["state"] == "SUCCESS"


@pytest.mark.parametrize(("fmt", "content_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_an_image_with_malformed_exif_becomes_an_upright_video(stack, fmt, content_type):
    # Given a portrait picture stored sideways with orientation 6 beside an EXIF tag Pillow cannot write
    # back (it made the orientation step raise TypeError, retried three times into PROCESSING_FAILED)
    data = imagefactory.sideways_with_exif(imagefactory.MALFORMED_EXIF["resolution_as_text"], fmt)
    task_id = upload_presigned(stack.api_url, data, content_type)

    # When it is done, Then it is a SUCCESS: the pixels decoded, so they made a video
    final = poll_until_final(stack.api_url, task_id)[-1]
    assert final["state"] == "SUCCESS"
    # And the readable orientation was honoured: a portrait video, red on top
    upright_portrait_first_frame(final)
