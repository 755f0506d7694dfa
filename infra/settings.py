"""The local stack's configuration, from environment variables (shared by `python -m infra` and
infra.testing, so both bind the template the same way)."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from infra.template import Stack, load_stack, parse_parameter_overrides

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
LOCALSTACK_ACCOUNT_ID = "000000000000"  # LocalStack's, for access keys that are not 12-digit account ids
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
# Where links to the page (task emails) point: locally, the page the local stack serves.
PAGE_URL_PARAMETER = "PageUrl"
# Template parameters whose local default differs from the deployed one (an override still wins): webhooks may
# reach a receiver on this machine (http, 127.0.0.1).
LOCAL_PARAMETER_DEFAULTS = {"WebhookAllowPrivateTargets": "true"}
# Secrets the local stack sets from an environment variable instead of generating them: variable ->
# (the secret's logical id, the key of its JSON document that holds the value).
SECRET_VARIABLES = {"LEYLINE_WEBHOOK_SECRET": ("WebhookSigningSecret", "key")}


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
    stack allows the page's origins on its port instead. PageUrl (links to the page in task emails) is
    empty by default (the HttpApi's AWS URL): locally it is the page on this port. Empty when nothing needs
    changing.
    """
    following: dict[str, str] = {}
    if CORS_PARAMETER in parameters and CORS_PARAMETER not in overrides:
        origins = local_origins(api_port)
        if parameters[CORS_PARAMETER] != origins:
            following[CORS_PARAMETER] = ",".join(origins)
    if PAGE_URL_PARAMETER in parameters and PAGE_URL_PARAMETER not in overrides:
        page = f"{local_origins(api_port)[1]}/"
        if parameters[PAGE_URL_PARAMETER] != page:
            following[PAGE_URL_PARAMETER] = page
    return following


def local_default_overrides(parameters: Mapping[str, str | list[str]], overrides: Collection[str]) -> dict[str, str]:
    """LOCAL_PARAMETER_DEFAULTS the template declares and the user did not set (`overrides`)."""
    return {
        name: value
        for name, value in LOCAL_PARAMETER_DEFAULTS.items()
        if name in parameters and name not in overrides and parameters[name] != value
    }


@dataclass(frozen=True)
class Settings:
    template: Path = REPO_ROOT / "template.yaml"
    stack_name: str = "leyline-local"
    aws_port: int = 4566
    api_port: int = 8080
    aws_endpoint: str | None = None  # an external emulator; None starts the embedded moto server
    backend: str = "moto"  # LEYLINE_BACKEND: moto, or localstack (infra/backends.py)
    state_dir: Path | None = None  # LEYLINE_STATE_DIR: where a started LocalStack keeps its files
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    exit_with_parent: bool = False  # set by infra.testing: a killed test run leaves no stack behind
    # Where the functions' own AWS calls go, if not to the stack's endpoint (e.g. a proxy in front of it,
    # LEYLINE_FUNCTIONS_AWS_ENDPOINT); provisioning and the SQS pollers, being Lambda's, keep the endpoint.
    functions_aws_endpoint: str | None = None
    # Secret values by logical id (SECRET_VARIABLES), as provisioning writes them.
    secret_strings: dict[str, str] = field(default_factory=dict)

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
            backend=env.get("LEYLINE_BACKEND") or cls.backend,
            state_dir=Path(env["LEYLINE_STATE_DIR"]) if env.get("LEYLINE_STATE_DIR") else None,
            parameter_overrides=overrides,
            exit_with_parent=env.get("LEYLINE_EXIT_WITH_PARENT") == "1",
            functions_aws_endpoint=env.get("LEYLINE_FUNCTIONS_AWS_ENDPOINT") or None,
            secret_strings={
                logical_id: json.dumps({key: env[variable]})
                for variable, (logical_id, key) in SECRET_VARIABLES.items()
                if env.get(variable)
            },
        )

    def load_stack(self) -> Stack:
        stack = self._bind(self.parameter_overrides)
        # Only the bound template says which parameters it declares: bind again if a default must follow the port.
        local = port_following_overrides(self.api_port, stack.parameters, self.parameter_overrides)
        local |= local_default_overrides(stack.parameters, self.parameter_overrides)
        return self._bind({**self.parameter_overrides, **local}) if local else stack

    @property
    def state_directory(self) -> Path:
        """Where the running stack describes itself (sam-env reads it) and a started LocalStack keeps its files."""
        return self.state_dir or REPO_ROOT / ".leyline" / self.stack_name

    @property
    def account_id(self) -> str:
        """The account the backend puts resources in: ARNs and queue URLs of the bound template name it."""
        return LOCALSTACK_ACCOUNT_ID if self.backend == "localstack" else ACCOUNT_ID

    def _bind(self, overrides: Mapping[str, str]) -> Stack:
        return load_stack(
            self.template,
            stack_name=self.stack_name,
            region=REGION,
            account_id=self.account_id,
            parameter_overrides=overrides,
        )
