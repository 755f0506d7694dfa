"""The local stack of template.yaml (`python -m infra`) for tests over real HTTP.

`stack`: one per session, with the model shortened to MODEL_SECONDS through the environment.
`make_stack`: more stacks when a test needs other settings, e.g. `make_stack(model_seconds="5")`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.testing import LocalStack, free_port

MODEL_SECONDS = "1"


def local_stack(log_dir: Path, model_seconds: str, **kwargs: Any) -> LocalStack:
    """A stack whose API origin is one the template's CORS lists allow (its port is picked here)."""
    port = free_port()
    origins = f"http://127.0.0.1:{port},http://localhost:{port}"
    overrides = {"CorsAllowedOrigins": origins, **kwargs.pop("parameter_overrides", {})}
    env = {"LEYLINE_MODEL_SECONDS": model_seconds, **kwargs.pop("env", {})}
    return LocalStack(api_port=port, env=env, parameter_overrides=overrides, log_dir=log_dir, **kwargs)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), MODEL_SECONDS) as running:
        yield running


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalStack]]:
    """Starts extra stacks (keyword arguments as LocalStack's); each is stopped after the test."""
    started: list[LocalStack] = []

    def make(model_seconds: str = MODEL_SECONDS, **kwargs: Any) -> LocalStack:
        extra = local_stack(tmp_path_factory.mktemp("extra-stack"), model_seconds, **kwargs)
        extra.start()
        started.append(extra)
        return extra

    yield make
    for extra in started:
        extra.stop()
