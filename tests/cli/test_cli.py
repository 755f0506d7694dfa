"""`leyline generate`, `status`, `cancel` and `delete`, run as people and scripts run them, on the local stack."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from infra.testing import RunningStack, free_port
from leyline.client.api import LeylineClient
from tests.cli.lossy_proxy import LossyProxy
from tests.imagefactory import encode, pattern, png
from tests.integration.polling import poll_until_final, upload_presigned
from tests.stack import local_stack
from tests.videoprobe import top_level_boxes

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).parents[2] / "functions"
UNKNOWN_TASK = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
UNWRITABLE = "/sys"  # Linux's sysfs: no file can be created at its top, not even by root
SLOW_MODEL_SECONDS = "20"  # a task surely still waits or runs when the test acts on it, even on a busy machine
WAITING_OR_RUNNING = ("waiting", "queued", "generating")  # how generate's progress lines start meanwhile


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(encode(pattern(), "PNG"))
    return path


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose model takes long, so that a task is still waiting or running when it is cancelled."""
    with local_stack(tmp_path_factory.mktemp("slow-stack"), SLOW_MODEL_SECONDS) as running:
        yield running


def test_generate_saves_a_complete_mp4_and_says_where(stack: RunningStack, photo: Path, tmp_path: Path) -> None:
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


def test_generate_json_takes_the_api_from_the_environment(stack: RunningStack, photo: Path, tmp_path: Path) -> None:
    # When a script runs generate with --json and LEYLINE_API_URL, without -o
    run = leyline("generate", str(photo), "--json", cwd=tmp_path, env={"LEYLINE_API_URL": stack.api_url})

    # Then stdout is one JSON document: the final status and where the video went (IMAGE's name + .mp4)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["state"] == "SUCCESS"
    assert result["output"] == str(tmp_path / "photo.mp4")
    assert Path(result["output"]).read_bytes()[4:8] == b"ftyp"


def test_status_prints_a_task_for_people_and_for_scripts(stack: RunningStack, photo: Path, tmp_path: Path) -> None:
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


def test_a_failed_task_exits_1_with_the_apis_message(stack: RunningStack, tmp_path: Path) -> None:
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


def _cancel_finished(api_url: str, tmp_path: Path) -> list[str]:
    task_id = upload_presigned(api_url, png())
    poll_until_final(api_url, task_id)
    return ["cancel", task_id, "--api", api_url]


def _delete_unknown(api_url: str, tmp_path: Path) -> list[str]:
    return ["delete", UNKNOWN_TASK, "--api", api_url]


