"""The local stack's configuration, from environment variables (shared by `python -m infra` and
infra.testing, so both bind the template the same way)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.template import Stack, load_stack, parse_parameter_overrides

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
READY_MARKER = "local stack ready"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Friendly aliases for template parameters.
PARAMETER_ALIASES = {"LEYLINE_MODEL_SECONDS": "ModelSeconds", "LEYLINE_MODEL_SLOTS": "ModelSlots"}
CORS_PARAMETER = "CorsAllowedOrigins"


def local_origins(api_port: int) -> list[str]:
    """The origins of the page the local stack serves on `api_port`, by both names people type."""
    return [f"http://localhost:{api_port}", f"http://127.0.0.1:{api_port}"]


def port_following_overrides(
    api_port: int, parameters: Mapping[str, str | list[str]], overrides: Collection[str]
) -> dict[str, str]:
    """Overrides that make the template's local defaults follow LEYLINE_API_PORT.

    The template's CorsAllowedOrigins default names port 8080 (it stays the only source of truth on AWS);
    on another port the page's own upload to the bucket would be refused. So, when the template declares
    the parameter (`parameters`, its bound values) and the user did not set it (`overrides`), the local
    stack allows the page's origins on its port instead. Empty when nothing needs changing.
    """
    if CORS_PARAMETER not in parameters or CORS_PARAMETER in overrides:
        return {}
    origins = local_origins(api_port)
    return {} if parameters[CORS_PARAMETER] == origins else {CORS_PARAMETER: ",".join(origins)}


@dataclass(frozen=True)
class Settings:
    template: Path = REPO_ROOT / "template.yaml"
    stack_name: str = "leyline-local"
    aws_port: int = 4566
    api_port: int = 8080
    aws_endpoint: str | None = None  # an external emulator; None starts the embedded moto server
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    exit_with_parent: bool = False  # set by infra.testing: a killed test run leaves no stack behind
    # Where the functions' own AWS calls go, if not to the stack's endpoint (e.g. a proxy in front of it,
    # LEYLINE_FUNCTIONS_AWS_ENDPOINT); provisioning and the SQS pollers, being Lambda's, keep the endpoint.
    functions_aws_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        overrides = parse_parameter_overrides(env.get("LEYLINE_PARAMETER_OVERRIDES", ""))
        overrides.update({p: env[var] for var, p in PARAMETER_ALIASES.items() if env.get(var)})
        return cls(
            template=Path(env.get("LEYLINE_TEMPLATE") or cls.template),
            stack_name=env.get("LEYLINE_STACK_NAME") or cls.stack_name,
            aws_port=int(env.get("LEYLINE_AWS_PORT") or cls.aws_port),
            api_port=int(env.get("LEYLINE_API_PORT") or cls.api_port),
            aws_endpoint=env.get("AWS_ENDPOINT_URL") or None,
            parameter_overrides=overrides,
            exit_with_parent=env.get("LEYLINE_EXIT_WITH_PARENT") == "1",
            functions_aws_endpoint=env.get("LEYLINE_FUNCTIONS_AWS_ENDPOINT") or None,
        )

    def load_stack(self) -> Stack:
        stack = self._bind(self.parameter_overrides)
        # Only the bound template says which parameters it declares: bind again if a default must follow the port.
        local = port_following_overrides(self.api_port, stack.parameters, self.parameter_overrides)
        return self._bind({**self.parameter_overrides, **local}) if local else stack

    def _bind(self, overrides: Mapping[str, str]) -> Stack:
        return load_stack(
            self.template,
            stack_name=self.stack_name,
            region=REGION,
            account_id=ACCOUNT_ID,
            parameter_overrides=overrides,
        )
