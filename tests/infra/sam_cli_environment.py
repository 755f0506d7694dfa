"""Run by aws-sam-cli's own interpreter (.venv-sam): what `sam local invoke --env-vars FILE` hands each function.

It takes the path `sam local invoke` takes up to the container, without Docker: the stacks read from the template
(SamLocalStackProvider, parameter overrides, the region as a global override, AWS::LanguageExtensions expansion
on or off), the functions (SamFunctionProvider), the --env-vars file (InvokeContext's reader), then
LocalLambdaRunner.get_invoke_config(function).env_vars.resolve(): the dict samcli/local/lambdafn/runtime.py gives
the container as its environment. InvokeContext itself is not used: entering it asks Docker for a client.

Usage: python sam_cli_environment.py TEMPLATE ENV_VARS_FILE|'' REGION LANGUAGE_EXTENSIONS(0|1) [NAME=VALUE ...]
Prints {FunctionLogicalId: {VARIABLE: value}} as JSON.
"""

# mypy: ignore-errors
# (samcli lives in .venv-sam only, not in the project's venv.)

from __future__ import annotations

import json
import os
import sys

from samcli.commands.local.cli_common.invoke_context import InvokeContext
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider


def resolved_environments(template, env_vars_file, region, language_extensions, parameter_overrides):
    stacks, _ = SamLocalStackProvider.get_stacks(
        template,
        parameter_overrides=parameter_overrides,
        global_parameter_overrides={"AWS::Region": region},  # as InvokeContext passes --region
        language_extensions_enabled=language_extensions,
    )
    functions = SamFunctionProvider(stacks)
    base = os.path.dirname(os.path.abspath(template))
    runner = LocalLambdaRunner(
        local_runtime=None,  # the container runtime: never reached by get_invoke_config
        function_provider=functions,
        cwd=base,
        real_path=base,
        aws_region=region,
        env_vars_values=InvokeContext._get_env_vars_value(env_vars_file or None),
    )
    return {f.name: runner.get_invoke_config(f).env_vars.resolve() for f in functions.get_all()}


if __name__ == "__main__":
    template, env_vars_file, region, language_extensions, *overrides = sys.argv[1:]
    environments = resolved_environments(
        template, env_vars_file, region, language_extensions == "1", dict(o.split("=", 1) for o in overrides)
    )
    print(json.dumps(environments))
