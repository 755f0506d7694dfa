"""moto's Cognito made to confirm a sign-up as Cognito does: the attributes the pool verifies automatically.

A user pool with `AutoVerifiedAttributes: [email]` sends a code to the address at sign-up; confirming the
sign-up with that code proves the address, so Cognito marks it `email_verified = true`. moto accepts any code
(no email is sent locally) but leaves `email_verified` unset, so a confirmed local user would look as if the
address were unproven - and whatever trusts only verified addresses (task emails) would never reach them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.cognitoidp.models import CognitoIdpBackend

_PATCHED = "_leyline_verifies_on_confirmation"


def verify_on_confirmation() -> None:
    """Idempotent: ConfirmSignUp then marks each of the pool's AutoVerifiedAttributes the user has verified."""
    method = CognitoIdpBackend.confirm_sign_up
    if getattr(method, _PATCHED, False):
        return
    CognitoIdpBackend.confirm_sign_up = _verifying(method)  # type: ignore[method-assign]


def _verifying(confirm: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(confirm)
    def confirm_sign_up(backend: CognitoIdpBackend, client_id: str, username: str) -> str:
        result = confirm(backend, client_id, username)
        pool = next(pool for pool in backend.user_pools.values() if client_id in pool.clients)
        user = backend.admin_get_user(pool.id, username)
        auto_verified: list[Any] = pool.extended_config.get("AutoVerifiedAttributes") or []
        proven = [
            {"Name": f"{name}_verified", "Value": "true"} for name in auto_verified if name in user.attribute_lookup
        ]
        if proven:
            user.update_attributes(proven)
        return result

    setattr(confirm_sign_up, _PATCHED, True)
    return confirm_sign_up
