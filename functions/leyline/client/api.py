"""A stdlib-only client of the Leyline HTTP API: create a task, upload straight to S3, watch it, fetch the video."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Any

from leyline.client.accounts import Credentials
from leyline.client.errors import ApiError, ClientError, LocalFileError, NotSignedIn, SessionExpired, Unreachable
from leyline.media.formats import SNIFF_BYTES, sniff
from leyline.states import FINAL_STATES

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all); the total is 0 when unknown."""

CHUNK = 64 * 1024
SUBMIT_RETRIES = 3
"""How many times a submit is sent again after a network error (with its Idempotency-Key, so never twice)."""
SUBMIT_BACKOFF_SECONDS = 0.5
"""The wait before the first such retry; it doubles each time (0.5, 1, 2 s)."""
HEAD_BYTES = SNIFF_BYTES
"""How much of a file sniff_image_type needs."""


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an accepted image (media.formats) from its first HEAD_BYTES bytes; None for anything else."""
    found = sniff(head)
    return found.mime_type if found else None


class LeylineClient:
    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = 30.0,
        poll_seconds: float = 1.0,
        credentials: Credentials | None = None,
    ) -> None:
        """`credentials`: the signed-in user's, for an API in accounts mode; None sends no token (open mode)."""
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.credentials = credentials

    def config(self) -> dict[str, Any]:
        """GET /config (public): the access mode, and for accounts where to sign in."""
        return self._json("GET", "/config", authorized=False)

    def tasks(self, limit: int, cursor: str | None = None) -> dict[str, Any]:
        """GET /tasks: one page of the signed-in user's tasks, newest first, and the cursor of the next page."""
        query = urllib.parse.urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
        return self._json("GET", f"/tasks?{query}")

    def create_upload(
        self, content_type: str, size: int, idempotency_key: str | None = None, *, notify_email: bool = False
    ) -> dict[str, Any]:
        """POST /uploads: a new task and the presigned POST to send its image with (refused if too big).

        With an Idempotency-Key, a submit whose answer was lost to the network (reset, timeout) is sent again,
        a few times with backoff: the API answers a repeat with the first task, so the user never gets two.
        Without one, a lost answer is an error: sending again could create a second task.
        `notify_email` (accounts): the API emails the signed-in user's verified address when the task ends."""
        fields: dict[str, Any] = {"content_type": content_type, "size": size}
        if notify_email:
            fields["notify_email"] = True
        body = json.dumps(fields).encode()
        headers = {"Content-Type": "application/json"}
        if idempotency_key is None:
            return self._json("POST", "/uploads", body, headers)
        headers["Idempotency-Key"] = idempotency_key
        for attempt in range(SUBMIT_RETRIES + 1):
            try:
                return self._json("POST", "/uploads", body, headers)
            except ClientError as exc:
                if attempt == SUBMIT_RETRIES or not _worth_resubmitting(exc):
                    raise
            time.sleep(SUBMIT_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def cancel(self, task_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """POST /tasks/{id}/cancel: the task's status, CANCELLED (409 TASK_FINISHED if it already ended)."""
        return self._json("POST", f"/tasks/{task_id}/cancel", timeout=timeout)

    def delete(self, task_id: str) -> None:
        """DELETE /tasks/{id}: cancels the task if it is still going, then removes its image, video and record."""
        with self._call(urllib.request.Request(self._url(f"/tasks/{task_id}"), method="DELETE")):
            pass

    def upload(self, ticket: dict[str, Any], image: bytes, content_type: str, on_progress: Progress) -> None:
        """Sends the image straight to storage with the ticket's presigned POST; no bytes go through the API."""
        boundary = secrets.token_hex(16)
        head, tail = _multipart(ticket["upload"]["fields"], content_type, boundary)
        total = len(head) + len(image) + len(tail)
        request = urllib.request.Request(
            ticket["upload"]["url"],
            data=_chunks(head + image + tail, on_progress),
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(total)},
        )
        with self._open(request, storage=True):
            pass

    def status(self, task_id: str) -> dict[str, Any]:
        return self._json("GET", f"/status/{task_id}")

    def wait(self, task_id: str, on_status: Callable[[dict[str, Any]], None], retries: int = 5) -> dict[str, Any]:
        """Polls the status about once a second until a final state; rides out a few blips and throttles."""
        failures = 0
        while True:
            try:
                current = self.status(task_id)
            except ClientError as exc:
                failures += 1
                if not _transient(exc) or failures > retries:
                    raise
            else:
                failures = 0
                on_status(current)
                if current["state"] in FINAL_STATES:
                    return current
            time.sleep(self.poll_seconds)

    def download(self, task_id: str, target: Path, on_progress: Progress) -> None:
        """GET /video/{id} (a redirect to storage) into `target`, atomically: a temp file renamed at the end."""
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            with self._call(urllib.request.Request(self._url(f"/video/{task_id}"))) as response:
                total = int(response.headers.get("Content-Length") or 0)
                with partial.open("xb") as out:
                    _copy(response, out.write, total, on_progress)
            partial.replace(target)
        except OSError as exc:  # reading errors became Unreachable in _copy: these are the disk's
            raise LocalFileError(f"cannot write {target}: {exc.strerror or exc}", "OUTPUT_NOT_WRITABLE") from None
        finally:  # also on Ctrl-C: never leave a half-written file behind
            partial.unlink(missing_ok=True)

    def _json(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
        authorized: bool = True,
    ) -> Any:
        request = urllib.request.Request(self._url(path), data=body, method=method, headers=headers or {})
        opened = self._call(request, timeout=timeout) if authorized else self._open(request, timeout=timeout)
        with opened as response:
            raw = _read(response)
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(f"the API at {self.api_url} did not answer with JSON", "BAD_RESPONSE", 0) from None

    def _url(self, path: str) -> str:
        return f"{self.api_url}{path}"

    def _call(self, request: urllib.request.Request, *, timeout: float | None = None) -> HTTPResponse:
        """An API request, with the signed-in user's bearer token if any. A 401 is the gateway refusing the token
        (expired, revoked...): it is refreshed once and the request sent again; a second 401 ends the session."""
        if self.credentials is not None:
            _authorize(request, self.credentials.access_token())
        try:
            return self._open(request, timeout=timeout)
        except ApiError as exc:
            if exc.status != 401:
                raise
            if self.credentials is None:
                raise NotSignedIn(self.api_url) from None
        _authorize(request, self.credentials.refresh())
        try:
            return self._open(request, timeout=timeout)
        except ApiError as exc:
            if exc.status == 401:
                raise SessionExpired() from None
            raise

    def _open(
        self, request: urllib.request.Request, *, storage: bool = False, timeout: float | None = None
    ) -> HTTPResponse:
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
            raise (_storage_error(exc, body) if storage else _api_error(exc, body)) from None
        except (OSError, HTTPException) as exc:  # URLError is an OSError
            where = "the storage service" if storage else f"the Leyline API at {self.api_url}"
            reason = getattr(exc, "reason", exc)
            text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
            # Refused: nothing listens, so the request never arrived and a retry within seconds would not either.
            raise Unreachable(f"cannot reach {where}: {text}", retryable=not _refused(exc)) from None
        return response


def _authorize(request: urllib.request.Request, token: str) -> None:
    # Unredirected: a redirect to storage (GET /video/{id}) must not carry the token to S3, which would refuse
    # a second kind of authentication beside the presigned URL's, and should never see it anyway.
    request.add_unredirected_header("Authorization", f"Bearer {token}")


def new_idempotency_key() -> str:
    """A fresh key for one submit, reused by every retry of that submit and by nothing else."""
    return str(uuid.uuid4())


def _refused(exc: BaseException) -> bool:
    return isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)


