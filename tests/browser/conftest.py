"""Headless Debian Chromium, driven by Playwright, against a local stack started with its own defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from infra.testing import RunningStack
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, Console
from tests.stack import VIDEO_SECONDS

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
MODEL_SECONDS = "3"  # long enough for the page's once-a-second polls to catch the bar mid-way
SLOW_MODEL_SECONDS = "30"  # a task behind another one surely still waits when the test acts on it


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack as a user starts it on a port other than 8080: CorsAllowedOrigins left to its default, which
    must follow the port, or the browser's upload to the bucket is refused."""
    stack = RunningStack(env={"LEYLINE_MODEL_SECONDS": MODEL_SECONDS}, log_dir=tmp_path_factory.mktemp("web-stack"))
    with stack as running:
        yield running


@pytest.fixture(scope="module")
def slow_web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack whose model takes long, for tests that act on a task while it waits in line."""
    stack = RunningStack(
        env={"LEYLINE_MODEL_SECONDS": SLOW_MODEL_SECONDS},
        parameter_overrides={"VideoSeconds": VIDEO_SECONDS},
        log_dir=tmp_path_factory.mktemp("slow-web"),
    )
    with stack as running:
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser profile per test: empty localStorage, its own console record."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.on("console", console.on_message)
    page.on("pageerror", console.on_page_error)
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
