"""`python -m infra sam-env` on the default (moto) backend, its --host rewrite, and what aws-sam-cli's own code
hands each function from the JSON it prints (`sam local invoke --env-vars`), without Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.backends import MOTO_ONLY_SERVICES, Endpoints
from infra.sam_env import sam_env_vars
from infra.settings import REPO_ROOT
from infra.template import load_stack

TEMPLATE = REPO_ROOT / "template.yaml"
SAM_PYTHON = REPO_ROOT / ".venv-sam" / "bin" / "python"  # the Makefile's SAM_VENV: aws-sam-cli pins its own boto3
SAM_CLI_ENVIRONMENT = Path(__file__).with_name("sam_cli_environment.py")
REGION = "eu-west-1"


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


# ---- what `sam local invoke` does with it: aws-sam-cli's own code, in its own venv -----------------------------
def _localstack_shaped_sam_env() -> dict[str, dict[str, str]]:
    """What sam-env prints for a stack on the LocalStack backend (infra/__main__.py's stack.json, then
    sam_env_vars): each function's template variables and one endpoint per service served apart from the rest.
    In accounts mode, which has every function of the template (EmailFunction only exists in it)."""
    stack = load_stack(TEMPLATE, region=REGION, parameter_overrides={"AccessMode": "accounts"})
    endpoints = Endpoints("http://127.0.0.1:4566", dict.fromkeys(MOTO_ONLY_SERVICES, "http://127.0.0.1:5000"))
    described = {
        "endpoints": endpoints.environment(),
        "functions": {logical_id: {"environment": spec.environment} for logical_id, spec in stack.functions.items()},
    }
    return sam_env_vars(described, host="host.docker.internal")


def _sam_local_environments(
    tmp_path: Path, env_vars: dict[str, Any] | None, *, language_extensions: bool, **overrides: str
) -> dict[str, dict[str, str]]:
    if not SAM_PYTHON.exists():
        pytest.skip(f"aws-sam-cli is not installed at {SAM_PYTHON.parent.parent} (make .venv-sam/.installed)")
    env_file = ""
    if env_vars is not None:
        env_file = str(tmp_path / "env.json")
        Path(env_file).write_text(json.dumps(env_vars))
    # A shell without AWS_ENDPOINT_URL*: SAM also copies the shell's value of a declared variable.
    shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(
        [str(SAM_PYTHON), str(SAM_CLI_ENVIRONMENT), str(TEMPLATE), env_file, REGION, str(int(language_extensions))]
        + [f"{name}={value}" for name, value in overrides.items()],
        env=shell,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    environments: dict[str, dict[str, str]] = json.loads(done.stdout)
    return environments


@pytest.mark.integration  # aws-sam-cli in a subprocess
@pytest.mark.parametrize("language_extensions", [False, True], ids=["plain", "language-extensions"])
def test_sam_local_invoke_hands_every_function_every_variable_sam_env_prints(tmp_path, language_extensions):
    # Given the env.json sam-env prints for a stack on the LocalStack backend, per-service endpoints included
    env_json = _localstack_shaped_sam_env()
    assert {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"} <= set(env_json["ProcessorFunction"])

    # When aws-sam-cli resolves each function's environment from template.yaml and that file, as `sam local
    # invoke FUNCTION --env-vars env.json` does before it starts the container (with or without its
    # --language-extensions expansion)
    resolved = _sam_local_environments(
        tmp_path, env_json, language_extensions=language_extensions, AccessMode="accounts"
    )

    # Then every function gets every variable sam-env printed for it, endpoints and resources alike
    assert set(resolved) == set(env_json)
    for logical_id, printed in env_json.items():
        assert {name: resolved[logical_id].get(name) for name in printed} == printed, logical_id


@pytest.mark.integration  # aws-sam-cli in a subprocess
def test_sam_local_invoke_without_env_vars_gives_the_endpoint_variables_empty_values(tmp_path):
    # When aws-sam-cli resolves the functions' environments without --env-vars, even with LocalEndpointUrl given
    # (its intrinsic resolver cannot resolve AWS::NoValue, so it leaves the Fn::If as it is, and passes "")
    resolved = _sam_local_environments(
        tmp_path, None, language_extensions=False, LocalEndpointUrl="http://host.docker.internal:5000"
    )

    # Then each endpoint variable is there and empty: botocore then calls AWS (next test), as before this change
    for logical_id, environment in resolved.items():
        endpoints = {name: value for name, value in environment.items() if name.startswith("AWS_ENDPOINT_URL")}
        assert len(endpoints) == 1 + len(MOTO_ONLY_SERVICES), logical_id
        assert set(endpoints.values()) == {""}, logical_id


def test_botocore_takes_an_empty_endpoint_variable_for_an_absent_one(monkeypatch, tmp_path):
    # Given the endpoint variables a function run by `sam local invoke` without --env-vars gets: empty (and no
    # other endpoint configured, as in a Lambda container)
    for variable in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for variable in Endpoints("", dict.fromkeys(MOTO_ONLY_SERVICES, "")).environment():
        monkeypatch.setenv(variable, "")

    # When the function's clients are made, Then they call AWS's own endpoints (botocore's configured-endpoint
    # lookup skips a falsy value and goes on to the next source)
    for service in ("dynamodb", "s3", "sqs", "cognito-idp"):
        endpoint_url = boto3.client(service, region_name=REGION).meta.endpoint_url
        assert endpoint_url == f"https://{service}.{REGION}.amazonaws.com", service
