"""What AWS checks before a request reaches a service, and moto's server does not: a valid signature.

moto's server serves any request, signed or not: an unsigned form POST overwrote another task's video, a form
signed for one key stored another task's pending upload, an unsigned GET listed every task id. This WSGI layer
sits in front of moto's app (in the same server: nothing reaches moto around it) and lets through only:
- requests signed with SigV4 (Authorization header, or a presigned URL that has not expired) whose signature
  verifies with the local stack's credentials;
- S3 form uploads (POST with a `policy`) whose policy is signed, unexpired, names every form field and is met
  by the form: key, content type, size range (S3's own checks, which moto skips);
- what AWS itself serves without credentials: CORS preflights (OPTIONS), Cognito's public operations and
  keys, and moto's own control API (/moto-api/).
It checks signatures, not IAM: any holder of the local credentials may do anything (see the README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]+)"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
# Form fields a POST policy need not name (S3's rule).
_UNCONDITIONED_FIELDS = frozenset({"policy", "x-amz-signature", "file"})
_PUBLIC_PATHS = ("/moto-api/",)
_PUBLIC_TARGET_PREFIXES = ("AWSCognitoIdentityProviderService.",)  # sign-up and sign-in take no credentials
# A user pool's public keys (/<region>_<id>/.well-known/...): no bucket name has an underscore.
_PUBLIC_KEYS_PATH = re.compile(r"/[a-z]{2}(-[a-z]+)+-\d_[0-9A-Za-z]+/\.well-known/(jwks\.json|openid-configuration)")


@dataclass(frozen=True)
class Refusal(Exception):
    """Why a request is refused, as S3 answers it."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class _Request:
    method: str
    path: str  # as sent, still percent-encoded
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    environ: Mapping[str, Any]


