"""Headless Debian Chromium, driven by Playwright, against a local stack whose bucket accepts the page's origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from infra.testing import LocalStack
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS, Console
from tests.stack import local_stack

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
MODEL_SECONDS = "3"  # long enough for the page's once-a-second polls to catch the bar mid-way


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # local_stack lists the page's origin in CorsAllowedOrigins: the browser's upload to the bucket needs it.
    with local_stack(tmp_path_factory.mktemp("web-stack"), MODEL_SECONDS) as running:
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
