from datetime import UTC, datetime

import pytest

from leyline.errors import InvalidTaskId
from leyline.models import iso, parse_iso, parse_task_id, task_id_from_upload_key, upload_key, video_key

TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"


def test_task_ids_accept_the_seed_video_file_name():
    # Given the seed's GET /video/<filename> where the file name is <task_id>.mp4
    # When it is parsed, Then the task id comes out
    assert parse_task_id(f"{TASK}.mp4") == TASK
    assert parse_task_id(TASK.upper()) == TASK


@pytest.mark.parametrize("raw", ["", "abc", "../etc/passwd", f"{TASK}x", "3f2b6c1e8d4a4b7e9c1d2a5e6f7a8b9c", "%2e%2e"])
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
