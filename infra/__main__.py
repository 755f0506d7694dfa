"""`python -m infra`: the whole stack of template.yaml on this machine, without Docker.

Environment:
  LEYLINE_API_PORT              HTTP API port on 127.0.0.1 (8080); unless CorsAllowedOrigins is overridden,
                                the page's origins on this port (localhost and 127.0.0.1) are the allowed ones
  LEYLINE_AWS_PORT              embedded moto server port on 127.0.0.1 (4566)
  AWS_ENDPOINT_URL              use this AWS endpoint (e.g. a LocalStack) instead of starting moto
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

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

import boto3
from moto.server import ThreadedMotoServer

from infra.functions import Console
from infra.moto_cognito import verify_on_confirmation
from infra.moto_dynamodb import partitioned_index_queries, serialise_writes
from infra.provision import provision
from infra.runtime import LocalRuntime
from infra.settings import FAKE_CREDENTIALS, READY_MARKER, Settings
from infra.template import SERVICE_ASSIGNED_IDS, Stack, TemplateError

_MOTO_START_SECONDS = 10.0
_SOURCE = "infra"


def main() -> int:
    settings = Settings.from_env()
    console = Console()
    try:
        stack = settings.load_stack()
    except TemplateError as error:
        console.line(_SOURCE, f"template error: {error}")
        return 1
    # Fake credentials and the local endpoint for everything, so nothing can reach real AWS.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(FAKE_CREDENTIALS)
    stop = _stop_event(exit_with_parent=settings.exit_with_parent)
    moto = None if settings.aws_endpoint else _start_moto(settings.aws_port)
    endpoint = settings.aws_endpoint or f"http://127.0.0.1:{settings.aws_port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    runtime: LocalRuntime | None = None
    try:
        provision(stack, boto3.Session(), endpoint, secret_strings=settings.secret_strings)
        runtime = LocalRuntime(
            stack,
            endpoint_url=endpoint,
            api_port=settings.api_port,
            console=console,
            function_endpoint_url=settings.functions_aws_endpoint,
        )
        runtime.start()
        _announce(
            console,
            stack,
            runtime,
            endpoint,
            embedded=moto is not None,
            functions_endpoint=settings.functions_aws_endpoint,
        )
        while not stop.wait(0.5):
            pass
        console.line(_SOURCE, "stopping")
    finally:
        if runtime is not None:
            runtime.stop()
        if moto is not None:
            moto.stop()
    console.line(_SOURCE, "stopped")
    return 0


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


def _start_moto(port: int) -> ThreadedMotoServer:
    # ThreadedMotoServer.start() waits forever if its port is taken: check first, and bound it.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
    serialise_writes()  # moto's TransactWriteItems races other writes on the server's threads otherwise
    partitioned_index_queries()  # an index Query reads its partition, not the whole table (GET /tasks, the cap)
    verify_on_confirmation()  # a confirmed sign-up proves the address, as Cognito marks it (task emails)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(_MOTO_START_SECONDS)
    if starter.is_alive():
        raise RuntimeError(f"moto server did not start on 127.0.0.1:{port}")
    return server


def _announce(
    console: Console,
    stack: Stack,
    runtime: LocalRuntime,
    endpoint: str,
    *,
    embedded: bool,
    functions_endpoint: str | None,
) -> None:
    kind = "embedded moto server" if embedded else "external endpoint"
    console.line(_SOURCE, f"AWS endpoint   {endpoint} ({kind})")
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
