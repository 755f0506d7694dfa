from datetime import UTC, datetime

import pytest

from leyline.errors import InvalidTaskId
from leyline.models import (
    iso,
    parse_iso,
    parse_task_id,
    task_id_from_upload_key,
    task_id_from_video_url,
    upload_key,
    video_key,
)

TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"


def test_task_ids_accept_the_original_video_file_name():
    # Given the original API's GET /video/<filename> where the file name is <task_id>.mp4
    # When it is parsed, Then the task id comes out
    assert parse_task_id(f"{TASK}.mp4") == TASK
    assert parse_task_id(TASK.upper()) == TASK


@pytest.mark.parametrize(
    "raw", [f"{TASK}\n", "", "abc", "../etc/passwd", f"{TASK}x", "3f2b6c1e8d4a4b7e9c1d2a5e6f7a8b9c", "%2e%2e"]
)
def test_malformed_task_ids_are_refused(raw):
    with pytest.raises(InvalidTaskId):
        parse_task_id(raw)


def test_storage_keys_derive_from_the_task_id_only():
    assert upload_key(TASK) == f"uploads/{TASK}"
    assert video_key(TASK) == f"videos/{TASK}.mp4"
    assert task_id_from_upload_key(upload_key(TASK)) == TASK
    with pytest.raises(InvalidTaskId):
        task_id_from_upload_key(f"videos/{TASK}")


def test_times_are_iso_8601_utc_and_round_trip():
    moment = datetime(2026, 11, 25, 6, 30, 2, 123000, tzinfo=UTC)
    assert iso(moment) == "2026-11-25T06:30:02.123Z"
    assert parse_iso(iso(moment)) == moment
    assert iso(None) is None


@pytest.mark.parametrize(
    "key",
    [f"uploads/{TASK.upper()}", f"uploads/{TASK}.mp4", f"uploads/{TASK}\n", f"uploads/{TASK}/x", f"uploads//{TASK}"],
)
def test_only_the_exact_key_of_the_presigned_post_is_a_tasks_upload(key):
    # Given an object key that only resembles uploads/<task_id> (another case, a suffix, a sub-key)
    # When the intake reads it, Then it names no task (parse_task_id stays lenient for the API's paths)
    with pytest.raises(InvalidTaskId):
        task_id_from_upload_key(key)


@pytest.mark.parametrize(
    "url",
    [
        TASK,
        f"{TASK}.mp4",
        f"http://127.0.0.1:4566/leyline-media/videos/{TASK}.mp4?X-Amz-Credential=a%2Fb%2Fc&X-Amz-Signature=0f",
        f"https://leyline-media.s3.amazonaws.com/videos/{TASK}.mp4?response-content-disposition=inline",
        f"http%3A%2F%2F127.0.0.1%3A4566%2Fleyline-media%2Fvideos%2F{TASK}.mp4%3FX-Amz-Expires%3D3600",
    ],
)
def test_a_video_url_sent_back_in_the_path_names_its_task(url):
    # Given what an original client puts after GET /video/: a task id, its file name, or the whole presigned URL
    # Then the task comes out of its last segment
    assert task_id_from_video_url(url) == TASK


@pytest.mark.parametrize("url", ["", "http://h/videos/", f"http://h/videos/{TASK}.mp4/", "http://h/videos/x.mp4"])
def test_a_video_url_without_a_task_file_at_its_end_is_refused(url):
    with pytest.raises(InvalidTaskId):
        task_id_from_video_url(url)
