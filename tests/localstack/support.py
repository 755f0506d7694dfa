"""What the LocalStack tier's modules share: the Python 3.13 condition, and the pending-upload checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Where the Makefile looks for it too (LOCALSTACK_PYTHON): on PATH, or pyenv's.
PYTHON313 = shutil.which("python3.13") or next(
    (str(path) for path in sorted(Path.home().glob(".pyenv/versions/3.13.*/bin/python3.13"))), None
)

# Every module of the tier: it starts a stack, and it needs a python3.13 for LocalStack.
LOCALSTACK_TIER = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PYTHON313 is None,
        reason="no python3.13 here: LocalStack 2026.3.0 runs on Python 3.13 only (3.12 lacks warnings.deprecated)",
    ),
]
