"""What the LocalStack tier's modules share: its marks (integration, and the Python 3.13 it needs)."""

from __future__ import annotations

import pytest

from infra.backends import PYTHON313

# Every module of the tier: it starts a stack, and it needs a python3.13 for LocalStack.
LOCALSTACK_TIER = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PYTHON313 is None,
        reason="no python3.13 here: LocalStack 2026.3.0 runs on Python 3.13 only (3.12 lacks warnings.deprecated)",
    ),
]
