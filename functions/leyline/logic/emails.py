"""Email when a task ends (accounts mode): to its owner's verified address, never to one a request names.

A submit may ask `notify_email: true`; the task records the wish, and its owner (the token's `sub`). When the
task reaches a final state, EmailFunction gets the task event and sends one short message through SES to the
address the user pool holds for that owner, if Cognito says it is verified. Nothing in a request can choose
the recipient: it comes from the task's owner, who is whoever signed the submit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from leyline.errors import InvalidNotifyEmail
from leyline.logic.ports import TaskStore
from leyline.models import TaskState

# A checkbox in a form sends "on"; a script may send true/1/yes. An absent field (None) or "" is no.
_FORM_YES = ("true", "on", "1", "yes")
_FORM_NO = ("false", "off", "0", "no", "")
RESULT_OF_STATE = {
    TaskState.SUCCESS: "is ready",
    TaskState.FAILURE: "failed",
    TaskState.CANCELLED: "was cancelled",
}


class UserDirectory(Protocol):
    """The accounts' user pool (Cognito on AWS)."""

    def verified_email(self, user: str) -> str | None:
        """The email address of the user whose id (`sub`) is `user`, only if it is verified; else None."""
        ...


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Sends `message` from the service's sender address; the provider's message id."""
        ...


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    body: str


def parse_notify_email(value: Any, *, accounts: bool) -> bool:
    """A submit's notify_email (JSON boolean, or a form's text); 400 INVALID_NOTIFY_EMAIL if it is not one, or if
    it asks for an email in open mode (no owner, so no verified address)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in _FORM_YES + _FORM_NO:
            raise InvalidNotifyEmail("notify_email must be true or false.")
        value = text in _FORM_YES
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidNotifyEmail("notify_email must be true or false.")
    if value and not accounts:
        raise InvalidNotifyEmail(
            "notify_email needs accounts (AccessMode=accounts): an anonymous task has no verified address to"
            " write to. Use webhook_url, or poll /status/{task_id}."
        )
    return value


def message_for(status: dict[str, Any], to: str, page_url: str) -> EmailMessage:
    """The short message of a task that ended: its result, and the page where the video (or why) is."""
    state = TaskState(status["state"])
    task_id = status["task_id"]
    result = RESULT_OF_STATE[state]
    lines = [f"Your Leyline video (task {task_id}) {result}."]
    error = status.get("error") or {}
    if state is TaskState.FAILURE and error.get("message"):
        lines.append(f"Why: {error['message']}")
    lines += ["", f"See it on the page: {page_url}", "", "You get this because you asked for an email when it ends."]
    return EmailMessage(to=to, subject=f"Your Leyline video {result}", body="\n".join(lines))


def notify_owner(
    event: dict[str, Any], tasks: TaskStore, users: UserDirectory, mailer: Mailer, *, page_url: str
) -> str | None:
    """Emails a final task event (an EventBridge event whose detail is the status object) to the task's owner,
    if the task asked for it and the owner's address is verified: the message id, or None when none is sent."""
    status = event["detail"]
    if TaskState(status["state"]) not in RESULT_OF_STATE:
        return None
    task = tasks.get(status["task_id"])
    if task is None or not task.notify_email or task.owner is None:
        return None
    address = users.verified_email(task.owner)
    if address is None:
        return None
    return mailer.send(message_for(status, address, page_url))
