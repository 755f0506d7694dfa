"""Standard Webhooks signatures with the key(s) in WebhookSigningSecret: {"key": ..., "previous_key": ...}.

Each key is base64, with or without the `whsec_` prefix receivers are given. During a rotation both keys sign,
so a receiver still on the old one verifies too. The secret is read through Powertools' parameters utility and
kept 5 minutes, so a rotation reaches warm functions without a redeploy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities import parameters
from standardwebhooks.webhooks import Webhook

SECRET_MAX_AGE_SECONDS = 300
KEY_NAMES = ("key", "previous_key")


def signature(keys: list[str], webhook_id: str, timestamp: datetime, body: str) -> str:
    return " ".join(Webhook(key).sign(webhook_id, timestamp, body) for key in keys)


class SecretsManagerSigner:
    """Satisfies logic.webhooks.Signer."""

    def __init__(self, secret_id: str) -> None:
        self._secret_id = secret_id

    def signature(self, webhook_id: str, timestamp: datetime, body: str) -> str:
        document: Any = parameters.get_secret(self._secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
        keys = [str(document[name]) for name in KEY_NAMES if document.get(name)]
        if not keys:
            raise RuntimeError("the webhook signing secret holds no key")
        return signature(keys, webhook_id, timestamp, body)
