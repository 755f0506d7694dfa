"""What a page reports as errors while a test drives it."""

from __future__ import annotations

from dataclasses import dataclass, field

from playwright.sync_api import ConsoleMessage


@dataclass
class Console:
    """Everything the page reported as an error: console.error lines, failed loads, uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} @ {message.location}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")
