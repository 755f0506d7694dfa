"""The SAM template as a local stack: parameters, intrinsics, physical names and function specs.

template.yaml is the single source of truth. This module reads it the way CloudFormation + the SAM
transform would for what the local stack emulates, and refuses (TemplateError) what it cannot emulate,
so that the template and the local stack cannot drift apart silently.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_HTTP_API = "AWS::Serverless::HttpApi"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
SERVERLESS_TYPES = frozenset({SERVERLESS_FUNCTION, SERVERLESS_HTTP_API, SERVERLESS_LAYER})

# Function properties the local runtime honours, or that only matter to IAM/X-Ray/billing.
_FUNCTION_PROPERTIES = frozenset(
    {"Handler", "Runtime", "CodeUri", "MemorySize", "Timeout", "Environment", "ReservedConcurrentExecutions"}
    | {"Events", "FunctionName", "Description", "Policies", "Role", "Tracing", "Architectures", "Tags"}
    | {"LoggingConfig", "EphemeralStorage", "Layers"}
)
_HTTP_API_PROPERTIES = frozenset(
    {"CorsConfiguration", "DefaultRouteSettings", "Description", "Tags", "FailOnWarnings", "Auth"}
)
_HTTP_EVENT_PROPERTIES = frozenset({"ApiId", "Method", "Path", "Auth"})
# The route-level authorizer name that makes a route public under a DefaultAuthorizer (SAM's spelling).
NO_AUTHORIZER = "NONE"
# Resources whose physical id the service assigns when it creates them (a user pool's id, a client's id): the
# template cannot name them, so `!Ref` of one resolves only once provisioning has told the stack (assign_id).
SERVICE_ASSIGNED_IDS = frozenset({"AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient"})
_SQS_EVENT_PROPERTIES = frozenset(
    {"Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "Enabled", "ScalingConfig"}
)
_STREAM_EVENT_PROPERTIES = frozenset(
    {"Stream", "StartingPosition", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes"}
    | {"Enabled", "ParallelizationFactor", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds"}
    | {"BisectBatchOnFunctionError", "FilterCriteria", "DestinationConfig"}
)
# Explicit-name property per type; without it CloudFormation generates a name.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::Rule": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::Cognito::UserPoolClient": "ClientName",
    "AWS::Events::EventBus": "Name",
    "AWS::SecretsManager::Secret": "Name",
    # The identity is its address: `!Ref` of it is the address, as on AWS.
    "AWS::SES::EmailIdentity": "EmailIdentity",
    SERVERLESS_FUNCTION: "FunctionName",
}


class TemplateError(ValueError):
    """The template is invalid, or uses something the local stack does not emulate."""


class _NoValue:
    """AWS::NoValue: the enclosing key or list item disappears."""


_NO_VALUE = _NoValue()


@dataclass(frozen=True)
class SqsSource:
    """One SQS event source mapping of a function."""

    queue_logical_id: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    maximum_batching_window_seconds: int = 0
    maximum_concurrency: int | None = None


@dataclass(frozen=True)
class StreamSource:
    """One DynamoDB stream event source mapping of a function (infra/stream_sources.py runs it)."""

    table_logical_id: str
    starting_position: str = "LATEST"
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = -1  # -1: until the record leaves the stream
    filter_patterns: tuple[str, ...] = ()  # Lambda's FilterCriteria: a record passes if any pattern matches
    on_failure_queue_logical_id: str | None = None  # DestinationConfig.OnFailure (an SQS queue of the template)


@dataclass(frozen=True)
class FunctionSpec:
    """An AWS::Serverless::Function after Globals and intrinsics."""

    logical_id: str
    function_name: str
    arn: str
    runtime: str
    handler: str
    code_dir: Path
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    reserved_concurrency: int | None
    http_routes: tuple[tuple[str, str], ...]
    sqs_sources: tuple[SqsSource, ...]
    # Logical ids of the template's layers it uses; locally their packages come from the environment.
    layers: tuple[str, ...] = ()
    # The authorizer a route names itself ((method, path) -> name, NO_AUTHORIZER for a public route); the
    # others take the HttpApi's DefaultAuthorizer.
    route_authorizers: tuple[tuple[tuple[str, str], str], ...] = ()
    stream_sources: tuple[StreamSource, ...] = ()


@dataclass(frozen=True)
class CorsConfig:
    """An HttpApi CorsConfiguration."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class JwtAuthorizer:
    """An HttpApi JWT authorizer: tokens of `issuer` whose `aud` (or `client_id`) is one of `audiences`."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    identity_source: str = "$request.header.Authorization"


@dataclass(frozen=True)
class HttpApiSpec:
    """The AWS::Serverless::HttpApi the local gateway serves."""

    logical_id: str
    api_id: str
    cors: CorsConfig | None
    authorizers: tuple[JwtAuthorizer, ...] = ()
    default_authorizer: str | None = None

    def authorizer_of(self, spec: FunctionSpec, route: tuple[str, str]) -> JwtAuthorizer | None:
        """The authorizer guarding `route` of `spec`: its own, else the default; None for a public route."""
        name = dict(spec.route_authorizers).get(route, self.default_authorizer)
        if name is None or name == NO_AUTHORIZER:
            return None
        found = [authorizer for authorizer in self.authorizers if authorizer.name == name]
        if not found:
            raise TemplateError(f"{spec.logical_id}: route {route} names an unknown authorizer {name!r}")
        return found[0]


@dataclass(frozen=True)
class Resource:
    """A template resource, properties unresolved (Globals applied for functions)."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    depends_on: tuple[str, ...]


