"""The LocalStack tier: the product on LEYLINE_BACKEND=localstack (LocalStack's runtime in host mode, no Docker,
from `make localstack-venv`; DynamoDB and Cognito on the embedded moto server), over real HTTP.

Skipped only when no python3.13 exists (LocalStack 2026.3.0 needs it); with one, a missing .venv-localstack
is a failure that says to run `make localstack-venv` (make test installs it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.testing import RunningStack
from tests.stack import local_stack


@pytest.fixture(scope="session")
def localstack_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The product on the LocalStack backend, its model shortened to 1 s through the environment."""
    with local_stack(tmp_path_factory.mktemp("localstack-backend"), backend="localstack") as running:
        yield running
