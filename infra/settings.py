"""The local stack's configuration, from environment variables (shared by `python -m infra` and
infra.testing, so both bind the template the same way)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
PARAMETER_ALIASES = {"LEYLINE_MODEL_SECONDS": "ModelSeconds"}


@dataclass(frozen=True)
class Settings:
    template: Path = REPO_ROOT / "template.yaml"
    stack_name: str = "leyline-local"
    aws_port: int = 4566
    api_port: int = 8080
    aws_endpoint: str | None = None  # an external emulator; None starts the embedded moto server
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    exit_with_parent: bool = False  # set by infra.testing: a killed test run leaves no stack behind
    faults: bool = False  # the functions reach AWS through infra.faults' proxy (LEYLINE_FAULTS=1)
    faults_port: int = 4567

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
            faults=env.get("LEYLINE_FAULTS") == "1",
            faults_port=int(env.get("LEYLINE_FAULTS_PORT") or cls.faults_port),
        )

    def load_stack(self) -> Stack:
        return load_stack(
            self.template,
            stack_name=self.stack_name,
            region=REGION,
            account_id=ACCOUNT_ID,
            parameter_overrides=self.parameter_overrides,
        )
