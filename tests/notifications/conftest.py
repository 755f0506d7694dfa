"""Fixtures of the notification tests. `hooks`: a webhook receiver on 127.0.0.1 (receiver.py), one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notifications.receiver import Receiver, receiver


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as running:
        yield running
