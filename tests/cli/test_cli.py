"""`leyline generate` and `leyline status`, run as a person or a script runs them, against the local stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.testing import LocalStack, free_port
from leyline.client.api import LeylineClient
from tests.imagefactory import encode, pattern, png
from tests.integration.polling import poll_until_final, upload_presigned
from tests.videoprobe import top_level_boxes

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).parents[2] / "functions"
UNKNOWN_TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
UNWRITABLE = "/sys"  # Linux's sysfs: no file can be created at its top, not even by root


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encode(pattern(), "PNG"))
    return path


def test_generate_saves_a_complete_mp4_and_says_where(stack: LocalStack, photo: Path, tmp_path: Path) -> None:
    # When a person turns a photo into a video
    run = leyline("generate", "photo.png", "-o", "out.mp4", "--api", stack.api_url, cwd=tmp_path)

    # Then it succeeds, says where the video is, and drew its progress on stderr
    assert run.returncode == 0, run.stderr
    assert run.stdout == "video saved to out.mp4\n"
    assert "uploading" in run.stderr
    assert "generating" in run.stderr
    assert "100%" in run.stderr

    # And the file is a whole MP4, with nothing half-written left beside it
    video = (tmp_path / "out.mp4").read_bytes()
    assert video[4:8] == b"ftyp"
    assert {"moov", "mdat"} <= set(top_level_boxes(video))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4", "photo.png"]


def test_generate_json_takes_the_api_from_the_environment(stack: LocalStack, photo: Path, tmp_path: Path) -> None:
    # When a script runs generate with --json and LEYLINE_API_URL, without -o
    run = leyline("generate", str(photo), "--json", cwd=tmp_path, env={"LEYLINE_API_URL": stack.api_url})

    # Then stdout is one JSON document: the final status and where the video went (IMAGE's name + .mp4)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["state"] == "SUCCESS"
    assert result["output"] == str(tmp_path / "photo.mp4")
    assert Path(result["output"]).read_bytes()[4:8] == b"ftyp"


def test_status_prints_a_task_for_people_and_for_scripts(stack: LocalStack, photo: Path, tmp_path: Path) -> None:
    # Given a finished task
    task_id = upload_presigned(stack.api_url, photo.read_bytes())
    poll_until_final(stack.api_url, task_id)

    # When its status is asked for, Then people get aligned lines
    human = leyline("status", task_id, "--api", stack.api_url, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert f"task     {task_id}" in human.stdout.splitlines()
    assert "state    SUCCESS" in human.stdout.splitlines()
    assert "progress 100%" in human.stdout.splitlines()

    # And scripts get the API's status JSON
    machine = leyline("status", task_id, "--api", stack.api_url, "--json", cwd=tmp_path)
    assert machine.returncode == 0, machine.stderr
    status = json.loads(machine.stdout)
    assert (status["task_id"], status["state"], status["progress"]) == (task_id, "SUCCESS", 100)


def test_a_failed_task_exits_1_with_the_apis_message(stack: LocalStack, tmp_path: Path) -> None:
    # Given an image the model refuses: too small to animate
    (tmp_path / "icon.png").write_bytes(png(32, 32))

    # When it is turned into a video
    run = leyline("generate", "icon.png", "--api", stack.api_url, "--json", cwd=tmp_path)

    # Then the exit code is 1, stdout has the final status, and stderr ends with its message on one line
    assert run.returncode == 1
    status = json.loads(run.stdout)
    assert status["state"] == "FAILURE"
    assert status["output"] is None
    assert_one_error_line(run.stderr, f"the video could not be made: {status['error']['message']}")
    assert not (tmp_path / "icon.mp4").exists()


def _missing_file(api_url: str, tmp_path: Path) -> list[str]:
    return ["generate", "nowhere.png", "--api", api_url]


def _not_an_image(api_url: str, tmp_path: Path) -> list[str]:
    (tmp_path / "x.png").write_text("Hello, this is not an image.\n")
    return ["generate", "x.png", "--api", api_url]


def _too_big(api_url: str, tmp_path: Path) -> list[str]:
    (tmp_path / "huge.png").write_bytes(png() + bytes(11 * 1024 * 1024))  # past MaxUploadBytes' 10 MiB
    return ["generate", "huge.png", "--api", api_url]


def _unreachable(api_url: str, tmp_path: Path) -> list[str]:
    (tmp_path / "photo.png").write_bytes(png())
    return ["generate", "photo.png", "--api", f"http://127.0.0.1:{free_port()}"]  # nothing listens there


def _unknown_task(api_url: str, tmp_path: Path) -> list[str]:
    return ["status", UNKNOWN_TASK, "--api", api_url]


@pytest.mark.parametrize(
    ("command", "exit_code", "code", "message"),
    [
        (_missing_file, 3, "FILE_NOT_FOUND", "nowhere.png: no such file"),
        (_not_an_image, 3, "UNSUPPORTED_FORMAT", "x.png is not a PNG, JPEG or WebP image"),
        (_too_big, 3, "FILE_TOO_LARGE", "huge.png: The image is"),
        (_unreachable, 4, "API_UNREACHABLE", "cannot reach the Leyline API at http://127.0.0.1:"),
        (_unknown_task, 5, "TASK_NOT_FOUND", f"No task {UNKNOWN_TASK} exists"),
    ],
    ids=["missing-file", "not-an-image", "too-big", "unreachable-api", "unknown-task"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_each_failure_is_one_line_and_a_documented_exit_code(
    stack: LocalStack,
    tmp_path: Path,
    command: Callable[[str, Path], list[str]],
    exit_code: int,
    code: str,
    message: str,
    as_json: bool,
) -> None:
    # When the command fails
    run = leyline(*command(stack.api_url, tmp_path), *(["--json"] if as_json else []), cwd=tmp_path)

    # Then its exit code says which way, stderr holds one line and no traceback
    assert run.returncode == exit_code
    assert_one_error_line(run.stderr, message)

    # And stdout holds nothing for people, the API's error shape for scripts
    if as_json:
        assert json.loads(run.stdout)["error"]["code"] == code
    else:
        assert run.stdout == ""


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("/nonexistent/dir/x.mp4", "/nonexistent/dir is not a directory"),
        (f"{UNWRITABLE}/x.mp4", "Permission denied"),  # a directory that exists, not writable even by root
        (UNWRITABLE, "Permission denied"),  # -o DIR: the video would go in it, under the image's name
    ],
    ids=["missing-directory", "unwritable-directory", "unwritable-directory-as-output"],
)
@pytest.mark.skipif(not Path(UNWRITABLE).is_dir(), reason=f"no {UNWRITABLE} on this system")
def test_an_output_that_cannot_be_written_is_refused_before_anything_is_uploaded(
    stack: LocalStack, photo: Path, tmp_path: Path, output: str, reason: str
) -> None:
    # Given the tasks that exist so far
    tasks_before = count_tasks(stack)

    # When a person asks for the video somewhere it cannot be written
    run = leyline("generate", "photo.png", "-o", output, "--api", stack.api_url, cwd=tmp_path)

    # Then it exits 3 with one sentence naming the place and why, and nothing else on stderr: no task line,
    # no upload or progress, because the check came first
    assert run.returncode == 3
    target = output if output.endswith(".mp4") else f"{output}/photo.mp4"
    assert run.stderr == f"leyline: error: cannot write {target}: {reason}\n"
    assert run.stdout == ""
    # And no task was created, and no file was left behind
    assert count_tasks(stack) == tasks_before
    assert [path.name for path in tmp_path.iterdir()] == ["photo.png"]


def test_checking_the_output_leaves_nothing_beside_it(photo: Path, tmp_path: Path) -> None:
    # Given a writable output directory and an API that is not there
    out = tmp_path / "out"
    out.mkdir()
    api = f"http://127.0.0.1:{free_port()}"

    # When generate checks the output, then fails to reach the API
    run = leyline("generate", str(photo), "-o", str(out / "x.mp4"), "--api", api, cwd=tmp_path)

    # Then it got past the output check (exit 4, unreachable), and the check left no file in the directory
    assert run.returncode == 4, run.stderr
    assert list(out.iterdir()) == []


def test_ctrl_c_exits_130_and_leaves_no_file(stack: LocalStack, photo: Path, tmp_path: Path) -> None:
    # Given generate running, past the upload
    process = subprocess.Popen(
        leyline_command("generate", "photo.png", "--api", stack.api_url),
        cwd=tmp_path,
        env=environment({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith(("waiting", "queued", "generating")):
            break

    # When the person presses Ctrl-C
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    # Then it exits 130, says how to find the task again, and left no file behind
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("leyline: error: interrupted; task ")
    assert stdout == ""
    assert [path.name for path in tmp_path.iterdir()] == ["photo.png"]


def test_an_interrupted_download_removes_its_partial_file(stack: LocalStack, photo: Path, tmp_path: Path) -> None:
    # Given a finished task, and a download interrupted after its first chunk
    task_id = upload_presigned(stack.api_url, photo.read_bytes())
    poll_until_final(stack.api_url, task_id)
    out = tmp_path / "out"
    out.mkdir()

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    # When the download is interrupted, Then the temporary file is gone and the target was never written
    with pytest.raises(KeyboardInterrupt):
        LeylineClient(stack.api_url).download(task_id, out / "video.mp4", interrupt)
    assert list(out.iterdir()) == []


def count_tasks(stack: LocalStack) -> int:
    count: int = stack.client("dynamodb").scan(TableName=stack.physical_name("TasksTable"), Select="COUNT")["Count"]
    return count


def assert_one_error_line(stderr: str, message: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("leyline: error: ")]
    assert len(errors) == 1, stderr
    assert message in errors[0]
    assert stderr.endswith(errors[0] + "\n")
    assert "Traceback" not in stderr


def leyline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        leyline_command(*args), cwd=cwd, env=environment(env or {}), capture_output=True, text=True, timeout=120
    )


def leyline_command(*args: str) -> list[str]:
    # `python -m leyline.client` runs the same main() as the `leyline` console script.
    return [sys.executable, "-m", "leyline.client", *args]


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "LEYLINE_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FUNCTIONS), env.get("PYTHONPATH")]))
    return {**env, **extra}