class SignatureGuard:
    """WSGI middleware: `app` (moto's) gets only the requests `judge` lets through."""

    def __init__(self, app: WsgiApp, credentials: Mapping[str, str], clock: Callable[[], datetime] | None = None):
        self._app = app
        self._secrets = dict(credentials)  # access key id -> secret access key
        self._now = clock or (lambda: datetime.now(UTC))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _read_body(environ)
        try:
            self.judge(_request(environ, body))
        except Refusal as refusal:
            payload = _error_xml(refusal)
            start_response(
                f"{refusal.status} {refusal.code}",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._app(environ, start_response)

    def judge(self, request: _Request) -> None:
        """Returns if AWS would let `request` through to the service; raises Refusal otherwise."""
        if _is_public(request):
            return None
        if "authorization" in request.headers:
            return self._check_header_signature(request)
        parameters = _query_parameters(request.query)
        if "X-Amz-Signature" in parameters:
            return self._check_presigned_url(request, parameters)
        if request.method == "POST" and request.headers.get("content-type", "").startswith("multipart/form-data"):
            return self._check_form_upload(request)
        raise Refusal(403, "AccessDenied", "Anonymous requests are refused: sign it (SigV4) or use a presigned URL")

    # ---- SigV4 ----------------------------------------------------------------------------------
    def _check_header_signature(self, request: _Request) -> None:
        parsed = _AUTHORIZATION.fullmatch(request.headers["authorization"].strip())
        if parsed is None:
            raise Refusal(400, "InvalidRequest", "Only AWS4-HMAC-SHA256 Authorization headers are accepted")
        amz_date = request.headers.get("x-amz-date", "")
        payload = request.headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
        self._verify(
            request,
            credential=parsed["credential"],
            signed_headers=parsed["headers"],
            amz_date=amz_date,
            query=request.query,
            payload=payload,
            signature=parsed["signature"],
        )

    def _check_presigned_url(self, request: _Request, parameters: dict[str, str]) -> None:
        if parameters.get("X-Amz-Algorithm") != _ALGORITHM:
            raise Refusal(400, "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        try:
            signed_at = datetime.strptime(parameters["X-Amz-Date"], _AMZ_DATE).replace(tzinfo=UTC)
            lifetime = timedelta(seconds=int(parameters["X-Amz-Expires"]))
        except (KeyError, ValueError):
            raise Refusal(400, "AuthorizationQueryParametersError", "X-Amz-Date and X-Amz-Expires are needed") from None
        if self._now() > signed_at + lifetime:  # moto serves expired presigned URLs
            raise Refusal(403, "AccessDenied", "Request has expired")
        unsigned_query = "&".join(
            pair for pair in request.query.split("&") if pair and not pair.startswith("X-Amz-Signature=")
        )
        self._verify(
            request,
            credential=parameters.get("X-Amz-Credential", ""),
            signed_headers=parameters.get("X-Amz-SignedHeaders", ""),
            amz_date=parameters["X-Amz-Date"],
            query=unsigned_query,
            payload="UNSIGNED-PAYLOAD",
            signature=parameters["X-Amz-Signature"],
        )

    def _verify(
        self,
        request: _Request,
        *,
        credential: str,
        signed_headers: str,
        amz_date: str,
        query: str,
        payload: str,
        signature: str,
    ) -> None:
        access_key, scope, service = self._scope(credential)
        names = signed_headers.split(";")
        if "host" not in names:
            raise Refusal(403, "AccessDenied", "the Host header must be signed")
        canonical = "\n".join(
            [
                request.method,
                _canonical_path(request.path, service),
                _canonical_query(query),
                "".join(f"{name}:{_trimmed(request.headers.get(name, ''))}\n" for name in names),
                signed_headers,
                payload,
            ]
        )
        to_sign = "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(self._signing_key(access_key, scope), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")

    def _scope(self, credential: str) -> tuple[str, str, str]:
        """(access key, scope date/region/service/aws4_request, service) of a Credential value."""
        access_key, _, scope = unquote(credential).partition("/")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aws4_request":
            raise Refusal(400, "AuthorizationHeaderMalformed", f"malformed credential scope {scope!r}")
        if access_key not in self._secrets:
            raise Refusal(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records")
        return access_key, scope, parts[2]

    def _signing_key(self, access_key: str, scope: str) -> bytes:
        key = f"AWS4{self._secrets[access_key]}".encode()
        for part in scope.split("/"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key

    # ---- S3 POST policy ---------------------------------------------------------------------------
    def _check_form_upload(self, request: _Request) -> None:
        fields, file_size = _form(request)
        for required in ("policy", "x-amz-signature", "x-amz-credential"):
            if required not in fields:
                raise Refusal(403, "AccessDenied", f"a form upload needs a signed policy: {required} is missing")
        access_key, scope, _service = self._scope(fields["x-amz-credential"])
        expected = hmac.new(self._signing_key(access_key, scope), fields["policy"].encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), fields["x-amz-signature"]):
            raise Refusal(403, "SignatureDoesNotMatch", "The policy signature we calculated does not match")
        policy = json.loads(base64.b64decode(fields["policy"]))
        expires = datetime.strptime(policy["expiration"].replace(".000Z", "Z"), "%Y-%m-%dT%H:%M:%SZ")
        if self._now() > expires.replace(tzinfo=UTC):
            raise Refusal(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        bucket = unquote(request.path).lstrip("/").split("/", 1)[0]
        _check_conditions(policy["conditions"], {**fields, "bucket": bucket}, file_size)


def _check_conditions(conditions: list[Any], fields: Mapping[str, str], file_size: int) -> None:
    named: set[str] = set()
    for declared in conditions:
        condition = declared
        if isinstance(declared, dict):  # {"name": value} is ["eq", "$name", value]
            (name, value), *_ = declared.items()
            condition = ["eq", f"${name}", value]
        operator, target, value = condition
        if operator == "content-length-range":
            if file_size > int(value):
                raise Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if file_size < int(target):
                raise Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            continue
        name = str(target).lstrip("$").lower()
        named.add(name)
        actual = fields.get(name, "")
        met = actual == value if operator == "eq" else operator == "starts-with" and actual.startswith(value)
        if not met:
            failed = json.dumps(declared)
            raise Refusal(403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {failed}")
    extra = sorted(
        name
        for name in fields
        if name not in named
        and name not in _UNCONDITIONED_FIELDS
        and not name.startswith("x-ignore-")
        and name != "bucket"
    )
    if extra:
        raise Refusal(403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")


def _form(request: _Request) -> tuple[dict[str, str], int]:
    """The form's fields (lower-case names; S3 matches them so) and the size of its file."""
    environ = {
        **request.environ,
        "wsgi.input": io.BytesIO(request.body),
        "CONTENT_LENGTH": str(len(request.body)),
    }
    _stream, form, files = parse_form_data(environ)
    fields = {name.lower(): value for name, value in form.items()}
    upload = files.get("file")
    if upload is None:
        raise Refusal(400, "InvalidArgument", "POST requires exactly one file upload per request")
    return fields, len(upload.read())


# ---- requests -----------------------------------------------------------------------------------
def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream for us
        return bytes(stream.read())
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(stream.read(length)) if length > 0 else b""


def _request(environ: Mapping[str, Any], body: bytes) -> _Request:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # as sent (werkzeug's server keeps it)
    if raw:
        path, _, query = str(raw).partition("?")
    else:  # another WSGI server: rebuilt, as sent by clients that encode like botocore
        path, query = quote(str(environ.get("PATH_INFO") or "/")), str(environ.get("QUERY_STRING", ""))
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return _Request(str(environ["REQUEST_METHOD"]), path, query, headers, body, environ)


def _is_public(request: _Request) -> bool:
    if request.method == "OPTIONS" or request.path.startswith(_PUBLIC_PATHS):
        return True
    if request.method == "GET" and _PUBLIC_KEYS_PATH.fullmatch(request.path):
        return True
    target = request.headers.get("x-amz-target", "")
    return "authorization" not in request.headers and target.startswith(_PUBLIC_TARGET_PREFIXES)


def _query_parameters(query: str) -> dict[str, str]:
    pairs = (pair.partition("=") for pair in query.split("&") if pair)
    return {unquote(key): unquote(value) for key, _, value in pairs}


def _canonical_path(path: str, service: str) -> str:
    """S3 signs the path as sent; every other service signs it encoded once more (botocore does both so)."""
    return path or "/" if service == "s3" else quote(path or "/", safe="/~")


def _canonical_query(query: str) -> str:
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    encoded = sorted((_encode(unquote(key)), _encode(unquote(value))) for key, _, value in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _trimmed(value: str) -> str:
    return " ".join(value.split())


def _error_xml(refusal: Refusal) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(refusal.code)}</Code>'
        f"<Message>{escape(refusal.message)}</Message></Error>"
    ).encode()
