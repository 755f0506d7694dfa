"""`python -m infra sam-env` on the default (moto) backend, and its --host rewrite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.sam_env import sam_env_vars
from infra.settings import REPO_ROOT


@pytest.mark.integration
def test_sam_env_prints_each_functions_variables_bound_to_the_running_moto_stack(stack):
    # Given the running stack on the embedded moto server, When `python -m infra sam-env` runs beside it
    done = subprocess.run(
        [sys.executable, "-m", "infra", "sam-env"],
        cwd=REPO_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed = json.loads(done.stdout)

    # Then every function has its template variables, bound to this stack, and the stack's endpoint
    assert set(printed) == set(stack.stack.functions)
    for logical_id, spec in stack.stack.functions.items():
        assert {name: printed[logical_id][name] for name in spec.environment} == spec.environment
        assert printed[logical_id]["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    table = stack.physical_name("TasksTable")
    assert (
        stack.client("dynamodb").describe_table(TableName=table)["Table"]["TableName"]
        in printed["ApiFunction"].values()
    )


@pytest.mark.integration
def test_sam_env_without_a_running_stack_says_so(tmp_path):
    # Given no running stack in the state directory, When sam-env runs, Then it fails and says how to start one
    env = {"PATH": "/usr/bin:/bin", "LEYLINE_STATE_DIR": str(tmp_path), "PYTHONPATH": "functions:."}
    done = subprocess.run(
        [sys.executable, "-m", "infra", "sam-env"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "make up" in done.stderr


def test_host_replaces_the_loopback_address_of_every_endpoint():
    # Given a running stack's description
    described = {
        "endpoints": {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:5000",
        },
        "functions": {"ApiFunction": {"environment": {"TASKS_TABLE": "t", "SITE": "http://127.0.0.1:8080"}}},
    }
    # When it is printed for a container reaching this machine as host.docker.internal
    printed = sam_env_vars(described, host="host.docker.internal")
    # Then the endpoints name that host; the function's own variables stay as the template binds them
    assert printed == {
        "ApiFunction": {
            "TASKS_TABLE": "t",
            "SITE": "http://127.0.0.1:8080",
            "AWS_ENDPOINT_URL": "http://host.docker.internal:4566",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://host.docker.internal:5000",
        }
    }
