"""Accounts for the CLI: Cognito's JSON API (sign up, confirm, sign in, refresh, sign out) and the session kept
in the user's config directory. Standard library only, like the rest of the client.

Cognito is called directly at the endpoint the API's public `GET /config` names, with the app client id it
gives: nothing about a deployment is written here."""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from leyline.client.errors import (
    AccountError,
    NotConfirmed,
    SessionExpired,
    Unreachable,
    WrongCredentials,
)

REFRESH_MARGIN_SECONDS = 60
"""An access token this close to its end is refreshed before use, so it cannot expire on its way."""
SESSIONS_FILE = "sessions.json"
TARGET_PREFIX = "AWSCognitoIdentityProviderService."


@dataclass(frozen=True)
class CognitoConfig:
    """What `GET /config` tells a client about the user pool (`cognito`), for an API in accounts mode."""

    region: str
    user_pool_id: str
    client_id: str
    endpoint: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CognitoConfig:
        return cls(
            region=str(data["region"]),
            user_pool_id=str(data["user_pool_id"]),
            client_id=str(data["client_id"]),
            endpoint=str(data["endpoint"]).rstrip("/"),
        )


@dataclass(frozen=True)
class Session:
    """A signed-in user of one API: the refresh token that keeps them signed in, and the access token of the moment."""

    api: str
    email: str
    cognito: CognitoConfig
    refresh_token: str
    access_token: str
    access_expires_at: float  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Session:
        return cls(
            api=str(data["api"]),
            email=str(data["email"]),
            cognito=CognitoConfig.from_json(data["cognito"]),
            refresh_token=str(data["refresh_token"]),
            access_token=str(data["access_token"]),
            access_expires_at=float(data["access_expires_at"]),
        )


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_at: float
    refresh_token: str | None  # Cognito sends a new one only on a password sign-in


class Cognito:
    """The few unauthenticated calls of Cognito's user pool API a public client (no secret) makes."""

    def __init__(self, config: CognitoConfig, *, timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.timeout = timeout
        self.clock = clock

    def sign_up(self, email: str, password: str) -> dict[str, Any]:
        return self._call(
            "SignUp",
            {
                "ClientId": self.config.client_id,
                "Username": email,
                "Password": password,
                "UserAttributes": [{"Name": "email", "Value": email}],
            },
        )

    def confirm_sign_up(self, email: str, code: str) -> None:
        self._call("ConfirmSignUp", {"ClientId": self.config.client_id, "Username": email, "ConfirmationCode": code})

    def sign_in(self, email: str, password: str) -> Tokens:
        return self._auth("USER_PASSWORD_AUTH", {"USERNAME": email, "PASSWORD": password})

    def refresh(self, refresh_token: str) -> Tokens:
        """New access token from the refresh token; SessionExpired when Cognito no longer takes it."""
        try:
            return self._auth("REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": refresh_token})
        except WrongCredentials:  # NotAuthorized: revoked (signed out everywhere) or past its lifetime
            raise SessionExpired() from None

    def global_sign_out(self, access_token: str) -> None:
        """Revokes every refresh token of the user: every device is signed out."""
        self._call("GlobalSignOut", {"AccessToken": access_token})

    def _auth(self, flow: str, parameters: dict[str, str]) -> Tokens:
        answer = self._call(
            "InitiateAuth", {"ClientId": self.config.client_id, "AuthFlow": flow, "AuthParameters": parameters}
        )
        result = answer.get("AuthenticationResult")
        if not isinstance(result, dict):  # a challenge (e.g. a new password required): not something a CLI answers
            challenge = answer.get("ChallengeName", "an unknown challenge")
            raise AccountError(f"the sign-in asks for {challenge}, which this client cannot answer", "AUTH_CHALLENGE")
        return Tokens(
            access_token=str(result["AccessToken"]),
            expires_at=self.clock() + int(result.get("ExpiresIn", 3600)),
            refresh_token=result.get("RefreshToken"),
        )

    def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.config.endpoint + "/",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET_PREFIX + action},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _cognito_error(exc.read()) from None
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
            raise Unreachable(f"cannot reach the sign-in service at {self.config.endpoint}: {text}") from None
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            message = f"the sign-in service at {self.config.endpoint} did not answer with JSON"
            raise AccountError(message, "BAD_RESPONSE") from None
        return answer if isinstance(answer, dict) else {}


