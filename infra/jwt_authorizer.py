"""The HttpApi's JWT authorizer, locally: what API Gateway checks before a guarded route reaches its function.

A token passes when its signature verifies against a key of the issuer's JWKS (RS256, found by `kid`), it is
unexpired, its `iss` is the authorizer's issuer, and its `aud` - or, without one, its `client_id`, as in a
Cognito access token - is one of the authorizer's audiences. Anything else is API Gateway's 401
`{"message":"Unauthorized"}` with a `www-authenticate` header. The claims reach the function as strings at
`requestContext.authorizer.jwt.claims` of the payload 2.0 event, as API Gateway puts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from infra.template import JwtAuthorizer

ALGORITHMS = ["RS256"]  # what a Cognito user pool signs with; `none` and HMAC are refused by construction
_JWKS_CACHE_SECONDS = 300
_JWKS_TIMEOUT_SECONDS = 5


class Unauthorized(Exception):
    """The request carries no token the authorizer accepts; `header` is API Gateway's www-authenticate value."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "no token")
        if reason is None:
            self.header = "Bearer"
        else:
            self.header = f'Bearer scope="" error="invalid_token" error_description="{reason}"'


@dataclass(frozen=True)
class Authorized:
    """What API Gateway hands the function: `requestContext.authorizer`."""

    claims: dict[str, str]

    def request_context(self) -> dict[str, Any]:
        return {"jwt": {"claims": self.claims, "scopes": None}}


def jwks_url(issuer: str, aws_endpoint: str | None) -> str:
    """Where the issuer's keys are: `{issuer}/.well-known/jwks.json`, with an AWS issuer's host (Cognito's
    `cognito-idp.<region>.amazonaws.com`) served by the local AWS endpoint, which keeps the path (moto serves
    `/{userPoolId}/.well-known/jwks.json`)."""
    parts = urlsplit(issuer)
    if aws_endpoint and parts.hostname and parts.hostname.endswith(".amazonaws.com"):
        return f"{aws_endpoint.rstrip('/')}{parts.path.rstrip('/')}/.well-known/jwks.json"
    return f"{issuer.rstrip('/')}/.well-known/jwks.json"


class JwtVerifier:
    """One authorizer's checks, its issuer's keys fetched once and kept a few minutes (as API Gateway caches them)."""

    def __init__(self, authorizer: JwtAuthorizer, aws_endpoint: str | None) -> None:
        self.authorizer = authorizer
        self._header = _identity_header(authorizer.identity_source)
        self._keys = jwt.PyJWKClient(
            jwks_url(authorizer.issuer, aws_endpoint),
            cache_keys=True,
            lifespan=_JWKS_CACHE_SECONDS,
            timeout=_JWKS_TIMEOUT_SECONDS,
        )

    def authorize(self, headers: Mapping[str, str]) -> Authorized:
        """The token's claims; Unauthorized if there is none or it fails any check."""
        value = headers.get(self._header, "").strip()
        token = value[len("bearer ") :].strip() if value.lower().startswith("bearer ") else value
        if not token:
            raise Unauthorized(None)
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                issuer=self.authorizer.issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except (jwt.PyJWTError, ValueError) as error:  # malformed, unknown kid, bad signature, wrong issuer...
            raise Unauthorized(f"the token is not valid: {type(error).__name__}") from None
        self._check_audience(claims)
        return Authorized({name: _claim_text(value) for name, value in claims.items()})

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(str(candidate) in self.authorizer.audiences for candidate in audiences if candidate is not None):
            raise Unauthorized("the token's audience or client_id is not allowed")


def _identity_header(identity_source: str) -> str:
    prefix = "$request.header."
    if not identity_source.startswith(prefix):
        raise ValueError(f"identity source {identity_source!r}: only a request header is supported locally")
    return identity_source[len(prefix) :].lower()


def _claim_text(value: Any) -> str:
    """API Gateway passes every claim as a string; a list as `[a b]`."""
    if isinstance(value, list):
        return "[" + " ".join(str(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
