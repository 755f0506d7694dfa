"""The web page at GET /, used the way a person uses it, in headless Chromium against the local stack."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import FileChooser, FilePayload, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from infra.testing import RunningStack
from tests.browser.chromium import CHROMIUM, Console
from tests.imagefactory import encode, pattern, png
from tests.integration.polling import status, upload_presigned

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium"),
]

DONE_TIMEOUT_MS = 90_000  # the model plus the queue ahead, with room for a slow machine


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "holiday photo.png"
    path.write_bytes(encode(pattern(), "PNG"))
    return path


def test_an_upload_shows_live_progress_then_plays_the_video(
    web_stack: RunningStack, page: Page, console: Console, photo: Path, artifacts: Path
) -> None:
    # Given the page served by the API, with every change of its bars and status line recorded
    page.goto(web_stack.api_url)
    for element_id, prop in (("upload-progress", "value"), ("task-progress", "value"), ("task-state", "textContent")):
        _record(page, element_id, prop)

    # When a person picks an image
    page.get_by_label("Choose an image").set_input_files(photo)

    # Then the video becomes playable inline: the H.264 MP4 decodes in Chromium
    _wait_until_playable(page)
    assert page.evaluate("document.getElementById('player').videoWidth") > 0

    # And the upload bar reached 100 %, and the task's bar rose step by step to 100 %
    assert max(_recorded(page, "upload-progress")) == 100
    progress = _recorded(page, "task-progress")
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert any(0 < value < 100 for value in progress), f"the bar jumped straight to the end: {progress}"

    # And screen readers heard each stage in a polite live region
    status_line = page.locator("#task-state")
    assert status_line.get_attribute("role") == "status"
    assert status_line.get_attribute("aria-live") == "polite"
    announced = _recorded(page, "task-state")
    assert "Making your video…" in announced
    assert announced[-1] == "Your video is ready."

    # And the download link hands over the MP4
    href = page.get_by_role("link", name="Download video").get_attribute("href")
    video = page.request.get(f"{web_stack.api_url}/{href}")
    assert video.ok
    assert video.body()[4:8] == b"ftyp"

    page.screenshot(path=artifacts / "web-page-success.png", full_page=True)
    assert console.errors == []


def test_on_a_port_other_than_8080_the_page_uploads_by_either_host_name(
    web_stack: RunningStack, page: Page, console: Console, photo: Path
) -> None:
    # Given the stack started without CorsAllowedOrigins on a port other than 8080, its page opened as localhost
    # (the other tests open it as 127.0.0.1)
    assert web_stack.api_port != 8080
    assert "LEYLINE_PARAMETER_OVERRIDES" not in web_stack.env
    page.goto(f"http://localhost:{web_stack.api_port}")

    # When a person picks an image
    page.get_by_label("Choose an image").set_input_files(photo)

    # Then the browser's upload straight to the bucket is allowed: the task enters the history, no notice shows
    entry = page.locator("#history button").filter(has_text=photo.name)
    expect(entry).to_have_count(1, timeout=DONE_TIMEOUT_MS)
    expect(page.locator("#notice")).to_be_empty()
    # And the bucket has the image: the task leaves PENDING (once the upload event went through the intake)
    task_id = entry.get_attribute("data-id")
    assert _state_after_pending(web_stack.api_url, str(task_id)) in ("QUEUED", "PROCESSING", "SUCCESS")
    assert console.errors == []


def test_in_open_mode_nobody_signs_in_and_no_token_is_sent(
    web_stack: RunningStack, page: Page, console: Console, photo: Path
) -> None:
    # Given the stack in open mode (its default), and every request the page makes
    requests_made: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda request: requests_made.append((request.url, request.headers)))

    # When a person opens the page
    page.goto(web_stack.api_url)

    # Then it is the anonymous page: no sign-in form or account bar, the upload and this browser's history
    expect(page.locator("body")).to_have_attribute("data-mode", "open")
    expect(page.locator("#account-card")).to_be_hidden()
    expect(page.locator("#account-bar")).to_be_hidden()
    expect(page.get_by_role("heading", name="New video")).to_be_visible()
    expect(page.get_by_role("heading", name="Made in this browser")).to_be_visible()

    # And an upload goes without any Authorization header, to the API alone (nothing to a sign-in service)
    page.get_by_label("Choose an image").set_input_files(photo)
    expect(page.locator("#history button").filter(has_text=photo.name)).to_have_count(1, timeout=DONE_TIMEOUT_MS)
    assert any(url.endswith("/uploads") for url, _ in requests_made)
    assert [url for url, headers in requests_made if "authorization" in headers] == []
    assert [url for url, headers in requests_made if "x-amz-target" in headers] == []
    assert console.errors == []


def test_a_file_that_is_not_an_image_is_refused_before_uploading(
    web_stack: RunningStack, page: Page, console: Console
) -> None:
    # Given the page, watching which requests it makes
    page.goto(web_stack.api_url)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))

    # When a person picks a text file named like a PNG
    page.get_by_label("Choose an image").set_input_files(
        FilePayload(name="x.png", mimeType="image/png", buffer=b"Hello, this is not an image.\n")
    )

    # Then an alert says what is wrong, in words, and nothing was sent
    expect(page.get_by_role("alert").filter(has_text="x.png")).to_contain_text("is not a PNG, JPEG or WebP image")
    assert not [url for url in urls if url.endswith("/uploads")]
    assert console.errors == []


def test_a_failed_task_explains_why_and_offers_another_try(
    web_stack: RunningStack, page: Page, console: Console, tmp_path: Path, artifacts: Path
) -> None:
    # Given an image the model refuses (too small to animate)
    tiny = tmp_path / "icon.png"
    tiny.write_bytes(png(32, 32))
    page.goto(web_stack.api_url)

    # When a person uploads it
    page.get_by_label("Choose an image").set_input_files(tiny)

    # Then the page shows the task's error message as the API words it
    failure = page.locator("#failure-message")
    expect(failure).to_be_visible(timeout=DONE_TIMEOUT_MS)
    task_id = page.locator("#history button").first.get_attribute("data-id")
    status = requests.get(f"{web_stack.api_url}/status/{task_id}", timeout=10).json()
    assert status["state"] == "FAILURE"
    expect(failure).to_have_text(status["error"]["message"])
    expect(page.locator("#task-state")).to_have_text("This video could not be made.")

    # And "Try again" opens the file picker
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Try again").click()
    assert not chooser.value.is_multiple()

    page.screenshot(path=artifacts / "web-page-failure.png", full_page=True)
    assert console.errors == []


def test_the_history_survives_a_reload_and_reopens_a_video_on_a_phone(
    web_stack: RunningStack, page: Page, console: Console, photo: Path, artifacts: Path
) -> None:
    # Given a phone-sized screen and a video made in this browser
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(web_stack.api_url)
    page.get_by_label("Choose an image").set_input_files(photo)
    _wait_until_playable(page)

    # When the page is reloaded
    page.reload()

    # Then the history lists the task with its state
    entry = page.locator("#history button").filter(has_text=photo.name)
    expect(entry).to_contain_text("Ready")

    # And reopening it plays the video again, with nothing wider than the screen
    entry.click()
    _wait_until_playable(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.screenshot(path=artifacts / "web-page-phone.png", full_page=True)
    assert console.errors == []


def test_the_file_picker_is_reachable_and_usable_with_the_keyboard(
    web_stack: RunningStack, page: Page, console: Console, photo: Path
) -> None:
    # Given the page, ready (it has read GET /config: until then it shows nothing of the API)
    page.goto(web_stack.api_url)
    expect(page.locator("body")).to_have_attribute("data-mode", "open")

    # When a keyboard user tabs once, Then the file picker has the focus, under its label
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file-input"
    expect(page.get_by_label("Choose an image")).to_be_focused()

    # When they press Space, Then the picker opens, and the chosen image starts a task (headless Chromium once
    # let a Space on the focused picker go without a chooser event in CI: a second press is what a person does)
    chooser = _file_chooser_by_space(page)
    chooser.set_files(photo)
    expect(page.locator("#task-state")).not_to_be_empty(timeout=DONE_TIMEOUT_MS)
    expect(page.locator("#history button").filter(has_text=photo.name)).to_have_count(1)

    # And the focus is back on the picker, ready for the next image
    expect(page.get_by_label("Choose an image")).to_be_focused()
    assert console.errors == []


def _file_chooser_by_space(page: Page) -> FileChooser:
    for attempt in (1, 2):
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press("Space")
            return chooser.value
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_cancel_takes_back_a_task_waiting_in_line_and_shows_it_cancelled(
    slow_web_stack: RunningStack, page: Page, console: Console, photo: Path, artifacts: Path
) -> None:
    # Given another task in the (slow) model, so the person's task will wait in line behind it
    ahead = upload_presigned(slow_web_stack.api_url, png())
    page.goto(slow_web_stack.api_url)

    # When a person uploads an image, Then it waits in line with a Cancel button, and no Delete in the history
    page.get_by_label("Choose an image").set_input_files(photo)
    expect(page.locator("#fact-state")).to_have_text("In line", timeout=DONE_TIMEOUT_MS)
    entry = page.locator("#history li").filter(has_text=photo.name)
    expect(entry.get_by_role("button", name="Delete")).to_have_count(0)

    # When they cancel it from the keyboard
    cancel = page.get_by_role("button", name="Cancel this video")
    cancel.focus()
    page.keyboard.press("Enter")

    # Then the page says it is cancelled, in the status line, the facts and the history, and offers another try
    expect(page.locator("#task-state")).to_have_text("Cancelled.")
    expect(page.locator("#fact-state")).to_have_text("Cancelled")
    expect(page.locator("#failure-message")).to_have_text("You cancelled this video: it will not be made.")
    expect(cancel).to_be_hidden()
    expect(page.get_by_role("button", name="Try again")).to_be_focused()
    expect(entry.locator(".badge")).to_have_text("Cancelled")
    # And the API agrees: the task is CANCELLED, while the one ahead goes on
    task_id = str(entry.locator("button.open").get_attribute("data-id"))
    assert status(slow_web_stack.api_url, task_id)["state"] == "CANCELLED"
    assert status(slow_web_stack.api_url, ahead)["state"] in ("QUEUED", "PROCESSING")
    page.screenshot(path=artifacts / "web-page-cancelled.png", full_page=True)

    # When the task is deleted elsewhere, then Deleted here, Then the API's 404 removes it from the history too
    assert requests.delete(f"{slow_web_stack.api_url}/tasks/{task_id}", timeout=10).status_code == 204
    entry.get_by_role("button", name="Delete").click()
    expect(entry).to_have_count(0)
    expect(page.locator("#history-notice")).to_be_empty()
    # (the page's DELETE drew that 404 on purpose; Chromium logs every failed fetch as a console error)
    assert [error for error in console.errors if f"/tasks/{task_id}" not in error] == []


def test_delete_removes_a_finished_task_from_the_history_and_the_api(
    web_stack: RunningStack, page: Page, console: Console, photo: Path
) -> None:
    # Given a video made in this browser
    page.goto(web_stack.api_url)
    page.get_by_label("Choose an image").set_input_files(photo)
    expect(page.locator("#task-state")).to_have_text("Your video is ready.", timeout=DONE_TIMEOUT_MS)
    entry = page.locator("#history li").filter(has_text=photo.name)
    task_id = str(entry.locator("button.open").get_attribute("data-id"))

    # When the person deletes it from the history (its Delete button is labelled with the file's name)
    page.get_by_role("button", name=f"Delete “{photo.name}”").click()

    # Then it is gone from the history, the page shows it no more, and the focus is not lost
    expect(entry).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#task")).to_be_hidden()
    expect(page.locator("#history-heading")).to_be_focused()
    # And the API answers 404 for it
    assert requests.get(f"{web_stack.api_url}/status/{task_id}", timeout=10).status_code == 404
    assert console.errors == []


def _record(page: Page, element_id: str, prop: str) -> None:
    """Keeps every value `prop` of the element takes, from now on, in window.__recorded[element_id]."""
    page.evaluate(
        """([id, prop]) => {
            const element = document.getElementById(id);
            window.__recorded = window.__recorded || {};
            const values = (window.__recorded[id] = [element[prop]]);
            const keep = () => values.at(-1) !== element[prop] && values.push(element[prop]);
            new MutationObserver(keep).observe(element, { attributes: true, childList: true, subtree: true });
        }""",
        [element_id, prop],
    )


def _recorded(page: Page, element_id: str) -> list[Any]:
    values: list[Any] = page.evaluate("(id) => window.__recorded[id]", element_id)
    return values


def _state_after_pending(api_url: str, task_id: str, timeout: float = 30.0) -> str:
    """The task's first state other than PENDING, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state: str = requests.get(f"{api_url}/status/{task_id}", timeout=10).json()["state"]
        if state != "PENDING" or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def _wait_until_playable(page: Page) -> None:
    """HAVE_CURRENT_DATA or better: the browser has decoded a frame of the video.

    Polled from here: page.wait_for_function evaluates its predicate inside the page, which the page's
    Content-Security-Policy (no 'unsafe-eval') forbids, as it should."""
    deadline = time.monotonic() + DONE_TIMEOUT_MS / 1000
    while page.evaluate("document.getElementById('player').readyState") < 2:
        assert time.monotonic() < deadline, "the video never became playable"
        page.wait_for_timeout(100)
