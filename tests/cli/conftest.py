"""A local stack for the CLI tests, with the model shortened to 2 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.testing import LocalStack
from tests.integration.conftest import local_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("cli-stack"), model_seconds="2") as running:
        yield running
