"""`python -m infra sam-env`: the `--env-vars` JSON for `sam local invoke` against the running local stack.

The running stack writes what its functions see (infra/__main__.py, STACK_FILE in its state directory); this
prints it in SAM's per-function format, so that `sam local invoke ProcessorFunction -e ... --env-vars env.json`
runs a function (in Docker) on the same queues, tables and bucket. `--host NAME` replaces 127.0.0.1 in the
endpoints (e.g. host.docker.internal, where the container cannot use the host's network).

What SAM does with it (aws-sam-cli's samcli/local/lambdafn/env_vars.py): `--env-vars` sets only the variables
the template declares for the function. So template.yaml's Globals declare every AWS_ENDPOINT_URL* variable this
prints (absent on AWS: `LocalEndpointUrl` is empty there); tests/infra/test_sam_env.py runs SAM's own code on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.settings import Settings

STACK_FILE = "stack.json"
_LOOPBACK = "127.0.0.1"


def stack_file(settings: Settings) -> Path:
    return settings.state_directory / STACK_FILE


def write_stack_file(path: Path, description: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(description, indent=2))
    temporary.replace(path)  # readers never see half a file


def sam_env_vars(description: Mapping[str, Any], host: str | None = None) -> dict[str, dict[str, str]]:
    """{FunctionLogicalId: {VARIABLE: value}}: each function's template variables and AWS endpoints."""
    env_vars: dict[str, dict[str, str]] = {}
    for logical_id, function in description["functions"].items():
        endpoints = dict(description["endpoints"])
        if host:  # only the endpoints: other values (a browser origin, say) keep what the user's browser uses
            endpoints = {name: url.replace(f"//{_LOOPBACK}:", f"//{host}:") for name, url in endpoints.items()}
        env_vars[logical_id] = {**function["environment"], **endpoints}
    return env_vars


def main(arguments: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra sam-env", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="replaces 127.0.0.1 in the endpoints, e.g. host.docker.internal")
    options = parser.parse_args(arguments)
    path = stack_file(settings)
    if not path.exists():
        print(
            f"no running local stack {settings.stack_name!r} ({path} is missing): start it with `make up`",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(sam_env_vars(json.loads(path.read_text()), options.host), indent=2))
    return 0
