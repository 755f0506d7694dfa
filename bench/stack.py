"""The local stack (`python -m infra`) as the benchmarks start it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from infra.settings import Settings
from infra.testing import LocalStack

# Benchmarks queue more tasks from one address than a user may: lift that cap where the template has it.
_LIFTED_LIMITS = {"MaxWaitingTasksPerClient": "10000"}


def template_model_seconds() -> float:
    """The model time template.yaml deploys with (its ModelSeconds default)."""
    return float(str(Settings().load_stack().parameters["ModelSeconds"]))


def bench_stack(model_seconds: float, name: str) -> LocalStack:
    """A stack whose model takes `model_seconds`; its log goes to a temporary directory named after `name`."""
    declared = Settings().load_stack().parameters
    overrides = {key: value for key, value in _LIFTED_LIMITS.items() if key in declared}
    log_dir = Path(tempfile.mkdtemp(prefix=f"leyline-bench-{name}-"))
    return LocalStack(
        env={"LEYLINE_MODEL_SECONDS": f"{model_seconds:g}"}, parameter_overrides=overrides, log_dir=log_dir
    )
