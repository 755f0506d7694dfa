"""Cognito user pool access: a user's verified email address, by the user's id (the tokens' `sub`)."""

from __future__ import annotations

import json
from typing import Any

import boto3


class CognitoUserDirectory:
    """Satisfies logic.emails.UserDirectory."""

    def __init__(self, user_pool_id: str, client: Any | None = None) -> None:
        self._pool = user_pool_id
        self._cognito = client or boto3.client("cognito-idp")

    def verified_email(self, user: str) -> str | None:
        # ListUsers by `sub`: with email as the user name, a user's name is not its `sub` everywhere, its `sub` is.
        # json.dumps quotes the value as the filter's grammar wants (a `sub` is a UUID: nothing to escape).
        found = self._cognito.list_users(UserPoolId=self._pool, Filter=f"sub = {json.dumps(user)}", Limit=1)["Users"]
        if not found:
            return None
        attributes = {attribute["Name"]: attribute["Value"] for attribute in found[0].get("Attributes", [])}
        if attributes.get("sub") != user or attributes.get("email_verified", "false").lower() != "true":
            return None
        return attributes.get("email") or None
