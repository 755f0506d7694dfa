"""The web page in accounts mode (AccessMode=accounts), used the way a person uses it, in headless Chromium
against the local stack: Cognito on the embedded moto server, the gateway's JWT authorizer in front of the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Page, Request, expect

from infra.testing import RunningStack
from tests.accounts import FORGED_TOKEN, PASSWORD, Users, accounts_stack
from tests.browser.chromium import CHROMIUM, Console
from tests.browser.conftest import MODEL_SECONDS
from tests.browser.test_web_page import DONE_TIMEOUT_MS, _wait_until_playable
from tests.imagefactory import encode, pattern

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium"),
]

SESSION_KEY = "leyline.session.v1"


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The accounts-mode stack (tests/conftest.py's), with the page tests' short model; `users` signs up on it."""
    with accounts_stack(tmp_path_factory.mktemp("accounts-web"), model_seconds=MODEL_SECONDS) as running:
        yield running


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "holiday photo.png"
    path.write_bytes(encode(pattern(), "PNG"))
    return path


@dataclass
class Seen:
    """A request the page made."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None


class Traffic:
    """Every request the page makes from now on, to the API and to Cognito, and the API's answers' statuses."""

    def __init__(self, page: Page, stack: RunningStack, users: Users) -> None:
        self.api = stack.api_url
        self.cognito_endpoint = users.idp.meta.endpoint_url
        self.requests: list[Seen] = []
        self.statuses: list[tuple[str, int]] = []
        page.on("request", self._on_request)
        page.on("response", lambda response: self.statuses.append((response.url, response.status)))

    def _on_request(self, request: Request) -> None:
        self.requests.append(Seen(request.method, request.url, request.headers, request.post_data))

    def to_api(self) -> list[Seen]:
        return [seen for seen in self.requests if seen.url.startswith(self.api)]

    def cognito_actions(self) -> list[str]:
        """The Cognito calls, as `Action` or `InitiateAuth:FLOW`."""
        actions = []
        for seen in self.requests:
            if seen.url.startswith(self.cognito_endpoint) and seen.method == "POST":
                action = seen.headers["x-amz-target"].rsplit(".", 1)[-1]
                flow = json.loads(seen.body or "{}").get("AuthFlow")
                actions.append(f"{action}:{flow}" if flow else action)
        return actions


def sign_in(page: Page, stack: RunningStack, email: str, password: str = PASSWORD) -> None:
    page.goto(stack.api_url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.locator("#history-card")).to_have_attribute("aria-busy", "false")  # the history is listed


def history_listed(page: Page) -> None:
    """Waits for the history from GET /tasks (the page marks its card busy meanwhile)."""
    expect(page.locator("#history-card")).to_have_attribute("aria-busy", "false")


def stored_session(page: Page) -> Any:
    return page.evaluate("(key) => JSON.parse(localStorage.getItem(key))", SESSION_KEY)


def edit_session(page: Page, **changes: Any) -> None:
    """Changes the stored session as time (an access token's end) would."""
    page.evaluate(
        """([key, changes]) => {
            localStorage.setItem(key, JSON.stringify({ ...JSON.parse(localStorage.getItem(key)), ...changes }));
        }""",
        [SESSION_KEY, changes],
    )


def page_errors(console: Console, *expected: str) -> list[str]:
    """The console's errors but those of requests answered 401 on purpose (Chromium logs every failed fetch)."""
    return [error for error in console.errors if not any(part in error for part in expected)]


def test_signed_out_the_page_offers_only_sign_in_and_calls_nothing_of_the_api(
    accounts: RunningStack, users: Users, page: Page, console: Console, artifacts: Path
) -> None:
    # Given a person who is not signed in, and every request the page makes
    traffic = Traffic(page, accounts, users)

    # When they open the page
    page.goto(accounts.api_url)

    # Then it offers a sign-in form (and a way to create an account), and nothing else
    expect(page.locator("body")).to_have_attribute("data-mode", "accounts")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    expect(page.get_by_role("button", name="Create an account")).to_be_visible()
    for hidden in ("#new-card", "#task", "#history-card", "#account-bar"):
        expect(page.locator(hidden)).to_be_hidden()
    # And of the API it read only the page and its public /config
    assert {seen.url.removeprefix(accounts.api_url) for seen in traffic.to_api()} == {"/", "/config"}
    page.screenshot(path=artifacts / "web-page-sign-in.png", full_page=True)
    assert console.errors == []


def test_a_person_signs_up_confirms_and_is_signed_in_with_the_keyboard(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given the sign-in form
    traffic = Traffic(page, accounts, users)
    page.goto(accounts.api_url)

    # When a person chooses to create an account, types an email and a password and presses Enter
    page.get_by_role("button", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type("newcomer@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    # Then the page asks for the code sent to that email, the focus on its field
    expect(page.get_by_role("heading", name="Confirm your account")).to_be_visible()
    expect(page.locator("#confirm-email")).to_have_text("newcomer@example.com")
    expect(page.get_by_label("Confirmation code")).to_be_focused()

    # When they type the code (locally moto takes any) and press Enter
    page.keyboard.type("123456")
    page.keyboard.press("Enter")

    # Then they are signed in: their email and a Sign out button, the upload and their (empty) history
    expect(page.locator("#account-email")).to_have_text("newcomer@example.com")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_label("Choose an image")).to_be_attached()
    expect(page.get_by_role("heading", name="Your videos")).to_be_visible()
    expect(page.locator("#history-empty")).to_be_visible()
    # And Cognito was called directly, at the endpoint /config names: sign up, confirm, sign in with the password
    assert traffic.cognito_actions() == ["SignUp", "ConfirmSignUp", "InitiateAuth:USER_PASSWORD_AUTH"]

    # And a reload keeps them signed in
    page.reload()
    expect(page.locator("#account-email")).to_have_text("newcomer@example.com")
    assert console.errors == []


def test_signed_in_the_token_goes_with_every_call_and_the_history_follows_to_another_device(
    accounts: RunningStack,
    users: Users,
    browser: Browser,
    page: Page,
    console: Console,
    photo: Path,
    artifacts: Path,
) -> None:
    # Given a signed-in user, and every request the page makes
    users.sign_up("ada@example.com")
    traffic = Traffic(page, accounts, users)
    sign_in(page, accounts, "ada@example.com")

    # When they make a video
    page.get_by_label("Choose an image").set_input_files(photo)
    _wait_until_playable(page)

    # Then every call to the API but the page and /config carried their access token
    token = stored_session(page)["accessToken"]
    calls = [seen for seen in traffic.to_api() if _route(accounts, seen) not in ("/", "/config")]
    assert {_route(accounts, seen) for seen in calls} >= {"/uploads", "/status", "/tasks"}
    assert all(seen.headers.get("authorization") == f"Bearer {token}" for seen in calls), calls
    entry = page.locator("#history li").first
    expect(entry.locator(".badge")).to_have_text("Ready")
    task_id = str(entry.locator("button.open").get_attribute("data-id"))

    # And Download saves the MP4 under the task's name, though a link cannot carry the token
    with page.expect_download() as download:
        page.get_by_role("link", name="Download video").click()
    assert download.value.suggested_filename == f"{task_id}.mp4"
    assert Path(download.value.path()).read_bytes()[4:8] == b"ftyp"

    # When they sign in on another device (another browser profile)
    other = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        phone = other.new_page()
        sign_in(phone, accounts, "ada@example.com")

        # Then the history there lists the same task with its state, and opening it plays its video
        listed = phone.locator("#history li")
        expect(listed).to_have_count(1)
        expect(listed.locator(".badge")).to_have_text("Ready")
        assert listed.locator("button.open").get_attribute("data-id") == task_id
        listed.locator("button.open").click()
        _wait_until_playable(phone)
        phone.screenshot(path=artifacts / "web-page-signed-in-phone.png", full_page=True)
    finally:
        other.close()
    assert console.errors == []


def test_the_history_pages_through_every_task_once_and_is_the_users_own(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given a user with 25 tasks (waiting for their uploads), and another user with none
    owner = users.new_user("busy@example.com")
    made = [_new_task(accounts, owner.authorization) for _ in range(25)]
    users.sign_up("idle@example.com")

    # When the first signs in, Then the newest 20 are listed, and a button offers the older ones
    sign_in(page, accounts, "busy@example.com")
    entries = page.locator("#history button.open")
    expect(entries).to_have_count(20)
    expect(entries.first.locator(".badge")).to_have_text("Uploading")
    more = page.get_by_role("button", name="Show older videos")

    # When they ask for the older ones, Then all 25 are listed once, newest first, and the button goes away
    more.click()
    expect(entries).to_have_count(25)
    listed = [str(entries.nth(index).get_attribute("data-id")) for index in range(25)]
    assert sorted(listed) == sorted(made)  # each once
    created = [str(entries.nth(index).locator("time").get_attribute("datetime")) for index in range(25)]
    assert created == sorted(created, reverse=True)  # newest first (ISO 8601 UTC sorts as text)
    expect(more).to_be_hidden()

    # When they sign out and the other user signs in, Then none of those tasks is listed
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, accounts, "idle@example.com")
    expect(page.locator("#history-empty")).to_be_visible()
    expect(entries).to_have_count(0)
    assert console.errors == []


def test_a_wrong_password_and_an_unconfirmed_account_are_told_apart(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given an account never confirmed
    users.sign_up("late@example.com", confirm=False)
    page.goto(accounts.api_url)

    # When its owner signs in with a wrong password, Then an alert says so, and they stay on the form
    page.get_by_label("Email").fill("late@example.com")
    page.get_by_label("Password").fill("Not-the-password-1")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="Wrong")).to_have_text("Wrong email or password.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # When they sign in with the right one, Then the page asks for the confirmation code
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="not confirmed")).to_be_visible()
    expect(page.get_by_label("Confirmation code")).to_be_focused()

    # When they enter it, Then they are signed in
    page.get_by_label("Confirmation code").fill("123456")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#account-email")).to_have_text("late@example.com")
    # (Cognito answers a refused sign-in 400; Chromium logs it as a failed load)
    assert page_errors(console, "400") == []


def test_an_access_token_at_its_end_is_refreshed_before_it_is_sent(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given a signed-in user whose access token has run out while the page was closed
    users.sign_up("clock@example.com")
    sign_in(page, accounts, "clock@example.com")
    first = stored_session(page)["accessToken"]
    edit_session(page, expiresAt=0)
    traffic = Traffic(page, accounts, users)

    # When they come back to the page
    page.reload()

    # Then it refreshed the token first (no call was refused) and lists their history with the new one
    history_listed(page)
    expect(page.locator("#history-empty")).to_be_visible()
    assert traffic.cognito_actions() == ["InitiateAuth:REFRESH_TOKEN_AUTH"]
    assert 401 not in [status for _, status in traffic.statuses]
    fresh = stored_session(page)["accessToken"]
    assert fresh != first
    tasks_call = next(seen for seen in traffic.to_api() if "/tasks?" in seen.url)
    assert tasks_call.headers["authorization"] == f"Bearer {fresh}"
    assert console.errors == []


def test_a_token_the_api_refuses_is_refreshed_and_the_call_made_again(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given a signed-in user whose stored access token the gateway refuses, though it looks fresh
    users.sign_up("rotated@example.com")
    sign_in(page, accounts, "rotated@example.com")
    edit_session(page, accessToken=FORGED_TOKEN)
    traffic = Traffic(page, accounts, users)

    # When they come back to the page
    page.reload()

    # Then the API's 401 made it refresh the token and ask again: the history is listed, they stay signed in
    history_listed(page)
    expect(page.locator("#history-empty")).to_be_visible()
    tasks_answers = [status for url, status in traffic.statuses if "/tasks?" in url]
    assert tasks_answers == [401, 200]
    assert traffic.cognito_actions() == ["InitiateAuth:REFRESH_TOKEN_AUTH"]
    assert stored_session(page)["accessToken"] != FORGED_TOKEN
    assert page_errors(console, "401") == []


def test_a_session_signed_out_elsewhere_returns_to_the_sign_in_form(
    accounts: RunningStack, users: Users, page: Page, console: Console
) -> None:
    # Given a user signed in here, then signed out everywhere from another device, once this token ran out
    elsewhere = users.new_user("revoked@example.com")
    sign_in(page, accounts, "revoked@example.com")
    users.idp.global_sign_out(AccessToken=elsewhere.access_token)
    edit_session(page, expiresAt=0)

    # When they come back to the page
    page.reload()

    # Then it says the session has expired, shows the sign-in form and nothing else, and forgot the session
    expect(page.get_by_role("alert").filter(has_text="expired")).to_have_text(
        "Your session has expired. Please sign in again."
    )
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    expect(page.locator("#new-card")).to_be_hidden()
    expect(page.locator("#history-card")).to_be_hidden()
    assert stored_session(page) is None
    assert page_errors(console, "400") == []  # Cognito refused the revoked refresh token


def test_sign_out_signs_out_everywhere_and_leaves_nothing_behind(
    accounts: RunningStack, users: Users, page: Page, console: Console, photo: Path
) -> None:
    # Given a signed-in user with a task in their history
    users.sign_up("leaving@example.com")
    sign_in(page, accounts, "leaving@example.com")
    page.get_by_label("Choose an image").set_input_files(photo)
    expect(page.locator("#history li")).to_have_count(1, timeout=DONE_TIMEOUT_MS)
    refresh_token = stored_session(page)["refreshToken"]

    # When they sign out
    page.get_by_role("button", name="Sign out").click()

    # Then the sign-in form is back, saying so, and nothing of theirs is left on the page or in its storage
    expect(page.get_by_role("alert").filter(has_text="signed out")).to_have_text("You are signed out.")
    expect(page.locator("#history li")).to_have_count(0)
    expect(page.locator("#task")).to_be_hidden()
    assert stored_session(page) is None
    # And Cognito no longer takes their refresh token (GlobalSignOut: every device)
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        users.idp.initiate_auth(
            ClientId=users.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={"REFRESH_TOKEN": refresh_token}
        )
    # And a reload stays signed out
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert console.errors == []


def _route(stack: RunningStack, seen: Seen) -> str:
    """The first segment of a request's path: /status for /status/<id>."""
    return "/" + seen.url.removeprefix(stack.api_url).lstrip("/").split("?")[0].split("/")[0]


def _new_task(stack: RunningStack, authorization: dict[str, str]) -> str:
    answer = requests.post(f"{stack.api_url}/uploads", json={}, headers=authorization, timeout=10)
    assert answer.status_code == 201, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def test_the_email_checkbox_gets_the_signed_in_user_an_email_when_the_video_is_ready(
    accounts: RunningStack, users: Users, page: Page, console: Console, photo: Path
) -> None:
    # Given a signed-in user, who ticks "Notify me by e-mail when it is done"
    users.sign_up("grace@example.com")
    traffic = Traffic(page, accounts, users)
    sign_in(page, accounts, "grace@example.com")
    page.get_by_label("Notify me by e-mail when it is done").check()

    # When they make a video
    page.get_by_label("Choose an image").set_input_files(photo)
    _wait_until_playable(page)

    # Then the submit asked for the email, naming no address
    [submit] = [seen for seen in traffic.to_api() if _route(accounts, seen) == "/uploads"]
    assert json.loads(submit.body or "{}")["notify_email"] is True
    assert "grace@example.com" not in (submit.body or "")
    # And moto's SES holds the message to their own address (a bounded wait: the email follows SUCCESS)
    to_grace: list[dict[str, Any]] = []
    for _ in range(100):
        mail = requests.get(f"{accounts.aws_endpoint}/moto-api/data.json", timeout=10).json()
        sent = mail.get("ses", {}).get("Message", [])
        to_grace = [m for m in sent if m["destinations"]["ToAddresses"] == ["grace@example.com"]]
        if to_grace:
            break
        page.wait_for_timeout(200)
    assert len(to_grace) == 1
    assert "is ready" in to_grace[0]["subject"]
    assert console.errors == []