class Stack:
    """A template bound to a stack name, region, account and parameter values."""

    def __init__(
        self,
        template_path: Path,
        template: dict[str, Any],
        *,
        name: str,
        region: str,
        account_id: str,
        parameters: dict[str, str | list[str]],
    ) -> None:
        self.template_path = template_path
        self.name = name
        self.region = region
        self.account_id = account_id
        self.parameters = parameters
        self.conditions = _conditions(template.get("Conditions", {}), parameters)
        self.resources = _read_resources(template, self.conditions)
        self.assigned_ids: dict[str, str] = {}
        self._outputs = {
            key: output
            for key, output in template.get("Outputs", {}).items()
            if self._holds(output.get("Condition"), f"Outputs.{key}")
        }
        self._bind_serverless()

    def _bind_serverless(self) -> None:
        self.functions = {
            r.logical_id: self._function_spec(r) for r in self.resources.values() if r.type == SERVERLESS_FUNCTION
        }
        self.http_api = self._http_api_spec()

    def _holds(self, condition: str | None, where: str) -> bool:
        if condition is None:
            return True
        if condition not in self.conditions:
            raise TemplateError(f"{where}: unknown condition {condition!r}")
        return self.conditions[condition]

    def assign_id(self, logical_id: str, physical_id: str) -> None:
        """Records the id the service gave a resource (SERVICE_ASSIGNED_IDS) when provisioning created it, and
        binds the functions and the HttpApi again: their environment and authorizers may `!Ref` it."""
        self.assigned_ids[logical_id] = physical_id
        self._bind_serverless()

    # ---- values -------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function replaced by its local value."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resolved properties of a resource."""
        resolved: dict[str, Any] = self.resolve(self.resources[logical_id].properties)
        return resolved

    def outputs(self) -> dict[str, Any]:
        """The template's Outputs, resolved (ApiUrl is the AWS form, not the local URL)."""
        return {key: self.resolve(output["Value"]) for key, output in self._outputs.items()}

    def physical_name(self, logical_id: str) -> str:
        """Name of the resource: its explicit name property, else generated like CloudFormation."""
        resource = self._resource(logical_id)
        explicit = resource.properties.get(_NAME_PROPERTY.get(resource.type, ""))
        if explicit is not None:
            return str(self.resolve(explicit))
        return self._generated_name(resource)

    def ref(self, logical_id: str) -> str:
        """What `!Ref logical_id` returns: a parameter's value or a resource's physical id."""
        resource = self._resource(logical_id)
        if resource.type == "AWS::SQS::Queue":
            return self.queue_url(logical_id)
        if resource.type == SERVERLESS_HTTP_API:
            return _short_id(self.name, logical_id)
        if resource.type == SERVERLESS_LAYER:
            return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{self.physical_name(logical_id)}:1"
        if resource.type in SERVICE_ASSIGNED_IDS:
            # Until provisioned, a placeholder no service would give (the parent of a local stack never provisions).
            return self.assigned_ids.get(logical_id, f"<{logical_id} id: assigned when provisioned>")
        if resource.type == "AWS::SecretsManager::Secret":
            return self.get_att(logical_id, "Id")
        return self.physical_name(logical_id)

    def get_att(self, logical_id: str, attribute: str) -> str:
        """What `!GetAtt logical_id.attribute` returns."""
        resource = self._resource(logical_id)
        name = self.physical_name(logical_id)
        region, account = self.region, self.account_id
        pool_id = self.ref(logical_id) if resource.type == "AWS::Cognito::UserPool" else ""
        attributes: dict[str, dict[str, str]] = {
            "AWS::S3::Bucket": {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            },
            "AWS::SQS::Queue": {
                "Arn": f"arn:aws:sqs:{region}:{account}:{name}",
                "QueueName": name,
                "QueueUrl": self.queue_url(logical_id),
            },
            "AWS::DynamoDB::Table": {
                "Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}",
                # The real label is the stream's creation time; the local poller looks the stream up by table.
                "StreamArn": f"arn:aws:dynamodb:{region}:{account}:table/{name}/stream/local",
            },
            "AWS::Events::EventBus": {"Arn": f"arn:aws:events:{region}:{account}:event-bus/{name}", "Name": name},
            # AWS appends 6 random characters; Secrets Manager (and moto) accept the ARN without them.
            "AWS::SecretsManager::Secret": {"Id": f"arn:aws:secretsmanager:{region}:{account}:secret:{name}"},
            "AWS::Events::Rule": {"Arn": f"arn:aws:events:{region}:{account}:rule/{name}"},
            "AWS::CloudWatch::Alarm": {"Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"},
            "AWS::Cognito::UserPool": {"Arn": f"arn:aws:cognito-idp:{region}:{account}:userpool/{pool_id}"},
            SERVERLESS_FUNCTION: {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"},
        }
        try:
            return attributes[resource.type][attribute]
        except KeyError:
            raise TemplateError(f"Fn::GetAtt {logical_id}.{attribute} is not supported") from None

    def arn(self, logical_id: str) -> str:
        return self.get_att(logical_id, "Arn")

    def queue_url(self, logical_id: str) -> str:
        """The canonical AWS queue URL; moto and LocalStack accept it whatever their endpoint."""
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(logical_id)}"

    def dependencies(self, logical_id: str) -> set[str]:
        """Resources this one references through Ref, Fn::GetAtt, Fn::Sub or DependsOn."""
        resource = self._resource(logical_id)
        found = set(_references(resource.properties)) | set(resource.depends_on)
        return {dep for dep in found if dep in self.resources}

    # ---- intrinsics ---------------------------------------------------------------------------
    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            resolved = [self._resolve(item) for item in value]
            return [item for item in resolved if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        entries = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in entries.items() if item is not _NO_VALUE}

    def _intrinsic(self, name: str, arg: Any) -> Any:
        if name == "Ref":
            return self._ref_value(str(arg))
        if name == "Fn::GetAtt":
            logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.get_att(logical_id, self._resolve(attribute))
        if name == "Fn::Sub":
            return self._sub(arg)
        if name == "Fn::Join":
            delimiter, items = arg
            return str(delimiter).join(str(item) for item in self._resolve(items))
        if name == "Fn::Select":
            index, items = self._resolve(arg)
            return items[int(index)]
        if name == "Fn::Split":
            delimiter, text = self._resolve(arg)
            return str(text).split(delimiter)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            return self._resolve(when_true if self._holds(condition, "Fn::If") else when_false)
        raise TemplateError(f"intrinsic function {name} is not supported by the local stack")

    def _ref_value(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.name}/"
                f"{_short_id(self.account_id, self.name)}"
            ),
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.ref(name)

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        values = {key: self._resolve(value) for key, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                value = values[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self.get_att(*name.split(".", 1))
            else:
                value = self._ref_value(name)
            if isinstance(value, list):
                raise TemplateError(f"Fn::Sub cannot substitute list {name}")
            return str(value)

        return _SUB_VARIABLE.sub(replace, text)

    # ---- SAM ----------------------------------------------------------------------------------
    def _function_spec(self, resource: Resource) -> FunctionSpec:
        logical_id, props = resource.logical_id, resource.properties
        _check_keys(logical_id, props, _FUNCTION_PROPERTIES)
        runtime = str(self.resolve(props.get("Runtime", "")))
        code_uri = self.resolve(props.get("CodeUri"))
        if not runtime.startswith("python") or not isinstance(code_uri, str) or "Handler" not in props:
            raise TemplateError(f"{logical_id}: only python functions with a Handler and a local CodeUri run locally")
        environment = self.resolve(props.get("Environment", {})).get("Variables", {})
        reserved = self.resolve(props.get("ReservedConcurrentExecutions"))
        http_routes: list[tuple[str, str]] = []
        route_authorizers: list[tuple[tuple[str, str], str]] = []
        sqs_sources: list[SqsSource] = []
        stream_sources: list[StreamSource] = []
        for event_id, event in props.get("Events", {}).items():
            where = f"{logical_id}.Events.{event_id}"
            if event.get("Type") == "HttpApi":
                event_props = self.resolve(event.get("Properties", {}))
                route = self._http_route(where, event.get("Properties", {}))
                http_routes.append(route)
                authorizer = (event_props.get("Auth") or {}).get("Authorizer")
                if authorizer is not None:
                    route_authorizers.append((route, str(authorizer)))
            elif event.get("Type") == "SQS":
                source = self._sqs_source(where, event["Properties"])
                if source is not None:
                    sqs_sources.append(source)
            elif event.get("Type") == "DynamoDB":
                stream = self._stream_source(where, event["Properties"])
                if stream is not None:
                    stream_sources.append(stream)
            else:
                raise TemplateError(f"{where}: event type {event.get('Type')} is not supported")
        return FunctionSpec(
            logical_id=logical_id,
            function_name=self.physical_name(logical_id),
            arn=self.arn(logical_id),
            runtime=runtime,
            handler=str(self.resolve(props.get("Handler", ""))),
            code_dir=(self.template_path.parent / code_uri).resolve(),
            timeout_seconds=int(self.resolve(props.get("Timeout", 3))),
            memory_mb=int(self.resolve(props.get("MemorySize", 128))),
            environment={key: _env_value(logical_id, key, v) for key, v in environment.items()},
            reserved_concurrency=None if reserved is None else int(reserved),
            http_routes=tuple(http_routes),
            sqs_sources=tuple(sqs_sources),
            layers=self._layers(logical_id, props.get("Layers", [])),
            route_authorizers=tuple(route_authorizers),
            stream_sources=tuple(stream_sources),
        )

    def _layers(self, where: str, layers: list[Any]) -> tuple[str, ...]:
        found = []
        for layer in layers:
            name = layer.get("Ref") if isinstance(layer, dict) else None
            if name not in self.resources or self.resources[name].type != SERVERLESS_LAYER:
                raise TemplateError(
                    f"{where}.Layers: each layer must !Ref an AWS::Serverless::LayerVersion of the template"
                )
            found.append(name)
        return tuple(found)

    def _http_route(self, where: str, props: dict[str, Any]) -> tuple[str, str]:
        _check_keys(where, props, _HTTP_EVENT_PROPERTIES)
        auth = self.resolve(props.get("Auth"))
        if auth is not None:
            _check_keys(f"{where}.Auth", auth, frozenset({"Authorizer"}))
        api = props.get("ApiId")
        if not (isinstance(api, dict) and api.get("Ref") in self.resources):
            raise TemplateError(f"{where}: ApiId must !Ref an AWS::Serverless::HttpApi of the template")
        if "Path" not in props and "Method" not in props:
            return ("ANY", "$default")
        method = str(self.resolve(props.get("Method", "ANY"))).upper()
        return ("ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method, str(props["Path"]))

    def _sqs_source(self, where: str, props: dict[str, Any]) -> SqsSource | None:
        _check_keys(where, props, _SQS_EVENT_PROPERTIES)
        queue = props["Queue"]
        getatt = queue.get("Fn::GetAtt") if isinstance(queue, dict) else None
        if isinstance(getatt, str):
            getatt = getatt.split(".", 1)
        if not getatt or list(getatt)[1:] != ["Arn"] or getatt[0] not in self.resources:
            raise TemplateError(f"{where}: Queue must be !GetAtt <queue of this template>.Arn")
        resolved = self.resolve(props)
        if not resolved.get("Enabled", True):
            return None
        scaling = resolved.get("ScalingConfig", {}).get("MaximumConcurrency")
        return SqsSource(
            queue_logical_id=getatt[0],
            batch_size=int(resolved.get("BatchSize", 10)),
            report_batch_item_failures="ReportBatchItemFailures" in resolved.get("FunctionResponseTypes", []),
            maximum_batching_window_seconds=int(resolved.get("MaximumBatchingWindowInSeconds", 0)),
            maximum_concurrency=None if scaling is None else int(scaling),
        )

    def _stream_source(self, where: str, props: dict[str, Any]) -> StreamSource | None:
        _check_keys(where, props, _STREAM_EVENT_PROPERTIES)
        table = _getatt_of(props["Stream"])
        if table is None or table[1] != "StreamArn" or table[0] not in self.resources:
            raise TemplateError(f"{where}: Stream must be !GetAtt <table of this template>.StreamArn")
        resolved = self.resolve(props)
        if not resolved.get("Enabled", True):
            return None
        if int(resolved.get("ParallelizationFactor", 1)) != 1 or resolved.get("BisectBatchOnFunctionError") in (
            True,
            "true",
        ):
            raise TemplateError(
                f"{where}: only ParallelizationFactor 1, without BisectBatchOnFunctionError, runs locally"
            )
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        on_failure = _getatt_of(destination) if destination is not None else None
        if destination is not None and (on_failure is None or on_failure[1] != "Arn"):
            raise TemplateError(f"{where}: OnFailure.Destination must be !GetAtt <queue of this template>.Arn")
        filters = resolved.get("FilterCriteria", {}).get("Filters", [])
        return StreamSource(
            table_logical_id=table[0],
            starting_position=str(resolved.get("StartingPosition", "LATEST")),
            batch_size=int(resolved.get("BatchSize", 100)),
            maximum_batching_window_seconds=int(resolved.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in resolved.get("FunctionResponseTypes", []),
            maximum_retry_attempts=int(resolved.get("MaximumRetryAttempts", -1)),
            filter_patterns=tuple(str(f["Pattern"]) for f in filters),
            on_failure_queue_logical_id=None if on_failure is None else on_failure[0],
        )

    def _http_api_spec(self) -> HttpApiSpec | None:
        apis = [r for r in self.resources.values() if r.type == SERVERLESS_HTTP_API]
        if len(apis) > 1:
            raise TemplateError("the local gateway serves one AWS::Serverless::HttpApi, found several")
        if not apis:
            return None
        api = apis[0]
        _check_keys(api.logical_id, api.properties, _HTTP_API_PROPERTIES)
        auth = self.resolve(api.properties.get("Auth")) or {}
        _check_keys(f"{api.logical_id}.Auth", auth, frozenset({"Authorizers", "DefaultAuthorizer"}))
        return HttpApiSpec(
            logical_id=api.logical_id,
            api_id=self.ref(api.logical_id),
            cors=_cors(self.resolve(api.properties.get("CorsConfiguration"))),
            authorizers=tuple(_jwt_authorizer(api.logical_id, n, a) for n, a in auth.get("Authorizers", {}).items()),
            default_authorizer=auth.get("DefaultAuthorizer"),
        )

    # ---- names --------------------------------------------------------------------------------
    def _resource(self, logical_id: str) -> Resource:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"unknown resource or parameter {logical_id!r}") from None

    def _generated_name(self, resource: Resource) -> str:
        base = f"{self.name}-{resource.logical_id}"
        if resource.type == "AWS::S3::Bucket":
            return re.sub(r"[^a-z0-9-]", "-", base.lower())[:63].strip("-")
        if resource.type == "AWS::SQS::Queue":
            fifo = self.resolve(resource.properties.get("FifoQueue", False)) in (True, "true")
            return base[:75] + ".fifo" if fifo else base[:80]
        return base[:64]


_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def load_stack(
    template_path: Path,
    *,
    stack_name: str = "leyline-local",
    region: str = "us-east-1",
    account_id: str = "123456789012",
    parameter_overrides: Mapping[str, str] | None = None,
) -> Stack:
    """Read a SAM template and bind it to a local stack."""
    template_path = Path(template_path).resolve()
    template = _plain(cfn_yaml.load(str(template_path)))
    _apply_globals(template)
    parameters = _parameter_values(template.get("Parameters", {}), parameter_overrides or {})
    return Stack(
        template_path,
        template,
        name=stack_name,
        region=region,
        account_id=account_id,
        parameters=parameters,
    )


def parse_parameter_overrides(text: str) -> dict[str, str]:
    """sam's `--parameter-overrides` syntax: `Key=Value Key2='Value 2'`."""
    overrides: dict[str, str] = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TemplateError(f"parameter override {item!r} is not Key=Value")
        overrides[key] = value
    return overrides


# ---- template reading -------------------------------------------------------------------------
def _plain(node: Any) -> Any:
    """cfn-lint's YAML nodes as plain dict/list/str (they subclass them, with line marks)."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def _apply_globals(template: dict[str, Any]) -> None:
    sections = template.get("Globals", {})
    kinds = {"Function": SERVERLESS_FUNCTION, "HttpApi": SERVERLESS_HTTP_API}
    for section, values in sections.items():
        if section not in kinds:
            raise TemplateError(f"Globals.{section} is not supported by the local stack")
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == kinds[section]:
                resource["Properties"] = _merge_globals(values, resource.get("Properties", {}))


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's rule: maps merge (the resource wins), lists concatenate, anything else: resource wins."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def _read_resources(template: dict[str, Any], conditions: Mapping[str, bool]) -> dict[str, Resource]:
    """The resources the stack creates: those whose Condition is false are left out, as CloudFormation does."""
    resources: dict[str, Resource] = {}
    for logical_id, body in template.get("Resources", {}).items():
        condition = body.get("Condition")
        if condition is not None and condition not in conditions:
            raise TemplateError(f"{logical_id}: unknown condition {condition!r}")
        if condition is not None and not conditions[condition]:
            continue
        depends_on = body.get("DependsOn", [])
        resources[logical_id] = Resource(
            logical_id=logical_id,
            type=body["Type"],
            properties=body.get("Properties", {}),
            depends_on=tuple([depends_on] if isinstance(depends_on, str) else depends_on),
        )
    return resources


def _conditions(declared: dict[str, Any], parameters: Mapping[str, str | list[str]]) -> dict[str, bool]:
    """The Conditions section evaluated with the bound parameters (Fn::Equals/Not/And/Or, Condition, Ref)."""
    values: dict[str, bool] = {}

    def evaluate(node: Any, trail: tuple[str, ...]) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            return node
        ((function, arg),) = node.items()
        if function == "Ref":
            if arg not in parameters:
                raise TemplateError(f"Conditions: Ref {arg} must name a parameter")
            return parameters[arg]
        if function == "Condition":
            return condition(arg, trail)
        args = [evaluate(item, trail) for item in arg]
        if function == "Fn::Equals":
            left, right = args
            return str(left) == str(right)
        if function == "Fn::Not":
            return not args[0]
        if function == "Fn::And":
            return all(args)
        if function == "Fn::Or":
            return any(args)
        raise TemplateError(f"Conditions: {function} is not supported by the local stack")

    def condition(name: str, trail: tuple[str, ...]) -> bool:
        if name in trail:
            raise TemplateError(f"Conditions: {name} depends on itself")
        if name not in declared:
            raise TemplateError(f"Conditions: unknown condition {name!r}")
        if name not in values:
            values[name] = bool(evaluate(declared[name], (*trail, name)))
        return values[name]

    for name in declared:
        condition(name, ())
    return values


def _jwt_authorizer(api: str, name: str, config: dict[str, Any]) -> JwtAuthorizer:
    jwt = config.get("JwtConfiguration")
    if not isinstance(jwt, dict) or "issuer" not in jwt:
        raise TemplateError(f"{api}.Auth.Authorizers.{name}: only JWT authorizers (JwtConfiguration) run locally")
    return JwtAuthorizer(
        name=name,
        issuer=str(jwt["issuer"]),
        audiences=tuple(str(audience) for audience in jwt.get("audience", [])),
        identity_source=str(config.get("IdentitySource", "$request.header.Authorization")),
    )


def _parameter_values(declared: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str | list[str]]:
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    values: dict[str, str | list[str]] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise TemplateError(f"parameter {name} has no Default and no override")
        if isinstance(raw, list):  # a YAML list as Default of a CommaDelimitedList
            raw = ",".join(str(item) for item in raw)
        text = str(raw)
        _check_parameter(name, spec, text)
        if spec["Type"] == "CommaDelimitedList":
            values[name] = [item.strip() for item in text.split(",")]
        else:
            values[name] = text
    return values


def _check_parameter(name: str, spec: dict[str, Any], text: str) -> None:
    if spec["Type"] == "Number":
        try:
            number = float(text)
        except ValueError:
            raise TemplateError(f"parameter {name}={text!r} is not a Number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={text} is below MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={text} is above MaxValue {spec['MaxValue']}")
    allowed = spec.get("AllowedValues")
    if allowed is not None and text not in [str(value) for value in allowed]:
        raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, text):
        raise TemplateError(f"parameter {name}={text!r} does not match {pattern}")


def _check_keys(where: str, props: dict[str, Any], supported: frozenset[str]) -> None:
    unsupported = sorted(set(props) - supported)
    if unsupported:
        raise TemplateError(f"{where}: {', '.join(unsupported)} not supported by the local stack")


def _references(value: Any) -> Iterator[str]:
    """Logical ids named by Ref / Fn::GetAtt / Fn::Sub anywhere inside `value`."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref":
                yield str(arg)
            elif key == "Fn::GetAtt":
                yield arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                yield from (name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(text))
                if not isinstance(arg, str):
                    yield from _references(arg[1])
            else:
                yield from _references(arg)


def _getatt_of(value: Any) -> tuple[str, str] | None:
    """(logical id, attribute) of a `!GetAtt`, or None for anything else."""
    getatt = value.get("Fn::GetAtt") if isinstance(value, dict) else None
    if isinstance(getatt, str):
        getatt = getatt.split(".", 1)
    if not isinstance(getatt, list) or len(getatt) != 2:
        return None
    return str(getatt[0]), str(getatt[1])


def _env_value(logical_id: str, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TemplateError(f"{logical_id}: environment variable {key} must be a string, got {value!r}")


def _cors(config: Any) -> CorsConfig | None:
    if config is None or config is False:
        return None
    if config is True:  # SAM's shorthand: everything allowed
        return CorsConfig(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))

    def strings(key: str) -> tuple[str, ...]:
        return tuple(str(item) for item in config.get(key, []))

    max_age = config.get("MaxAge")
    return CorsConfig(
        allow_origins=strings("AllowOrigins"),
        allow_methods=tuple(method.upper() for method in strings("AllowMethods")),
        allow_headers=tuple(header.lower() for header in strings("AllowHeaders")),
        expose_headers=strings("ExposeHeaders"),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=config.get("AllowCredentials") in (True, "true"),
    )


def _short_id(*parts: str) -> str:
    """A stable 10-character lowercase id, the shape of API Gateway ids."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])
