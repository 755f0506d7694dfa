"""The reliability suite's stack with the fault proxy in front of the functions' AWS endpoint.

One such stack serves every test that injects faults (starting one takes a few seconds); tests that
need other settings start their own with `make_stack` (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.testing import RunningStack
from tests.stack import local_stack


@pytest.fixture(scope="package")
def fault_stack_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with local_stack(tmp_path_factory.mktemp("fault-stack"), faults=True) as running:
        yield running


@pytest.fixture
def fault_stack(fault_stack_running: RunningStack) -> Iterator[RunningStack]:
    """The fault stack with no fault armed and its request counts at zero, before and after the test."""
    fault_stack_running.clear_faults()
    yield fault_stack_running
    fault_stack_running.clear_faults()
