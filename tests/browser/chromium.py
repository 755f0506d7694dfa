"""Debian's Chromium as the browser tests launch it, and what a page reports as errors meanwhile."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@dataclass
class Console:
    """Everything the page reported as an error: console.error lines, failed loads, uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} @ {message.location}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")
