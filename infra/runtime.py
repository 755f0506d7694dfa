"""The local Lambda service: function pools, event source mappings (SQS, DynamoDB streams) and the HTTP gateway."""

from __future__ import annotations

import os
import threading
import time

import boto3
from botocore.config import Config

from infra.backends import Endpoints
from infra.event_source_kinds import CLIENT_SERVICES, pollers
from infra.functions import Console, FunctionPool
from infra.gateway import Gateway
from infra.settings import FAKE_CREDENTIALS
from infra.template import FunctionSpec, Stack

# Concurrency of a function without ReservedConcurrentExecutions: a small pool, not Lambda's 1000.
DEFAULT_CONCURRENCY = 4
_JOIN_SECONDS = 5.0


def worker_environment(stack: Stack, spec: FunctionSpec, endpoints: Endpoints | str) -> dict[str, str]:
    """What a Lambda execution environment of `spec` sees, pointed at the local AWS endpoints (one per service)."""
    endpoints = Endpoints(endpoints) if isinstance(endpoints, str) else endpoints
    runtime_variables = {
        **FAKE_CREDENTIALS,
        **endpoints.environment(),
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "TZ": ":UTC",
        "LANG": "C.UTF-8",
        "PATH": os.environ.get("PATH", os.defpath),
    }
    # No X-Ray daemon locally: the SDK's own switch makes `Tracing: Active` code run untraced.
    defaults = {"AWS_XRAY_SDK_ENABLED": "false"}
    # Lambda refuses functions that set its reserved variables, so those always win.
    return {**defaults, **spec.environment, **runtime_variables}


class LocalRuntime:
    """Every function of the stack, its event sources and, if declared, the HttpApi."""

    def __init__(
        self,
        stack: Stack,
        *,
        endpoints: Endpoints,
        api_port: int,
        console: Console,
        function_endpoints: Endpoints | None = None,
    ) -> None:
        """`function_endpoints`: where the functions' AWS calls go (LEYLINE_FUNCTIONS_AWS_ENDPOINT), if not
        `endpoints`; the SQS pollers, being Lambda's and not the functions', always use `endpoints`."""
        self.stack = stack
        self.console = console
        self._stopping = threading.Event()
        self.pools = {
            logical_id: FunctionPool(
                spec,
                worker_environment(stack, spec, function_endpoints or endpoints),
                console,
                capacity=capacity_of(spec),
            )
            for logical_id, spec in stack.functions.items()
        }
        session = boto3.Session()
        clients = {
            service: session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=endpoints.for_service(service),
                region_name=stack.region,
                config=Config(max_pool_connections=50),
            )
            for service in CLIENT_SERVICES
        }
        # Every kind of event source of every function (infra.event_source_kinds), as Lambda's pollers: at the
        # endpoints of the stack, never the functions' (a fault proxy stands only in front of the functions).
        self.pollers = pollers(stack, list(self.pools.values()), clients, console, self._stopping)
        self.gateway = (
            None
            if stack.http_api is None
            else Gateway(
                stack,
                stack.http_api,
                self.pools,
                console,
                api_port,
                aws_endpoint=endpoints.for_service("cognito-idp"),  # the user pool's JWKS
            )
        )

    def start(self) -> None:
        for pool in self.pools.values():
            pool.start()
        for pool in self.pools.values():  # every init phase runs at once; the stack is ready when all are over
            pool.wait_warm()
        for poller in self.pollers:
            poller.start()
        if self.gateway is not None:
            self.gateway.start()

    def stop(self) -> None:
        """Stop taking work, stop every worker by PID (failing what is in flight), then the pollers."""
        self._stopping.set()
        if self.gateway is not None:
            self.gateway.stop()
        for pool in self.pools.values():
            pool.stop()
        deadline = time.monotonic() + _JOIN_SECONDS
        for poller in self.pollers:
            poller.join(max(0.0, deadline - time.monotonic()))


def capacity_of(spec: FunctionSpec) -> int:
    """How many invocations of a function may run at once: its reserved concurrency (ProcessorFunction's is
    ModelSlots), else a small default pool."""
    return DEFAULT_CONCURRENCY if spec.reserved_concurrency is None else spec.reserved_concurrency
