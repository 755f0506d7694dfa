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


def transformed_template() -> dict[str, Any]:
    """What CloudFormation deploys from template.yaml with its defaults: the SAM transform's output
    (code packaged to S3 first, as `sam package` does)."""
    packaged = packaged_template(source_template())
    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator needs one; ARNs use ${AWS::Region}
    try:
        result: dict[str, Any] = transform(packaged, default_parameters(packaged), _NoManagedPolicies())
    finally:
        if region is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = region
    return result


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}
