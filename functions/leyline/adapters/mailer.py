"""SES access: one plain-text message from the service's sender address (NotificationSender)."""

from __future__ import annotations

from typing import Any

import boto3

from leyline.logic.emails import EmailMessage


class SesMailer:
    """Satisfies logic.emails.Mailer."""

    def __init__(self, sender: str, client: Any | None = None) -> None:
        self._sender = sender
        self._ses = client or boto3.client("ses")

    def send(self, message: EmailMessage) -> str:
        response = self._ses.send_email(
            Source=self._sender,
            Destination={"ToAddresses": [message.to]},
            Message={
                "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"}},
            },
        )
        return str(response["MessageId"])
