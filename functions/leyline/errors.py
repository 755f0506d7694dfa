"""Domain errors. Each carries a stable UPPER_SNAKE code and the HTTP status it maps to.

Handlers map any LeylineError to `{"error": {"code", "message"}}` in one place (handlers/http/resolver.py);
the processor records its code and message on the task as a FAILURE.
"""

from __future__ import annotations


class LeylineError(Exception):
    """Base of every error the product reports to a user."""

    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(LeylineError):
    code = "BAD_REQUEST"
    status = 400


class Unauthorized(LeylineError):
    """accounts mode, and the request reached a task route without a user (API Gateway's authorizer lets none
    through; this is the function's own check behind it)."""

    code = "UNAUTHORIZED"
    status = 401


class InvalidTaskId(LeylineError):
    code = "INVALID_TASK_ID"
    status = 400


class TaskNotFound(LeylineError):
    code = "TASK_NOT_FOUND"
    status = 404


class TaskExpired(LeylineError):
    code = "TASK_EXPIRED"
    status = 410


class TooManyTasks(LeylineError):
    """The client already has as many unfinished tasks as it may; it can try again after `retry_after`."""

    code = "TOO_MANY_TASKS"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VideoNotReady(LeylineError):
    code = "VIDEO_NOT_READY"
    status = 409


class TaskFailed(LeylineError):
    """The task ended in FAILURE (or its upload never came): its video will never exist."""

    code = "TASK_FAILED"
    status = 409


class TaskFinished(LeylineError):
    """A cancel asked of a task that already ended (SUCCESS or FAILURE): its outcome stands."""

    code = "TASK_FINISHED"
    status = 409


class TaskCancelled(LeylineError):
    """The task was cancelled: its video will never exist."""

    code = "TASK_CANCELLED"
    status = 409


class PayloadTooLarge(LeylineError):
    code = "FILE_TOO_LARGE"
    status = 413


class InvalidIdempotencyKey(LeylineError):
    code = "INVALID_IDEMPOTENCY_KEY"
    status = 400


class IdempotencyKeyReused(LeylineError):
    """The Idempotency-Key was first sent with another request: this one is refused, not run."""

    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422


class RequestInProgress(LeylineError):
    """The first request with this Idempotency-Key is still being handled: retry in a moment."""

    code = "REQUEST_IN_PROGRESS"
    status = 409


class UploadClosed(LeylineError):
    """A replayed POST /uploads whose task no longer takes an upload (uploaded, finished, cancelled or its
    window closed): a new form would only land a late upload. The answer points at the task instead."""

    code = "UPLOAD_CLOSED"
    status = 409

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class InvalidWebhookUrl(LeylineError):
    """A submit's webhook_url (or webhook_events) that the service will not call: not https, not a public
    address (unless WebhookAllowPrivateTargets), or not a URL at all."""

    code = "INVALID_WEBHOOK_URL"
    status = 400


class InvalidImage(LeylineError):
    """The uploaded bytes cannot become a video: permanent, never worth a retry.

    Codes: EMPTY_FILE, UNSUPPORTED_FORMAT, CORRUPT_IMAGE, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, IMAGE_TOO_COMPLEX,
    FILE_TOO_LARGE.
    """

    code = "INVALID_IMAGE"
    status = 422


class InvalidNotifyEmail(LeylineError):
    """A submit's notify_email that cannot be honoured: not a boolean, or asked in open mode, where a task has
    no owner and so no verified address to write to."""

    code = "INVALID_NOTIFY_EMAIL"
    status = 400
