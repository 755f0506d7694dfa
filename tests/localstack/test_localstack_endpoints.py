"""Which endpoint serves what on the LocalStack backend: per-service endpoints, a LocalStack the user already
runs (AWS_ENDPOINT_URL), and `python -m infra sam-env` for `sam local invoke`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from infra.backends import MOTO_ONLY_SERVICES, LocalStackRuntime, endpoint_variable, free_port
from infra.settings import REPO_ROOT
from tests.integration.polling import poll_until_final
from tests.localstack.support import LOCALSTACK_TIER
from tests.reliability.support import eventually
from tests.stack import local_stack

pytestmark = LOCALSTACK_TIER


def test_each_function_is_pointed_at_its_services_endpoint(localstack_stack):
    # Given the product on LocalStack
    endpoints = localstack_stack.endpoints
    # Then LocalStack serves every service but DynamoDB and Cognito, which the embedded moto server serves
    moto = f"http://127.0.0.1:{localstack_stack.aws_port}"
    assert {service: endpoints.for_service(service) for service in MOTO_ONLY_SERVICES} == dict.fromkeys(
        MOTO_ONLY_SERVICES, moto
    )
    assert {endpoints.for_service(s) for s in ("s3", "sqs", "events", "cloudwatch")} == {endpoints.default}
    assert endpoints.default != moto
    assert requests.get(f"{endpoints.default}/_localstack/health", timeout=10).json()["services"]["s3"]
    # And botocore's per-service variables say so to every function, as `sam-env` prints them
    printed = _sam_env(localstack_stack.env)
    for logical_id in localstack_stack.stack.functions:
        variables = printed[logical_id]
        assert variables["AWS_ENDPOINT_URL"] == endpoints.default
        assert variables[endpoint_variable("dynamodb")] == moto
        assert variables["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] == moto


def test_sam_env_prints_every_functions_template_variables_bound_to_the_running_stack(localstack_stack):
    # When `python -m infra sam-env` runs beside the running stack
    printed = _sam_env(localstack_stack.env)

    # Then it has an entry per function of the template, in SAM's --env-vars format, with each variable the template
    # declares for it, bound to the running stack's resources (the table, queues and bucket it serves)
    functions = localstack_stack.stack.functions
    assert set(printed) == set(functions)
    for logical_id, spec in functions.items():
        assert {name: printed[logical_id][name] for name in spec.environment} == spec.environment
    processor = printed["ProcessorFunction"]
    tasks_table = localstack_stack.physical_name("TasksTable")
    assert tasks_table in processor.values()
    assert localstack_stack.client("dynamodb").describe_table(TableName=tasks_table)["Table"]["TableStatus"] == "ACTIVE"

    # And with --host the endpoints name the host a container reaches this machine by
    container = _sam_env(localstack_stack.env, "--host", "host.docker.internal")
    assert container["ApiFunction"]["AWS_ENDPOINT_URL"].startswith("http://host.docker.internal:")


def _sam_env(env: dict[str, str], *arguments: str) -> dict[str, dict[str, str]]:
    done = subprocess.run(
        [sys.executable, "-m", "infra", "sam-env", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    printed: dict[str, dict[str, str]] = json.loads(done.stdout)
    return printed


def test_a_localstack_the_user_runs_is_used_instead_of_starting_one(tmp_path: Path):
    # Given a LocalStack the user already runs (here in host mode; in Docker it is the same endpoint)
    users = LocalStackRuntime(free_port(), tmp_path / "users-localstack", tmp_path / "users-localstack.log")
    users.start()
    try:
        # When the product starts on the LocalStack backend with AWS_ENDPOINT_URL pointing at it
        with local_stack(tmp_path / "stack", backend="localstack", env={"AWS_ENDPOINT_URL": users.url}) as stack:
            # Then it uses that LocalStack (through localstack-client) and starts none of its own
            assert stack.endpoints.default == users.url
            assert "external LocalStack" in stack.log_text()
            assert not (Path(stack.env["LEYLINE_STATE_DIR"]) / "localstack").exists()
            # And the product works on it: the bucket is the user's LocalStack's, the original flow succeeds
            bucket = stack.physical_name("MediaBucket")
            assert stack.client("s3").head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
            accepted = requests.post(f"{stack.api_url}/upload", files={"image": ("a.png", _example())}, timeout=10)
            assert poll_until_final(stack.api_url, accepted.json()["task_id"], timeout=90)[-1]["state"] == "SUCCESS"
    finally:
        users.stop()
    # And stopping the user's LocalStack removes its files
    assert not (tmp_path / "users-localstack").exists()


def _example() -> bytes:
    return (REPO_ROOT / "examples" / "image.png").read_bytes()


def test_the_localstack_the_stack_started_is_stopped_by_pid_and_leaves_no_file(tmp_path: Path):
    # Given the product on a LocalStack it started itself, holding an object in S3
    with local_stack(tmp_path, backend="localstack") as stack:
        pid = int(stack.log_text().split("(LocalStack, pid ")[1].split(")")[0])
        own = Path(stack.env["LEYLINE_STATE_DIR"]) / "localstack"
        stack.client("s3").put_object(Bucket=stack.physical_name("MediaBucket"), Key="uploads/x", Body=b"x")
        # (its S3 objects are under the stack's state directory, not in a shared temp folder)
        assert any((own / "s3-storage").rglob("*"))
    # When the stack stops, Then that LocalStack process is gone and so are its files (the log is kept)
    assert not Path(f"/proc/{pid}").exists()
    assert not own.exists()
    assert (own.parent / "localstack.log").exists()


def test_a_killed_stack_leaves_no_localstack_behind(tmp_path: Path):
    # Given the product on a LocalStack it started itself
    stack = local_stack(tmp_path, backend="localstack")
    stack.start()
    pid = int(stack.log_text().split("(LocalStack, pid ")[1].split(")")[0])
    try:
        # When the stack is killed, with no chance to stop anything
        os.kill(stack.pid, signal.SIGKILL)
        # Then its LocalStack dies with it (bounded wait)
        eventually(lambda: not Path(f"/proc/{pid}").exists(), timeout=15, what="LocalStack gone")
    finally:
        stack.stop(check=False)
