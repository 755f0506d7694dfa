"""What can go wrong on the client's side, each with the exit code the CLI documents."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from leyline.states import TaskState


class ExitCode(IntEnum):
    OK = 0
    TASK_FAILED = 1  # the task ended without a video: FAILURE (e.g. the image could not be used) or CANCELLED
    USAGE = 2  # bad command line (argparse's own code)
    LOCAL_FILE = 3  # the image is missing, unreadable, not a PNG/JPEG/WebP, too big; or the output is unwritable
    UNREACHABLE = 4  # the API (or the storage it hands out URLs for) could not be reached
    API_ERROR = 5  # the API answered with an error, e.g. TASK_NOT_FOUND
    INTERNAL = 70  # a bug in this client
    INTERRUPTED = 130  # Ctrl-C


class ClientError(Exception):
    """An error the CLI reports as one line and an exit code; `code` is UPPER_SNAKE like the API's."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # always one line
        self.code = code

    def to_json(self) -> dict[str, Any]:
        """What `--json` prints on stdout: the API's own error shape."""
        return {"error": {"code": self.code, "message": self.message}}


class LocalFileError(ClientError):
    exit_code = ExitCode.LOCAL_FILE


class Unreachable(ClientError):
    exit_code = ExitCode.UNREACHABLE

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message, "API_UNREACHABLE")
        self.retryable = retryable  # False when the connection was refused: the request never arrived


class ApiError(ClientError):
    exit_code = ExitCode.API_ERROR

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message, code)
        self.status = status


class TaskFailed(ClientError):
    """The task reached a final state other than SUCCESS: there is no video to fetch."""

    exit_code = ExitCode.TASK_FAILED

    def __init__(self, status: dict[str, Any]) -> None:
        error = status.get("error") or {}
        if status["state"] == TaskState.CANCELLED:
            super().__init__("the task was cancelled", "TASK_CANCELLED")
        else:
            reason = error.get("message") or f"the task ended {status['state']}"
            super().__init__(f"the video could not be made: {reason}", error.get("code", ""))
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {**self.status, "output": None}


class Interrupted(ClientError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message, "INTERRUPTED")
