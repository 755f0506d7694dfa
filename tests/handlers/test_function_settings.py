"""A function whose own setting is missing from its environment does not start: its cold start raises
ConfigError naming the variable (config.Settings reads it; the handler says it needs it)."""

from __future__ import annotations

from dataclasses import replace

import boto3
import pytest

from infra.template import Stack
from leyline.config import ConfigError
from tests.handlers.support import cold_start


@pytest.mark.parametrize(
    ("logical_id", "variable"),
    [
        ("TaskEventsFunction", "TASK_EVENT_BUS"),
        ("DispatchFunction", "SLOTS_QUEUE_URL"),
        # the dispatcher waits on SlotWakeQueue; the processor and the dead-letter function free slots through it
        ("DispatchFunction", "SLOT_WAKE_QUEUE_URL"),
        ("ProcessorFunction", "SLOT_WAKE_QUEUE_URL"),
        ("DeadLetterFunction", "SLOT_WAKE_QUEUE_URL"),
    ],
)
def test_a_cold_start_without_the_functions_own_setting_raises_config_error(
    template: Stack, resources: boto3.Session, monkeypatch: pytest.MonkeyPatch, logical_id: str, variable: str
):
    # Given the function's environment as the template declares it, but for its own setting
    declared = template.functions[logical_id]
    assert variable in declared.environment
    without = replace(declared, environment={k: v for k, v in declared.environment.items() if k != variable})

    # When its handler is cold-started, Then it fails with ConfigError naming the variable
    with pytest.raises(ConfigError, match=variable):
        cold_start(without, monkeypatch)
