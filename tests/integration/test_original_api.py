"""The original README's curl flow and the presigned flow, over real HTTP against the local stack."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest
import requests

from tests.integration.polling import poll_until_final, upload_form, upload_presigned
from tests.reliability.support import eventually

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "image.png"


def test_original_curl_flow_produces_a_downloadable_mp4(stack):
    # Given the original API's `curl -X POST -F "image=@examples/image.png" http://localhost:8080/upload`
    response = requests.post(f"{stack.api_url}/upload", files={"image": EXAMPLE.open("rb")}, timeout=10)

    # Then it is accepted with a task id and where to watch it
    assert response.status_code == 202
    body = response.json()
    task_id = body["task_id"]
    assert body["status_url"] == f"/status/{task_id}"

    # When its status is polled, Then it moves PENDING/QUEUED -> PROCESSING (rising progress) -> SUCCESS
    seen = poll_until_final(stack.api_url, task_id)
    states = [snapshot["state"] for snapshot in seen]
    assert "PROCESSING" in states
    assert states[-1] == "SUCCESS"
    progress = [snapshot["progress"] for snapshot in seen]
    assert progress == sorted(progress), "progress never goes down"
    assert len({p for s, p in zip(states, progress, strict=True) if s == "PROCESSING"}) >= 2, "progress rises"
    final = seen[-1]
    assert final["progress"] == 100
    assert final["error"] is None
    assert final["started_at"]
    assert final["finished_at"]
    assert final["created_at"]

    # And the presigned video_url downloads an MP4 from the user's machine
    video = requests.get(final["video_url"], timeout=10)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"

    # And GET /video/<task_id> (also as the original API's <task_id>.mp4 file name) redirects to it
    for name in (task_id, f"{task_id}.mp4"):
        redirect = requests.get(f"{stack.api_url}/video/{name}", allow_redirects=False, timeout=10)
        assert redirect.status_code == 302
        followed = requests.get(redirect.headers["Location"], timeout=10)
        assert followed.content == video.content


def test_a_client_written_for_the_original_api_runs_its_whole_sequence_unchanged(stack):
    """The original system answered `video_url` with a bare file name and served it at GET /video/<filename>, so its
    clients call GET /video/<video_url>. Here video_url is a presigned URL: that same call must still work."""
    client = requests.Session()

    # Given the original client's upload: POST /upload, multipart, field `image`
    accepted = client.post(f"{stack.api_url}/upload", files={"image": EXAMPLE.open("rb")}, timeout=10)
    assert accepted.status_code == 202
    task_id = accepted.json()["task_id"]

    # When it polls GET /status/<task_id> until SUCCESS (bounded) and reads video_url
    deadline = time.monotonic() + 120
    while (status := client.get(f"{stack.api_url}/status/{task_id}", timeout=10).json())["state"] != "SUCCESS":
        assert status["state"] != "FAILURE", status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    video_url = status["video_url"]

    # And asks for GET /video/<video_url> exactly as it was written for the original API, following the redirect
    video = client.get(f"{stack.api_url}/video/{video_url}", timeout=10)

    # Then it gets the MP4, through the same 302 as GET /video/<task_id>
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"
    assert [hop.status_code for hop in video.history] == [302]
    by_id = client.get(f"{stack.api_url}/video/{task_id}", allow_redirects=False, timeout=10)
    assert video.history[0].headers["Location"].split("?")[0] == by_id.headers["Location"].split("?")[0]

    # And HEAD on those GET routes answers as GET does, without a body, through the gateway too
    for path in (f"/status/{task_id}", f"/video/{task_id}", f"/video/{video_url}", "/"):
        head = client.head(f"{stack.api_url}{path}", timeout=10)
        assert head.status_code == (302 if path.startswith("/video/") else 200), path
        assert head.content == b""


def test_presigned_flow_goes_straight_to_s3(stack):
    # Given a presigned POST for a PNG
    ticket = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10)
    assert ticket.status_code == 201
    body = ticket.json()
    assert body["upload"]["fields"]["key"] == f"uploads/{body['task_id']}"
    assert body["max_bytes"] > 0
    assert body["expires_in"] > 0
    assert requests.get(f"{stack.api_url}{body['status_url']}", timeout=10).json()["state"] == "PENDING"

    # When the browser/CLI posts the file directly to the bucket
    stored = requests.post(
        body["upload"]["url"], data=body["upload"]["fields"], files={"file": EXAMPLE.read_bytes()}, timeout=10
    )
    assert stored.status_code in (200, 201, 204)

    # Then the pipeline picks it up and the task ends in SUCCESS with a video
    final = poll_until_final(stack.api_url, body["task_id"])[-1]
    assert final["state"] == "SUCCESS"
    assert requests.get(final["video_url"], timeout=10).content[4:8] == b"ftyp"


def test_tasks_run_one_at_a_time_in_arrival_order_while_queue_positions_count_down(stack):
    # Given three uploads made back to back
    task_ids = [upload_form(stack.api_url, EXAMPLE.read_bytes()) for _ in range(2)]
    task_ids.append(upload_presigned(stack.api_url, EXAMPLE.read_bytes()))

    # When the last one is watched until it is done
    watched = poll_until_final(stack.api_url, task_ids[-1])

    # Then its queue position only ever counts down, from tasks ahead to 0
    positions = [s["queue_position"] for s in watched if s["state"] in ("QUEUED", "PROCESSING")]
    assert positions, "the task was seen waiting"
    assert positions == sorted(positions, reverse=True)
    assert positions[0] >= 1
    assert positions[-1] == 0
    assert all(s["eta_seconds"] is not None for s in watched if s["state"] in ("QUEUED", "PROCESSING"))

    # And no two tasks were in the model at the same time, and they ran in arrival order
    finals = [poll_until_final(stack.api_url, task_id)[-1] for task_id in task_ids]
    assert all(final["state"] == "SUCCESS" for final in finals)
    intervals = [(final["started_at"], final["finished_at"]) for final in finals]
    for (_, earlier_finish), (later_start, _) in itertools.pairwise(intervals):
        assert earlier_finish <= later_start


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/status/3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", 404, "TASK_NOT_FOUND"),
        ("/status/not-a-task", 400, "INVALID_TASK_ID"),
        ("/video/3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c", 404, "TASK_NOT_FOUND"),
        ("/video/..%2F..%2Fetc%2Fpasswd", 400, "INVALID_TASK_ID"),
    ],
)
def test_unknown_and_malformed_ids_get_error_objects(stack, path, status, code):
    response = requests.get(f"{stack.api_url}{path}", allow_redirects=False, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_upload_without_image_field_or_too_big_is_refused(stack):
    missing = requests.post(f"{stack.api_url}/upload", files={"picture": b"x"}, timeout=10)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MISSING_IMAGE"

    # Over MaxFormUploadBytes (4 MiB) yet under Lambda's payload limit: the function's own answer
    too_big = requests.post(f"{stack.api_url}/upload", files={"image": b"\x89PNG" + b"0" * 4_300_000}, timeout=30)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "FILE_TOO_LARGE"
    # Past Lambda's 6 MB payload limit API Gateway itself answers 413, as the local gateway does
    huge = requests.post(f"{stack.api_url}/upload", files={"image": b"\x89PNG" + b"0" * 6_000_000}, timeout=30)
    assert huge.status_code == 413

    not_json = requests.post(
        f"{stack.api_url}/uploads", data=b"{oops", headers={"content-type": "application/json"}, timeout=10
    )
    assert not_json.status_code == 400
    assert json.loads(not_json.content)["error"]["code"] == "MALFORMED_JSON"


def function_log_records(stack) -> list[tuple[str, dict]]:
    """(logical id, record) for every structured log line the functions wrote to the stack's output."""
    records = []
    for line in stack.log_text().splitlines():
        match = re.match(r"^\[(\w+Function)\] (\{.*\})$", line)
        if match:
            record = json.loads(match.group(2))
            if "level" in record:
                records.append((match.group(1), record))
    return records


def test_every_log_line_about_a_task_carries_its_id(stack):
    # Given a task taken through the whole pipeline
    task_id = upload_form(stack.api_url, EXAMPLE.read_bytes())
    assert poll_until_final(stack.api_url, task_id)[-1]["state"] == "SUCCESS"

    # Then each function that handled it logged JSON lines with its task id (the processor's last line comes
    # just after the SUCCESS write that the status showed, so it may take a moment to reach the log)
    expected = {"ApiFunction", "IntakeFunction", "ProcessorFunction"}

    def logged() -> list[tuple[str, dict]] | None:
        records = function_log_records(stack)
        about_it = {function for function, record in records if record.get("task_id") == task_id}
        return records if expected <= about_it else None

    records = eventually(logged, timeout=10, what=f"log lines with the task id from each of {sorted(expected)}")
    # And no line lacks a task id, but refusals of requests that never made a task
    anonymous = [record for _, record in records if "task_id" not in record]
    assert all(record["message"] == "request refused" for record in anonymous), anonymous[:3]
