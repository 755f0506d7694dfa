"""Webhooks: which targets the service will call, what a delivery sends, and what each answer means.

Standard Webhooks v1 (standardwebhooks.com): a delivery of one event has one webhook-id for all its attempts
(receivers dedupe on it); each attempt is signed anew with its own timestamp. A target must be https on a
public address, checked at submit and again at each delivery, against the addresses the connection then uses
(DNS may answer otherwise later); WebhookAllowPrivateTargets lifts both for a receiver on this machine.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from leyline.errors import InvalidWebhookUrl
from leyline.models import TaskState, Webhook, iso

# The events a submit may ask for, by the state that starts them.
EVENT_OF_STATE = {
    TaskState.PROCESSING: "started",
    TaskState.SUCCESS: "succeeded",
    TaskState.FAILURE: "failed",
    TaskState.CANCELLED: "cancelled",
}
EVENTS = tuple(EVENT_OF_STATE.values())
DEFAULT_EVENTS = ("succeeded", "failed", "cancelled")  # the final ones
TIMEOUT_SECONDS = 10.0
MAX_URL_LENGTH = 2048
MAX_DELAY_SECONDS = 43200  # SQS's longest visibility timeout: one retry's wait
JITTER = 0.1  # each delay is drawn within +-10 %, so receivers that failed together are not retried together

Resolver = Callable[[str], Sequence[str]]
"""A host's addresses (DNS, or an IP literal itself); raises OSError when it has none."""


class WebhookTarget(Protocol):
    """Sends one signed attempt to an address the caller checked (never re-resolving the host)."""

    def post(self, url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """The response's HTTP status; raises OSError (including TimeoutError) when there is none."""
        ...


class Signer(Protocol):
    def signature(self, webhook_id: str, timestamp: datetime, body: str) -> str:
        """The webhook-signature header: one `v1,<base64>` per current key, space-separated."""
        ...


class DeliveryLog(Protocol):
    def record(self, attempt: Attempt) -> None: ...

    def attempts(self, task_id: str) -> list[Attempt]: ...


@dataclass(frozen=True)
class Attempt:
    """One attempt of one delivery, as GET /tasks/{task_id}/deliveries lists it."""

    task_id: str
    event_type: str  # task.started, task.succeeded...
    webhook_id: str
    attempt: int  # 1, 2, 3...
    at: datetime
    status: int | None  # the receiver's HTTP status, if it answered
    error: str | None  # why there was no answer, or why it was not sent
    outcome: str  # delivered | retrying | gone | rejected | refused | dead-lettered
    next_retry_at: datetime | None = None
    expires_at: int = 0  # the task's: the log goes with it

    def to_json(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "webhook_id": self.webhook_id,
            "attempt": self.attempt,
            "at": iso(self.at),
            "status": self.status,
            "error": self.error,
            "outcome": self.outcome,
            "next_retry_at": iso(self.next_retry_at),
        }


# ---- at submit ----------------------------------------------------------------------------------
def parse_webhook(url: Any, events: Any, *, allow_private: bool, resolve: Resolver) -> Webhook | None:
    """The submit's webhook (None without webhook_url); 400 INVALID_WEBHOOK_URL if it is not one the service calls.
    `events`: a list, or the form's comma-separated text; None means the final ones."""
    if url is None or url == "":
        if events not in (None, "", []):
            raise InvalidWebhookUrl("webhook_events needs a webhook_url.")
        return None
    if not isinstance(url, str):
        raise InvalidWebhookUrl("webhook_url must be a string.")
    check_target(url, allow_private=allow_private, resolve=resolve)
    return Webhook(url, _events(events))


def _events(events: Any) -> tuple[str, ...]:
    if events is None or events == "":
        return DEFAULT_EVENTS
    names = [name.strip() for name in events.split(",")] if isinstance(events, str) else events
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name in EVENTS for name in names):
        raise InvalidWebhookUrl(f"webhook_events must be some of {', '.join(EVENTS)}.")
    return tuple(name for name in EVENTS if name in names)  # in the order they happen, each once


def check_target(url: str, *, allow_private: bool, resolve: Resolver) -> list[str]:
    """The addresses `url`'s host has now, each one the service may call; InvalidWebhookUrl otherwise.
    Without allow_private: https only, and every address public (one private answer is enough to refuse:
    the connection could go to it)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"webhook_url is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidWebhookUrl("webhook_url is not a URL.") from exc
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidWebhookUrl(f"webhook_url must be an {' or '.join(schemes)} URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("webhook_url must not carry credentials.")
    try:
        addresses = list(resolve(parts.hostname))
    except OSError as exc:
        raise InvalidWebhookUrl(f"webhook_url's host {parts.hostname} does not resolve.") from exc
    if not addresses:
        raise InvalidWebhookUrl(f"webhook_url's host {parts.hostname} does not resolve.")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise InvalidWebhookUrl(
                    f"webhook_url's host {parts.hostname} is {address}, not a public address:"
                    " webhooks go to the internet only."
                )
    return addresses


def is_public(address: str) -> bool:
    """Globally routable unicast: not loopback, private, link-local (169.254.169.254, the metadata service),
    shared (100.64/10), reserved or multicast; an IPv4-mapped IPv6 address is judged as its IPv4 one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


