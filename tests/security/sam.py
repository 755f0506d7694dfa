"""template.yaml as CloudFormation sees it after the SAM transform, for the security checks."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"


class _NoManagedPolicies:
    """SAM asks IAM for managed policy ARNs only for policies named by name; ours are all statements."""

    def load(self) -> dict[str, str]:
        return {}


def source_template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return loaded


def default_parameters(template: dict[str, Any]) -> dict[str, Any]:
    """The parameters' defaults as CloudFormation evaluates them before the transform (lists split)."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        default = spec.get("Default")
        if spec["Type"] == "CommaDelimitedList" and isinstance(default, str):
            default = [item.strip() for item in default.split(",")]
        values[name] = default
    return values


def packaged_template(template: dict[str, Any]) -> dict[str, Any]:
    """`template` as `sam package` leaves it: the functions' code and the layers' content on S3."""
    packaged = copy.deepcopy(template)
    packaged["Globals"]["Function"]["CodeUri"] = "s3://artifacts/leyline.zip"
    for name, resource in packaged["Resources"].items():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://artifacts/{name}.zip"
    return packaged


LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SERVERLESS = "AWS::Serverless-2016-10-31"


def with_language_extensions(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """`template` as the AWS::LanguageExtensions transform hands it to the SAM transform: every Fn::If whose
    condition the parameters decide replaced by its branch (AWS::NoValue: the key or item disappears)."""
    conditions = {name: _condition(body, template, parameters) for name, body in template.get("Conditions", {}).items()}
    resolved: dict[str, Any] = _resolve_ifs(copy.deepcopy(template), conditions)
    resolved["Transform"] = [t for t in _transforms(template) if t != LANGUAGE_EXTENSIONS]
    return resolved


def _transforms(template: dict[str, Any]) -> list[str]:
    transforms = template.get("Transform", [])
    return [transforms] if isinstance(transforms, str) else list(transforms)


def _condition(body: Any, template: dict[str, Any], parameters: dict[str, Any]) -> bool:
    ((name, args),) = body.items()
    if name == "Fn::Equals":
        left, right = (parameters[a["Ref"]] if isinstance(a, dict) else a for a in args)
        return bool(left == right)
    if name == "Fn::Not":
        return not _condition(args[0], template, parameters)
    if name == "Condition":
        return _condition(template["Conditions"][args], template, parameters)
    raise ValueError(f"condition function {name} is not evaluated here")


_NO_VALUE = object()


def _resolve_ifs(node: Any, conditions: dict[str, bool]) -> Any:
    if isinstance(node, list):
        items = [_resolve_ifs(item, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::If"} and node["Fn::If"][0] in conditions:
        name, when_true, when_false = node["Fn::If"]
        return _resolve_ifs(when_true if conditions[name] else when_false, conditions)
    if node == {"Ref": "AWS::NoValue"}:
        return _NO_VALUE
    entries = {key: _resolve_ifs(value, conditions) for key, value in node.items()}
    return {key: value for key, value in entries.items() if value is not _NO_VALUE}


def transformed_template(**overrides: Any) -> dict[str, Any]:
    """What CloudFormation deploys from template.yaml with its defaults (and `overrides` of parameters): the
    language extensions' and then the SAM transform's output (code packaged to S3 first, as `sam package` does)."""
    source = source_template()
    parameters = {**default_parameters(source), **overrides}
    packaged = packaged_template(with_language_extensions(source, parameters))
    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator needs one; ARNs use ${AWS::Region}
    try:
        result: dict[str, Any] = transform(packaged, parameters, _NoManagedPolicies())
    finally:
        if region is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = region
    return result


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def function_ids(template: dict[str, Any]) -> set[str]:
    """The logical ids of the functions `template` (the source, before the transform) declares."""
    return set(resources_of_type(template, "AWS::Serverless::Function"))


def functions_with_event(template: dict[str, Any], kind: str) -> set[str]:
    """The functions of the source `template` that have an event source of type `kind` (SQS, HttpApi...)."""
    return {
        name
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
        if any(event["Type"] == kind for event in function["Properties"].get("Events", {}).values())
    }
