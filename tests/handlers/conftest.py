"""Handler tests: the real handlers, invoked with real event JSON from events/, against moto resources
built from template.yaml and the environment template.yaml gives each function."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from infra.template import Stack, load_stack
from tests.handlers.support import Handler, cold_start
from tests.lambda_context import FakeLambdaContext
from tests.mocked_aws import empty, provisioned
from tests.sample_events import ROOT


@pytest.fixture(scope="package")
def template() -> Stack:
    return load_stack(ROOT / "template.yaml", parameter_overrides={"ModelSeconds": "1"})


@pytest.fixture(scope="package")
def resources(template: Stack) -> Iterator[boto3.Session]:
    """The template's resources in moto's in-process mock, provisioned once for tests/handlers."""
    with provisioned(template) as session:
        yield session


@pytest.fixture
def aws(resources: boto3.Session) -> boto3.Session:
    """The template's resources as provisioning leaves them: no items, messages or objects."""
    empty(resources)
    return resources


@pytest.fixture
def invoke(
    template: Stack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, dict[str, Any]], Any]:
    """Invokes a function by its logical id, cold-starting its module with the template's environment."""
    loaded: dict[str, Handler] = {}

    def call(logical_id: str, event: dict[str, Any]) -> Any:
        if logical_id not in loaded:
            loaded[logical_id] = cold_start(template.functions[logical_id], monkeypatch)
        context = FakeLambdaContext(
            function_name=logical_id, timeout_seconds=template.functions[logical_id].timeout_seconds
        )
        return loaded[logical_id](event, context)

    return call