def _worth_resubmitting(exc: ClientError) -> bool:
    """A network error after which the API may or may not have the submit, or the API still handling it."""
    if isinstance(exc, Unreachable):
        return exc.retryable
    return isinstance(exc, ApiError) and exc.code == "REQUEST_IN_PROGRESS"


def _transient(exc: ClientError) -> bool:
    return isinstance(exc, Unreachable) or (isinstance(exc, ApiError) and (exc.status == 429 or exc.status >= 500))


def _multipart(fields: dict[str, str], content_type: str, boundary: str) -> tuple[bytes, bytes]:
    """The form's bytes before and after the file: every policy field first, the file last, as S3 requires."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    if "Content-Type" not in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="Content-Type"\r\n\r\n{content_type}\r\n')
    # The user's file name is not sent: storage keys derive from the task id only.
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="image"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return "".join(parts).encode(), f"\r\n--{boundary}--\r\n".encode()


def _chunks(body: bytes, on_progress: Progress) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]
        on_progress(min(start + CHUNK, len(body)), len(body))


def _copy(response: HTTPResponse, write: Callable[[bytes], Any], total: int, on_progress: Progress) -> None:
    done = 0
    while chunk := _read(response, CHUNK):
        write(chunk)
        done += len(chunk)
        on_progress(done, total)


def _read(response: HTTPResponse, size: int | None = None) -> bytes:
    """Reads from the network; a connection lost half-way is the network's fault, not a bug."""
    try:
        return response.read(size)
    except (OSError, HTTPException) as exc:
        raise Unreachable(f"the connection broke off: {exc}") from None


def _api_error(exc: urllib.error.HTTPError, body: bytes) -> ClientError:
    """The API's `{"error": {"code", "message"}}`, or a plain description when a proxy answered instead."""
    try:
        error = json.loads(body)["error"]
        return ApiError(str(error["message"]), str(error["code"]), exc.code)
    except (ValueError, KeyError, TypeError):
        return ApiError(f"the API answered HTTP {exc.code} {exc.reason}", f"HTTP_{exc.code}", exc.code)


def _storage_error(exc: urllib.error.HTTPError, body: bytes) -> ClientError:
    """S3 answers in XML: <Error><Code>EntityTooLarge</Code><Message>...</Message></Error>."""
    try:
        root = ET.fromstring(body)
        code, message = root.findtext("Code"), root.findtext("Message")
    except ET.ParseError:
        code = message = None
    detail = message or f"HTTP {exc.code} {exc.reason}"
    return ApiError(f"the storage service refused the upload: {detail}", code or f"HTTP_{exc.code}", exc.code)
