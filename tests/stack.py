"""Starting the local stack of template.yaml (`python -m infra`) for tests over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.testing import RunningStack, free_port

# The model is shortened through the environment, as users can; never by patching the pipeline.
MODEL_SECONDS = "1"
# And its clips through the template's VideoSeconds: a 1 s clip encodes in a third of a 3 s one's CPU time, which
# on this 2-core machine every task of the suite waits for (tests/unit/test_video.py covers the 3 s default).
VIDEO_SECONDS = "1"


def local_stack(log_dir: Path, model_seconds: str = MODEL_SECONDS, **kwargs: Any) -> RunningStack:
    """A stack whose API origin is one the template's CORS lists allow (its port is picked here)."""
    port = free_port()
    origins = f"http://127.0.0.1:{port},http://localhost:{port}"
    overrides = {"CorsAllowedOrigins": origins, "VideoSeconds": VIDEO_SECONDS, **kwargs.pop("parameter_overrides", {})}
    env = {"LEYLINE_MODEL_SECONDS": model_seconds, **kwargs.pop("env", {})}
    return RunningStack(api_port=port, env=env, parameter_overrides=overrides, log_dir=log_dir, **kwargs)
