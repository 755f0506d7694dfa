"""`python -m infra`: the whole stack of template.yaml on this machine, without Docker.

Environment:
  LEYLINE_API_PORT              HTTP API port on 127.0.0.1 (8080); unless CorsAllowedOrigins is overridden,
                                the page's origins on this port (localhost and 127.0.0.1) are the allowed ones
  LEYLINE_BACKEND               moto (default): every service on an embedded moto server; localstack: LocalStack's
                                runtime (host mode, no Docker; `make localstack-venv`) for what it serves, the
                                embedded moto server for DynamoDB and Cognito (infra/backends.py)
  LEYLINE_AWS_PORT              embedded moto server port on 127.0.0.1 (4566)
  AWS_ENDPOINT_URL              moto backend: use this AWS endpoint for everything instead of starting moto;
                                localstack backend: use this running LocalStack instead of starting one
  LEYLINE_STATE_DIR             where the running stack describes itself (stack.json, read by sam-env) and a
                                started LocalStack keeps its files (removed at stop): .leyline/<stack name>

`python -m infra sam-env [--host NAME]` prints the --env-vars JSON of `sam local invoke` for the running stack.
  LEYLINE_PARAMETER_OVERRIDES   template parameters, sam's syntax: "Key=Value Key2=Value2"
  LEYLINE_MODEL_SECONDS         shorthand for ModelSeconds=<value>
  LEYLINE_TEMPLATE              template path (template.yaml of the repository)
  LEYLINE_STACK_NAME            stack name, the prefix of physical names (leyline-local)
  LEYLINE_EXIT_WITH_PARENT      "1": stop when the parent process dies (set by infra.testing)
  LEYLINE_WEBHOOK_SECRET        the webhooks' Standard Webhooks signing secret (whsec_...; default: generated once)
  LEYLINE_FUNCTIONS_AWS_ENDPOINT
                                the AWS endpoint the functions' own calls use (their AWS_ENDPOINT_URL; default:
                                the stack's), e.g. a proxy in front of it; provisioning and the SQS pollers,
                                being Lambda's and not the functions', always use the stack's endpoint
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import boto3

from infra import sam_env
from infra.backends import BackendConfig, BackendError, Endpoints, RunningBackend, running_backend
from infra.functions import Console
from infra.provision import provision
from infra.runtime import LocalRuntime
from infra.settings import FAKE_CREDENTIALS, READY_MARKER, Settings
from infra.template import SERVICE_ASSIGNED_IDS, Stack, TemplateError

_SOURCE = "infra"


def main() -> int:
    settings = Settings.from_env()
    if sys.argv[1:2] == ["sam-env"]:
        return sam_env.main(sys.argv[2:], settings)
    console = Console()
    try:
        stack = settings.load_stack()
    except TemplateError as error:
        console.line(_SOURCE, f"template error: {error}")
        return 1
    # Fake credentials and the local endpoints for everything, so nothing can reach real AWS.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(FAKE_CREDENTIALS)
    stop = _stop_event(exit_with_parent=settings.exit_with_parent)
    config = BackendConfig(settings.backend, settings.aws_port, settings.aws_endpoint, settings.state_directory)
    try:
        with running_backend(config) as backend:
            return _serve(settings, stack, backend, console, stop)
    except BackendError as error:
        console.line(_SOURCE, f"backend error: {error}")
        return 1
    finally:
        console.line(_SOURCE, "stopped")


def _serve(settings: Settings, stack: Stack, backend: RunningBackend, console: Console, stop: threading.Event) -> int:
    endpoints = backend.endpoints
    os.environ.update(endpoints.environment())
    described = sam_env.stack_file(settings)
    runtime: LocalRuntime | None = None
    try:
        provision(
            stack,
            boto3.Session(),
            endpoints,
            drop_tls_only_rule=settings.backend == "moto",
            secret_strings=settings.secret_strings,
        )
        functions_endpoints = Endpoints(settings.functions_aws_endpoint) if settings.functions_aws_endpoint else None
        runtime = LocalRuntime(
            stack,
            endpoints=endpoints,
            api_port=settings.api_port,
            console=console,
            function_endpoints=functions_endpoints,
        )
        runtime.start()
        sam_env.write_stack_file(described, _description(settings, stack, runtime, endpoints))
        _announce(console, stack, runtime, backend, functions_endpoint=settings.functions_aws_endpoint)
        while not stop.wait(0.5):
            pass
        console.line(_SOURCE, "stopping")
    finally:
        described.unlink(missing_ok=True)
        if runtime is not None:
            runtime.stop()
    return 0


def _description(settings: Settings, stack: Stack, runtime: LocalRuntime, endpoints: Endpoints) -> dict[str, Any]:
    """What the running stack is, for tools outside it (sam-env, the test helper): stack.json."""
    return {
        "backend": settings.backend,
        "stack_name": stack.name,
        "api_url": None if runtime.gateway is None else runtime.gateway.url,
        "endpoints": endpoints.environment(),
        "endpoint_urls": {"default": endpoints.default, "per_service": dict(endpoints.per_service)},
        "functions": {logical_id: {"environment": spec.environment} for logical_id, spec in stack.functions.items()},
    }


def _stop_event(*, exit_with_parent: bool) -> threading.Event:
    """Set on SIGINT or SIGTERM, or when the parent process dies if `exit_with_parent`."""
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def watch_parent(parent: int) -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    if exit_with_parent:
        threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    return stop


def _announce(
    console: Console,
    stack: Stack,
    runtime: LocalRuntime,
    backend: RunningBackend,
    *,
    functions_endpoint: str | None,
) -> None:
    for service, served_by in backend.description.items():
        name = "AWS endpoint" if service == "*" else f"  {service}"
        console.line(_SOURCE, f"{name:<14} {served_by}")
    if functions_endpoint:
        console.line(_SOURCE, f"functions' AWS {functions_endpoint} (LEYLINE_FUNCTIONS_AWS_ENDPOINT)")
    if runtime.gateway is not None:
        console.line(_SOURCE, f"API            {runtime.gateway.url}/")
    for logical_id, resource in stack.resources.items():
        if resource.type in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue"):
            console.line(_SOURCE, f"{resource.type:<22} {logical_id}: {stack.physical_name(logical_id)}")
        elif resource.type in SERVICE_ASSIGNED_IDS:  # accounts mode: what GET /config names, for the aws CLI
            console.line(_SOURCE, f"{resource.type:<22} {logical_id}: {stack.ref(logical_id)}")
    for pool in runtime.pools.values():
        sources = ", ".join(
            [s.queue_logical_id for s in pool.spec.sqs_sources]
            + [f"{s.table_logical_id} stream" for s in pool.spec.stream_sources]
        )
        routes = ", ".join(f"{m} {p}" for m, p in pool.spec.http_routes)
        console.line(_SOURCE, f"function {pool.spec.logical_id}: {routes or sources} (pids {pool.worker_pids()})")
    console.line(_SOURCE, READY_MARKER)


if __name__ == "__main__":
    sys.exit(main())