# ---- at delivery --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """One event for one task's webhook: the body every attempt sends, and its stable id."""

    task_id: str
    event_type: str
    webhook_id: str
    body: str


def delivery_for(event: dict[str, Any], webhook: Webhook | None) -> Delivery | None:
    """The delivery a task event asks for (an EventBridge event whose detail is the status object), or None
    when the task has no webhook or did not ask for this event."""
    status = event["detail"]
    name = EVENT_OF_STATE.get(TaskState(status["state"]))
    if webhook is None or name is None or name not in webhook.events:
        return None
    event_type = f"task.{name}"
    body = json.dumps({"type": event_type, "timestamp": event["time"], "data": status}, separators=(",", ":"))
    # One delivery per task and event: the same id if the event is ever published twice.
    return Delivery(status["task_id"], event_type, f"msg_{status['task_id']}_{name}", body)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None
    outcome: str
    retry_in: int | None = None  # seconds, when it is to be tried again

    @property
    def final_failure(self) -> bool:
        """Never delivered and never retried: it ends in the dead-letter queue (410: the receiver asked to stop)."""
        return self.outcome in ("rejected", "refused", "dead-lettered")


def attempt_delivery(
    delivery: Delivery,
    url: str,
    *,
    attempt: int,
    delays: Sequence[int],
    now: datetime,
    allow_private: bool,
    resolve: Resolver,
    target: WebhookTarget,
    signer: Signer,
    rng: random.Random | None = None,
) -> Outcome:
    """Checks the target again, sends attempt `attempt` (1-based) to the address checked, and says what next:
    2xx delivered; 410 gone; another 4xx (but 429) rejected; a timeout, a connection error, 429 or 5xx retried
    after delays[attempt - 1] (jittered) while there are delays left, dead-lettered after."""
    try:
        addresses = check_target(url, allow_private=allow_private, resolve=resolve)
    except InvalidWebhookUrl as refused:
        return Outcome(None, refused.message, "refused")
    headers = {
        "content-type": "application/json",
        "user-agent": "Leyline-Webhooks/1",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.signature(delivery.webhook_id, now, delivery.body),
    }
    try:
        status: int | None = target.post(url, addresses[0], delivery.body.encode(), headers, TIMEOUT_SECONDS)
        error = None
    except TimeoutError:
        status, error = None, f"no answer within {TIMEOUT_SECONDS:g} s"
    except OSError as exc:
        status, error = None, f"connection failed: {exc}"
    if status is not None and 200 <= status < 300:
        return Outcome(status, None, "delivered")
    if status == 410:
        return Outcome(status, None, "gone")
    if status is not None and 300 <= status < 500 and status != 429:  # redirects are not followed
        return Outcome(status, None, "rejected")
    if attempt > len(delays):
        return Outcome(status, error, "dead-lettered")
    return Outcome(status, error, "retrying", retry_in=jittered(delays[attempt - 1], rng or random.Random()))


def jittered(delay: int, rng: random.Random) -> int:
    return max(1, min(MAX_DELAY_SECONDS, round(delay * rng.uniform(1 - JITTER, 1 + JITTER))))


def parse_delays(text: str) -> tuple[int, ...]:
    """WebhookRetryDelays: comma-separated seconds, each 1 to 43200."""
    delays = tuple(int(part) for part in text.split(",") if part.strip())
    if not all(1 <= delay <= MAX_DELAY_SECONDS for delay in delays):
        raise ValueError(f"each webhook retry delay must be 1 to {MAX_DELAY_SECONDS} s: {text!r}")
    return delays


def logged(delivery: Delivery, attempt: int, now: datetime, outcome: Outcome, expires_at: int) -> Attempt:
    next_retry = None if outcome.retry_in is None else now + timedelta(seconds=outcome.retry_in)
    return Attempt(
        task_id=delivery.task_id,
        event_type=delivery.event_type,
        webhook_id=delivery.webhook_id,
        attempt=attempt,
        at=now,
        status=outcome.status,
        error=outcome.error,
        outcome=outcome.outcome,
        next_retry_at=next_retry,
        expires_at=expires_at,
    )