def _cognito_error(body: bytes) -> AccountError:
    """Cognito's `{"__type": "...Exception", "message": ...}` as the CLI's error of that kind."""
    try:
        data = json.loads(body)
        kind = str(data.get("__type", "")).rsplit("#", 1)[-1]
        message = str(data.get("message") or data.get("Message") or kind)
    except (ValueError, AttributeError):
        kind, message = "", "the sign-in service answered with an error"
    if kind in ("NotAuthorizedException", "UserNotFoundException"):
        # Cognito words both alike when PreventUserExistenceErrors is on: nobody learns which emails have accounts.
        return WrongCredentials()
    if kind == "UserNotConfirmedException":
        return NotConfirmed()
    return AccountError(_ACCOUNT_MESSAGES.get(kind, message), _upper_snake(kind.removesuffix("Exception")))


_ACCOUNT_MESSAGES = {
    "UsernameExistsException": "an account with this email already exists: sign in with `leyline login`",
    "CodeMismatchException": "that confirmation code is not right: check the email and try again",
    "ExpiredCodeException": "that confirmation code has expired: ask the service's administrator to confirm you",
    "TooManyRequestsException": "too many attempts: wait a minute and try again",
    "LimitExceededException": "too many attempts: wait a minute and try again",
    "TooManyFailedAttemptsException": "too many attempts: wait a minute and try again",
}


def _upper_snake(name: str) -> str:
    return "".join(f"_{char}" if char.isupper() and index else char for index, char in enumerate(name)).upper() or (
        "ACCOUNT_ERROR"
    )


# ---- the session on disk ---------------------------------------------------------------------------------


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CONFIG_HOME/leyline, else ~/.config/leyline (the XDG base directory rules: a relative value is ignored)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "leyline"


class SessionStore:
    """Sessions by API URL in one JSON file only its owner can read (0600, in a 0700 directory): it holds
    refresh tokens, which sign a person in for days."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / SESSIONS_FILE

    def load(self, api: str) -> Session | None:
        entry = self._all().get(api)
        try:
            return Session.from_json(entry) if isinstance(entry, dict) else None
        except (KeyError, TypeError, ValueError):
            return None  # a file from another version, or edited by hand: as good as not signed in

    def save(self, session: Session) -> None:
        sessions = self._all()
        sessions[session.api] = session.to_json()
        self._write(sessions)

    def remove(self, api: str) -> bool:
        sessions = self._all()
        if sessions.pop(api, None) is None:
            return False
        self._write(sessions)
        return True

    def _all(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        sessions = data.get("sessions") if isinstance(data, dict) else None
        return sessions if isinstance(sessions, dict) else {}

    def _write(self, sessions: dict[str, Any]) -> None:
        """Atomically: a 0600 temp file beside the target, renamed over it (never a moment readable by others)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{SESSIONS_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp creates it 0600
                json.dump({"sessions": sessions}, file, indent=2)
            os.replace(temporary, self.path)
        finally:
            Path(temporary).unlink(missing_ok=True)


class Credentials:
    """The bearer token for an API's calls: the session's access token, refreshed when it is about to expire
    or when the API refuses it, the refreshed one written back so the next command starts with it."""

    def __init__(self, store: SessionStore, session: Session, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.session = session
        self.clock = clock

    def access_token(self) -> str:
        if self.session.access_expires_at - self.clock() < REFRESH_MARGIN_SECONDS:
            self.refresh()
        return self.session.access_token

    def refresh(self) -> str:
        tokens = Cognito(self.session.cognito, clock=self.clock).refresh(self.session.refresh_token)
        self.session = replace(
            self.session,
            access_token=tokens.access_token,
            access_expires_at=tokens.expires_at,
            refresh_token=tokens.refresh_token or self.session.refresh_token,
        )
        self.store.save(self.session)
        return self.session.access_token