@pytest.mark.parametrize(
    ("command", "exit_code", "code", "message"),
    [
        (_missing_file, 3, "FILE_NOT_FOUND", "nowhere.png: no such file"),
        (_not_an_image, 3, "UNSUPPORTED_FORMAT", "x.png is not a PNG, JPEG or WebP image"),
        (_too_big, 3, "FILE_TOO_LARGE", "huge.png: The image is"),
        (_unreachable, 4, "API_UNREACHABLE", "cannot reach the Leyline API at http://127.0.0.1:"),
        (_unknown_task, 5, "TASK_NOT_FOUND", f"No task {UNKNOWN_TASK} exists"),
        (_cancel_finished, 5, "TASK_FINISHED", "has already finished"),
        (_delete_unknown, 5, "TASK_NOT_FOUND", f"No task {UNKNOWN_TASK} exists"),
    ],
    ids=[
        "missing-file",
        "not-an-image",
        "too-big",
        "unreachable-api",
        "unknown-task",
        "cancel-finished",
        "delete-unknown",
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_each_failure_is_one_line_and_a_documented_exit_code(
    stack: RunningStack,
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
    stack: RunningStack, photo: Path, tmp_path: Path, output: str, reason: str
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


def test_cancel_takes_back_a_waiting_task_and_prints_its_state(stack: RunningStack, tmp_path: Path) -> None:
    # Given a task waiting for its upload
    ticket = requests.post(f"{stack.api_url}/uploads", json={"content_type": "image/png"}, timeout=10)
    task_id = ticket.json()["task_id"]

    # When a person cancels it, Then it says the state the task is in now
    run = leyline("cancel", task_id, "--api", stack.api_url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "CANCELLED\n"
    assert requests.get(f"{stack.api_url}/status/{task_id}", timeout=10).json()["state"] == "CANCELLED"

    # And cancelling it again is no error: a script gets the task's status, still CANCELLED
    again = leyline("cancel", task_id, "--api", stack.api_url, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    status = json.loads(again.stdout)
    assert (status["task_id"], status["state"]) == (task_id, "CANCELLED")


def test_delete_removes_a_finished_task(stack: RunningStack, photo: Path, tmp_path: Path) -> None:
    # Given a finished task
    task_id = upload_presigned(stack.api_url, photo.read_bytes())
    poll_until_final(stack.api_url, task_id)

    # When a person deletes it, Then it says so
    run = leyline("delete", task_id, "--api", stack.api_url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"task {task_id} deleted\n"

    # And the API no longer knows it: its status and its video are 404
    assert requests.get(f"{stack.api_url}/status/{task_id}", timeout=10).status_code == 404
    assert requests.get(f"{stack.api_url}/video/{task_id}", timeout=10, allow_redirects=False).status_code == 404

    # And deleting it again is the API's 404, exit 5, for scripts too
    again = leyline("delete", task_id, "--api", stack.api_url, "--json", cwd=tmp_path)
    assert again.returncode == 5
    assert json.loads(again.stdout)["error"]["code"] == "TASK_NOT_FOUND"


def test_ctrl_c_cancels_the_task_it_created_exits_130_and_leaves_no_file(
    slow_stack: RunningStack, photo: Path, tmp_path: Path
) -> None:
    # Given generate running, past the upload, its task waiting for or inside the (slow) model
    generate = Generate("photo.png", "--api", slow_stack.api_url, cwd=tmp_path)
    task_id = generate.task_id()
    generate.wait_for_line(lambda line: line.startswith(WAITING_OR_RUNNING))

    # When the person presses Ctrl-C
    generate.process.send_signal(signal.SIGINT)
    stdout, stderr = generate.finish()

    # Then it exits 130 at once, asking nothing, and says on one line that it cancelled the task
    assert generate.process.returncode == 130
    assert_one_error_line(stderr, f"interrupted; task {task_id} cancelled")
    assert stderr.endswith(f"leyline: error: interrupted; task {task_id} cancelled\n")
    assert stdout == ""
    # And the task ends CANCELLED with no video anywhere, and no file was left behind
    assert poll_until_final(slow_stack.api_url, task_id)[-1]["state"] == "CANCELLED"
    assert videos_of(slow_stack, task_id) == []
    assert [path.name for path in tmp_path.iterdir()] == ["photo.png"]


def test_generate_stops_when_its_task_is_cancelled_elsewhere(
    slow_stack: RunningStack, photo: Path, tmp_path: Path
) -> None:
    # Given a script's generate waiting on its task
    generate = Generate("photo.png", "--api", slow_stack.api_url, "--json", cwd=tmp_path)
    task_id = generate.task_id()
    generate.wait_for_line(lambda line: line.startswith(WAITING_OR_RUNNING))

    # When someone cancels the task (e.g. from the page)
    cancelled = requests.post(f"{slow_stack.api_url}/tasks/{task_id}/cancel", timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    stdout, stderr = generate.finish()

    # Then generate stops with exit 1, says the task was cancelled, and prints the final status
    assert generate.process.returncode == 1
    assert_one_error_line(stderr, "the task was cancelled")
    status = json.loads(stdout)
    assert (status["task_id"], status["state"], status["output"]) == (task_id, "CANCELLED", None)
    assert [path.name for path in tmp_path.iterdir()] == ["photo.png"]


def test_a_submit_retried_after_a_lost_answer_reuses_its_key_and_makes_one_task(
    stack: RunningStack, photo: Path, tmp_path: Path
) -> None:
    # Given the tasks so far, and a network between the CLI and the API that loses the answer to the first
    # submit (the API has created its task; the CLI's connection is reset)
    tasks_before = count_tasks(stack)
    with LossyProxy(stack.api_port) as proxy:
        # When a person generates a video through it
        run = leyline("generate", "photo.png", "-o", "out.mp4", "--api", proxy.url, cwd=tmp_path)

    # Then it gets its video all the same
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.mp4").read_bytes()[4:8] == b"ftyp"
    # And it sent the submit twice, with one and the same Idempotency-Key, the first answer lost
    submits = [seen for seen in proxy.requests if (seen.method, seen.target) == ("POST", "/uploads")]
    assert [seen.dropped for seen in submits] == [True, False]
    first_key, retry_key = (seen.headers.get("idempotency-key") for seen in submits)
    assert first_key
    assert retry_key == first_key
    # And the API made exactly one task of it
    assert count_tasks(stack) == tasks_before + 1


class Generate:
    """`leyline generate` as a running subprocess, its stderr read line by line as it comes (bounded waits)."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            leyline_command("generate", *args),
            cwd=cwd,
            env=environment({}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, wanted: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"generate ended first: {''.join(self.lines)}"
            self.lines.append(line)
            if wanted(line):
                return line

    def task_id(self) -> str:
        """From the `task <id>` line generate prints as soon as the API created its task."""
        return self.wait_for_line(lambda line: line.startswith("task ")).split()[1]

    def finish(self, timeout: float = 30.0) -> tuple[str, str]:
        """Waits for the process to end; returns its whole stdout and stderr."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        self._reader.join(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        assert self.process.stdout is not None
        return self.process.stdout.read(), "".join(self.lines)


def test_an_interrupted_download_removes_its_partial_file(stack: RunningStack, photo: Path, tmp_path: Path) -> None:
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


def videos_of(stack: RunningStack, task_id: str) -> list[str]:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.physical_name("MediaBucket"), Prefix=f"videos/{task_id}")
    return [item["Key"] for item in listed.get("Contents", [])]


def count_tasks(stack: RunningStack) -> int:
    """The tasks in the table, leaving out the line's own items (line#..., adapters/tasks_table.py)."""
    count: int = stack.client("dynamodb").scan(
        TableName=stack.physical_name("TasksTable"),
        Select="COUNT",
        FilterExpression="NOT begins_with(task_id, :line)",
        ExpressionAttributeValues={":line": {"S": "line#"}},
    )["Count"]
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
