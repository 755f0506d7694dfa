"""A function whose own setting is missing from its environment does not start: its cold start raises
ConfigError naming the variable (config.Settings reads it; the handler says it needs it)."""

from __future__ import annotations

import gc
import importlib
import sys

import boto3
import pytest

from infra.template import Stack
from leyline.config import ConfigError


@pytest.mark.parametrize(
    ("logical_id", "variable"),
    [("TaskEventsFunction", "TASK_EVENT_BUS"), ("DispatchFunction", "SLOTS_QUEUE_URL")],
)
def test_a_cold_start_without_the_functions_own_setting_raises_config_error(
    template: Stack, resources: boto3.Session, monkeypatch: pytest.MonkeyPatch, logical_id: str, variable: str
):
    # Given the function's environment as the template declares it, but for its own setting
    spec = template.functions[logical_id]
    assert variable in spec.environment
    for name, value in spec.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(variable)

    # When its handler module is imported, as Lambda's init phase does
    for name in [name for name in sys.modules if name.startswith("leyline.handlers")]:
        del sys.modules[name]
    gc.unfreeze()
    module_name = spec.handler.rsplit(".", 1)[0]

    # Then it fails with ConfigError naming the variable
    with pytest.raises(ConfigError, match=variable):
        importlib.import_module(module_name)
