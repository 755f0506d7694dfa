"""Task emails over real HTTP on the local stack in accounts mode: users sign up and confirm on its Cognito (the
embedded moto server), submit with and without `notify_email`, and the mail reaches moto's SES - read back from
the moto server's own record (/moto-api/data.json), as README's "Email" shows - for the opted-in user only.
Open mode refuses the field over HTTP too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.testing import RunningStack
from tests.accounts import submit_form, until_final
from tests.stack import local_stack

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).parents[2] / "examples" / "image.png").read_bytes()
SENDER = "leyline@example.com"  # NotificationSender's default


def sent_mail(stack: RunningStack) -> list[dict[str, Any]]:
    """Every message moto's SES recorded as sent on the stack's AWS endpoint."""
    data = requests.get(f"{stack.aws_endpoint}/moto-api/data.json", timeout=10).json()
    return list(data.get("ses", {}).get("Message", []))


def mail_to(stack: RunningStack, address: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [mail for mail in sent_mail(stack) if address in mail["destinations"]["ToAddresses"]]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no mail to {address} within {timeout} s; sent: {sent_mail(stack)}")


def test_the_email_reaches_the_opted_in_user_and_nobody_else(accounts, users):
    # Given Alice and Bob signed up and confirmed (which proves their addresses), and signed in
    alice, bob = users.new_user("alice@example.com"), users.new_user("bob@example.com")

    # When Alice submits with the page's checkbox ticked, Bob without it, and both tasks end
    bobs = submit_form(accounts.api_url, bob, EXAMPLE)
    alices = submit_form(accounts.api_url, alice, EXAMPLE, notify_email="on")
    assert until_final(accounts.api_url, bob, bobs)["state"] == "SUCCESS"
    assert until_final(accounts.api_url, alice, alices)["state"] == "SUCCESS"

    # Then moto's SES has one message for Alice, from the sender, with the result and the local page's link
    mail = mail_to(accounts, "alice@example.com")
    assert mail["source"] == SENDER
    assert mail["destinations"]["ToAddresses"] == ["alice@example.com"]
    assert "is ready" in mail["subject"]
    assert alices in mail["body"]
    assert f"{accounts.api_url}/" in mail["body"]
    # And no other message: none to Bob (he did not ask), none about his task, none to anyone else
    time.sleep(1.0)  # Bob's task ended first: its event had as long as Alice's to be (wrongly) mailed
    assert len(sent_mail(accounts)) == 1
    assert bobs not in sent_mail(accounts)[0]["body"]
    # And the stack's log names the send (by its message id, not the address)
    assert "task email sent" in accounts.log_path.read_text()


def test_a_submit_cannot_name_the_address(accounts, users):
    # Given Carol signed in
    carol = users.new_user("carol@example.com")

    # When her POST /uploads names an address, or asks notify_email with one, Then 400 and nothing is mailed
    before = len(sent_mail(accounts))
    for body in ({"notify_email": True, "email": "mallory@example.com"}, {"notify_email": "mallory@example.com"}):
        response = requests.post(f"{accounts.api_url}/uploads", json=body, headers=carol.authorization, timeout=10)
        assert response.status_code == 400, body
    assert len(sent_mail(accounts)) == before


def test_open_mode_refuses_an_email_and_sends_none(tmp_path):
    # Given a stack in open mode (the default)
    with local_stack(tmp_path) as open_stack:
        # When an anonymous form upload ticks the checkbox
        response = requests.post(
            f"{open_stack.api_url}/upload",
            files={"image": ("photo.png", EXAMPLE)},
            data={"notify_email": "on"},
            timeout=10,
        )

        # Then a clear 400, and SES sent nothing (open mode has no EmailFunction at all)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_NOTIFY_EMAIL"
        assert sent_mail(open_stack) == []
        assert "EmailFunction" not in open_stack.stack.functions
