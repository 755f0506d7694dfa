"""Fixtures shared by every test directory that talks to a running local stack.

`stack`: one per session, with the model shortened to MODEL_SECONDS through the environment.
`make_stack`: more stacks when a test needs other settings, e.g. `make_stack(model_seconds="5")`.
`accounts`: a stack in accounts mode (AccessMode=accounts), one per test module; a module that needs other
settings defines its own `accounts`. `users`: signs users up on the module's `accounts` (tests/accounts.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.testing import RunningStack
from tests.accounts import Users, accounts_stack
from tests.stack import MODEL_SECONDS, local_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningStack]]:
    """Starts extra stacks (keyword arguments as LocalStack's); each is stopped after the test."""
    started: list[RunningStack] = []

    def make(model_seconds: str = MODEL_SECONDS, **kwargs: Any) -> RunningStack:
        extra = local_stack(tmp_path_factory.mktemp("extra-stack"), model_seconds, **kwargs)
        extra.start()
        started.append(extra)
        return extra

    yield make
    for extra in started:
        extra.stop()


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with accounts_stack(tmp_path_factory.mktemp("accounts-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def users(accounts: RunningStack) -> Users:
    return Users(accounts.api_url)
