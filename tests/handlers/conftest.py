"""Handler tests: the real handlers, invoked with real event JSON from events/, against moto resources
built from template.yaml and the environment template.yaml gives each function."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.provision import provision
from infra.template import Stack, load_stack
from tests.lambda_context import FakeLambdaContext
from tests.sample_events import ROOT

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture
def template() -> Stack:
    return load_stack(ROOT / "template.yaml", parameter_overrides={"ModelSeconds": "1"})


@pytest.fixture
def aws(template: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": template.region,
        "AWS_REGION": template.region,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=template.region)
        provision(template, session, None)
        yield session


@pytest.fixture
def invoke(
    template: Stack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, dict[str, Any]], Any]:
    """Invokes a function by its logical id, cold-starting its module with the template's environment."""
    loaded: dict[str, Handler] = {}

    def call(logical_id: str, event: dict[str, Any]) -> Any:
        if logical_id not in loaded:
            spec = template.functions[logical_id]
            for name, value in spec.environment.items():
                monkeypatch.setenv(name, value)
            module_name, attribute = spec.handler.rsplit(".", 1)
            # A cold start: the handler modules (and the shared routes) read settings at import.
            for name in [name for name in sys.modules if name.startswith("leyline.handlers")]:
                del sys.modules[name]
            loaded[logical_id] = getattr(importlib.import_module(module_name), attribute)
        context = FakeLambdaContext(
            function_name=logical_id, timeout_seconds=template.functions[logical_id].timeout_seconds
        )
        return loaded[logical_id](event, context)

    return call
