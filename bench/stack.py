"""The local stack (`python -m infra`) as the benchmarks start it."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from infra.settings import Settings
from infra.testing import RunningStack

# Benchmarks queue more tasks from one address than a user may: lift that cap where the template has it.
_LIFTED_LIMITS = {"MaxWaitingTasksPerClient": "10000"}


def template_model_seconds() -> float:
    """The model time template.yaml deploys with (its ModelSeconds default)."""
    return float(str(Settings().load_stack().parameters["ModelSeconds"]))


@contextmanager
def bench_stack(
    model_seconds: float,
    name: str,
    env: Mapping[str, str] | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
) -> Iterator[RunningStack]:
    """A running stack whose model takes `model_seconds` (and `parameter_overrides`, e.g. AccessMode), stopped on
    the way out. Its log (and anything else the benchmark keeps in `stack.log_path.parent`) is deleted after a
    clean run and kept after a failure."""
    declared = Settings().load_stack().parameters
    overrides = {key: value for key, value in _LIFTED_LIMITS.items() if key in declared}
    overrides.update(parameter_overrides or {})
    workdir = Path(tempfile.mkdtemp(prefix=f"leyline-bench-{name}-"))
    stack = RunningStack(
        env={"LEYLINE_MODEL_SECONDS": f"{model_seconds:g}", **(env or {})},
        parameter_overrides=overrides,
        log_dir=workdir,
    )
    try:
        with stack:
            yield stack
    except BaseException:
        print(f"bench: {name}: the stack's log is kept in {stack.log_path}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
