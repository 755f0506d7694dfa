"""logic/webhooks.py: which targets are called, and what each answer of a receiver leads to (fakes, no network)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from leyline.adapters.webhook_signing import signature
from leyline.errors import InvalidWebhookUrl
from leyline.logic.webhooks import Delivery, Outcome, attempt_delivery, jittered, parse_delays, parse_webhook

NOW = datetime(2026, 12, 1, tzinfo=UTC)
KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_KEY = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Resolver:
    """Answers each lookup with the next of its answers (a DNS that changes its mind)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)

    def __call__(self, host: str) -> list[str]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Target:
    def __init__(self, status: int | None = 200, error: OSError | None = None) -> None:
        self.status, self.error = status, error
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def post(self, url: str, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.sent.append((url, address, headers))
        if self.error is not None:
            raise self.error
        assert self.status is not None
        return self.status


class Signer:
    def signature(self, webhook_id: str, timestamp: datetime, body: str) -> str:
        return signature([KEY, OLD_KEY], webhook_id, timestamp, body)


DELIVERY = Delivery("t", "task.succeeded", "msg_t_succeeded", '{"type":"task.succeeded"}')


def deliver(target: Target, resolve: Resolver, attempt: int = 1, allow_private: bool = False) -> Outcome:
    return attempt_delivery(
        DELIVERY,
        "https://hooks.example.com/x",
        attempt=attempt,
        delays=(5, 30),
        now=NOW,
        allow_private=allow_private,
        resolve=resolve,
        target=target,
        signer=Signer(),
        rng=random.Random(1),
    )


def test_dns_that_answers_public_at_submit_and_loopback_at_delivery_is_refused_before_connecting():
    # Given a host whose DNS answers a public address first, then 127.0.0.1 (a rebinding)
    resolve = Resolver(["93.184.215.14"], ["127.0.0.1"])
    assert parse_webhook("https://hooks.example.com/x", None, allow_private=False, resolve=resolve)
    target = Target()

    # When the delivery is attempted
    outcome = deliver(target, resolve)

    # Then nothing is sent and the attempt is refused, for good
    assert target.sent == []
    assert outcome.outcome == "refused"
    assert outcome.final_failure


def test_the_connection_goes_to_the_address_that_was_checked():
    target = Target()
    deliver(target, Resolver(["93.184.215.14"]))
    assert [address for _, address, _ in target.sent] == ["93.184.215.14"]


def test_each_attempt_carries_both_signatures_during_a_rotation():
    from standardwebhooks.webhooks import Webhook

    target = Target()
    deliver(target, Resolver(["93.184.215.14"]))
    headers = target.sent[0][2]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for key in (KEY, OLD_KEY):  # a receiver on either key verifies it
        signed = Webhook(key).sign(headers["webhook-id"], NOW, DELIVERY.body)
        assert signed in headers["webhook-signature"].split(" ")


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, "delivered"),
        (204, None, "delivered"),
        (410, None, "gone"),
        (404, None, "rejected"),
        (301, None, "rejected"),  # redirects are not followed
        (429, None, "retrying"),
        (503, None, "retrying"),
        (None, TimeoutError(), "retrying"),
        (None, ConnectionRefusedError(), "retrying"),
    ],
)
def test_what_each_answer_leads_to(status, error, outcome):
    assert deliver(Target(status, error), Resolver(["93.184.215.14"])).outcome == outcome


def test_retries_end_in_the_dead_letter_queue_once_the_delays_are_spent():
    first = deliver(Target(500), Resolver(["93.184.215.14"]), attempt=1)
    last = deliver(Target(500), Resolver(["93.184.215.14"]), attempt=3)
    assert first.outcome == "retrying"
    assert 4 <= first.retry_in <= 6
    assert last.outcome == "dead-lettered"
    assert last.final_failure


@pytest.mark.parametrize(
    "url",
    ["http://93.184.215.14/", "https://127.0.0.1/", "https://169.254.169.254/", "https://u:p@93.184.215.14/", "x"],
)
def test_targets_refused_at_submit(url):
    host = url.split("/")[2].split("@")[-1] if "//" in url else url
    with pytest.raises(InvalidWebhookUrl):
        parse_webhook(url, None, allow_private=False, resolve=Resolver([host]))


def test_private_targets_and_http_are_allowed_when_the_parameter_is_on():
    hook = parse_webhook("http://127.0.0.1:9/x", "started", allow_private=True, resolve=Resolver(["127.0.0.1"]))
    assert hook is not None
    assert hook.events == ("started",)


def test_events_default_to_the_final_ones_and_unknown_ones_are_refused():
    hook = parse_webhook("https://a.example/", None, allow_private=False, resolve=Resolver(["93.184.215.14"]))
    assert hook is not None
    assert hook.events == ("succeeded", "failed", "cancelled")
    with pytest.raises(InvalidWebhookUrl):
        parse_webhook("https://a.example/", ["done"], allow_private=False, resolve=Resolver(["93.184.215.14"]))


def test_delays_are_jittered_within_ten_percent_and_bounded_by_sqs():
    rng = random.Random(7)
    assert all(90 <= jittered(100, rng) <= 110 for _ in range(200))
    assert jittered(43200, rng) <= 43200
    with pytest.raises(ValueError, match="1 to 43200"):
        parse_delays("5,50000")
