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
    NOT_SIGNED_IN = 6  # the API asks for an account and nobody is signed in to it here: `leyline login`
    SESSION_EXPIRED = 7  # the sign-in ran out or was revoked (signed out everywhere): `leyline login` again
    WRONG_CREDENTIALS = 8  # wrong email or password
    NOT_CONFIRMED = 9  # the account exists but its sign-up was never confirmed: `leyline confirm`
    ACCOUNT_ERROR = 10  # the sign-in service refused otherwise (email taken, weak password, wrong code...)
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


class AccountError(ClientError):
    """The sign-in service (Cognito) refused a sign-up, a confirmation or a sign-in."""

    exit_code = ExitCode.ACCOUNT_ERROR


class UsageError(ClientError):
    """A bad answer to a question the CLI asked (no email, passwords that differ): as a bad command line."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message, "USAGE")


class AccountsOff(ClientError):
    """Sign-up, sign-in and history asked of an API open to everyone (AccessMode=open): there are no accounts."""

    exit_code = ExitCode.API_ERROR

    def __init__(self, api: str) -> None:
        super().__init__(f"the Leyline API at {api} is open to everyone: it has no accounts", "ACCOUNTS_OFF")


class NotSignedIn(ClientError):
    exit_code = ExitCode.NOT_SIGNED_IN

    def __init__(self, api: str) -> None:
        super().__init__(f"you are not signed in to {api}: run `leyline login`", "NOT_SIGNED_IN")


class SessionExpired(ClientError):
    exit_code = ExitCode.SESSION_EXPIRED

    def __init__(self) -> None:
        super().__init__("your session has expired or was signed out: run `leyline login` again", "SESSION_EXPIRED")


class WrongCredentials(AccountError):
    exit_code = ExitCode.WRONG_CREDENTIALS

    def __init__(self) -> None:
        super().__init__("wrong email or password", "WRONG_CREDENTIALS")


class NotConfirmed(AccountError):
    exit_code = ExitCode.NOT_CONFIRMED

    def __init__(self) -> None:
        super().__init__(
            "this account is not confirmed yet: run `leyline confirm` with the code sent to your email", "NOT_CONFIRMED"
        )


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
