"""The page's own copy of the product's vocabulary (final states, accepted images) agrees with the code's.

The page is plain HTML with no build step, so it cannot import leyline.states or leyline.media.formats: it
carries their values in a JSON data block, which these fast tests read out of the HTML and compare.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from leyline.media.formats import ACCEPTED_NAMES, ALLOWED_UPLOAD_TYPES, FORMATS, SNIFF_BYTES, sniff
from leyline.states import FINAL_STATES
from tests.imagefactory import encode, pattern

PAGE = Path(__file__).parents[2] / "functions" / "leyline" / "web" / "index.html"


class _PageParts(HTMLParser):
    """The vocabulary block's text, the file input's accept list and the drop zone's hint."""

    def __init__(self) -> None:
        super().__init__()
        self.vocabulary = ""
        self.accept = ""
        self.hint = ""
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("id") == "vocabulary":
            self._inside = "vocabulary"
        elif tag == "input" and attributes.get("id") == "file-input":
            self.accept = attributes.get("accept") or ""
        elif tag == "span" and attributes.get("class") == "hint":
            self._inside = "hint"

    def handle_endtag(self, tag: str) -> None:
        self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside is not None:
            setattr(self, self._inside, getattr(self, self._inside) + data)


@pytest.fixture(scope="module")
def page() -> _PageParts:
    parts = _PageParts()
    parts.feed(PAGE.read_text(encoding="utf-8"))
    return parts


@pytest.fixture(scope="module")
def vocabulary(page: _PageParts) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(page.vocabulary)
    return parsed


def _page_sniff(vocabulary: dict[str, Any], data: bytes) -> str | None:
    """What the page's sniffType answers for a file starting with `data`: it reads the bytes its signatures
    reach, and takes the first format whose every [offset, hex] signature part matches."""
    head = data[: _page_sniff_bytes(vocabulary)]
    for image_format in vocabulary["formats"]:
        parts = [(at, bytes.fromhex(magic)) for at, magic in image_format["signature"]]
        if all(head[at : at + len(magic)] == magic for at, magic in parts):
            return str(image_format["mime_type"])
    return None


def _page_sniff_bytes(vocabulary: dict[str, Any]) -> int:
    return max(at + len(magic) // 2 for fmt in vocabulary["formats"] for at, magic in fmt["signature"])


def test_the_page_knows_exactly_the_final_states(vocabulary: dict[str, Any]) -> None:
    # Given the page's vocabulary, Then its final states are states.py's (a CANCELLED task stops its poll too)
    assert set(vocabulary["final_states"]) == {str(state) for state in FINAL_STATES}


def test_the_page_accepts_exactly_the_formats_the_api_accepts(page: _PageParts, vocabulary: dict[str, Any]) -> None:
    # Given the page, Then its formats, its file picker and the words it shows are formats.py's
    assert [image_format["mime_type"] for image_format in vocabulary["formats"]] == list(ALLOWED_UPLOAD_TYPES)
    assert page.accept.split(",") == list(ALLOWED_UPLOAD_TYPES)
    assert vocabulary["accepted_names"] == ACCEPTED_NAMES
    assert page.hint.strip() == ACCEPTED_NAMES
    # And it reads as many leading bytes as the server's sniffing needs
    assert _page_sniff_bytes(vocabulary) == SNIFF_BYTES


_SAMPLES = {
    **{f"a real {fmt.display_name}": encode(pattern(64, 64), fmt.name.upper()) for fmt in FORMATS},
    "text": b"Hello, this is not an image.\n",
    "empty": b"",
    "a RIFF WAVE sound": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "a cut PNG signature": b"\x89PNG\r\n",
    "two JPEG marker bytes": b"\xff\xd8",
}


@pytest.mark.parametrize("data", _SAMPLES.values(), ids=_SAMPLES.keys())
def test_the_page_judges_a_file_by_its_bytes_as_the_server_does(vocabulary: dict[str, Any], data: bytes) -> None:
    # Given a file's first bytes, When the page's signatures and formats.sniff judge them, Then they agree
    found = sniff(data)
    assert _page_sniff(vocabulary, data) == (found.mime_type if found else None)
