"""Create every non-serverless resource of the template by AWS API calls.

Works against moto in-process (`moto.mock_aws`, endpoint_url None), the embedded moto server, or any
AWS-compatible endpoint (e.g. LocalStack); re-running it converges instead of failing on "already
exists". A resource type or property without a mapping here is an error: the local stack must not
silently lack something the template declares. AWS::Serverless::* resources are the runtime's job.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.backends import Endpoints
from infra.template import SERVERLESS_TYPES, Stack, TemplateError

Props = dict[str, Any]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass
class _Clients:
    session: boto3.Session
    endpoints: Endpoints | None  # None: botocore's own resolution (moto's in-process mock patches it)
    region: str
    # moto misapplies the bucket policy's TLS-only Deny (see _denies_insecure_transport): leave it out there.
    drop_tls_only_rule: bool = True
    _cache: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self.session.client(
                service,
                endpoint_url=None if self.endpoints is None else self.endpoints.for_service(service),
                region_name=self.region,  # type: ignore[call-overload]
            )
        return self._cache[service]


# Returns the physical id the service assigned, for the types whose ids the template cannot name.
Provisioner = Callable[[_Clients, str, Props], str | None]


def provision(
    stack: Stack,
    session: boto3.Session,
    endpoints: Endpoints | str | None = None,
    *,
    drop_tls_only_rule: bool = True,
    secret_strings: Mapping[str, str] | None = None,
) -> None:
    """Create (or converge) the stack's resources, dependencies first, each service's at its endpoint.

    `drop_tls_only_rule`: leave the bucket policy's "HTTPS only" Deny out (moto); LocalStack stores it as declared
    (its community edition does not evaluate bucket policies). `secret_strings`: the value of an
    AWS::SecretsManager::Secret (by logical id) instead of the one its GenerateSecretString would make."""
    order = provisioning_order(stack)
    for logical_id in order:  # refuse before creating anything
        _check_supported(stack, logical_id)
    endpoints = Endpoints(endpoints) if isinstance(endpoints, str) else endpoints
    clients = _Clients(session, endpoints, stack.region, drop_tls_only_rule)
    given = secret_strings or {}
    for logical_id in order:
        resource_type = stack.resources[logical_id].type
        # Properties are resolved only now: they may `!Ref` an id assigned by a resource provisioned before.
        props = stack.properties(logical_id)
        if logical_id in given:
            props = {key: value for key, value in props.items() if key != "GenerateSecretString"}
            props["SecretString"] = given[logical_id]
        assigned = _PROVISIONERS[resource_type].create(clients, stack.physical_name(logical_id), props)
        if assigned is not None:
            stack.assign_id(logical_id, assigned)


def provisioning_order(stack: Stack) -> list[str]:
    """Non-serverless resources in dependency order (from Ref, Fn::GetAtt, Fn::Sub, DependsOn)."""
    graph = {
        logical_id: {dep for dep in stack.dependencies(logical_id) if _is_provisioned(stack, dep)}
        for logical_id in stack.resources
        if _is_provisioned(stack, logical_id)
    }
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise TemplateError(f"circular dependency between resources: {error.args[1]}") from None


def _is_provisioned(stack: Stack, logical_id: str) -> bool:
    return stack.resources[logical_id].type not in SERVERLESS_TYPES


def _check_supported(stack: Stack, logical_id: str) -> None:
    resource = stack.resources[logical_id]
    if resource.type not in _PROVISIONERS:
        raise TemplateError(f"{logical_id}: resource type {resource.type} is not provisioned locally")
    unsupported = sorted(set(resource.properties) - _PROVISIONERS[resource.type].properties)
    if unsupported:
        raise TemplateError(f"{logical_id}: {', '.join(unsupported)} not provisioned locally")


def _ignore(error: ClientError, *codes: str) -> None:
    if error.response["Error"]["Code"] not in codes:
        raise error


# ---- S3 ---------------------------------------------------------------------------------------
def _bucket(aws: _Clients, name: str, props: Props) -> None:
    s3 = aws("s3")
    create: Props = {"Bucket": name}
    if aws.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    try:
        s3.create_bucket(**create)
    except ClientError as error:
        _ignore(error, "BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    if "BucketEncryption" in props:
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": [_encryption_rule(rule) for rule in rules]},
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "CorsConfiguration" in props:
        rules = props["CorsConfiguration"]["CorsRules"]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(r) for r in rules]})
    if "LifecycleConfiguration" in props:
        rules = props["LifecycleConfiguration"]["Rules"]
        s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in rules]}
        )
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration=_notifications(props["NotificationConfiguration"])
        )


def _encryption_rule(rule: Props) -> Props:
    converted: Props = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
    if "BucketKeyEnabled" in rule:
        converted["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"])
    return converted


def _cors_rule(rule: Props) -> Props:
    renamed = {"ExposedHeaders": "ExposeHeaders", "Id": "ID", "MaxAge": "MaxAgeSeconds"}
    converted = {renamed.get(key, key): value for key, value in rule.items()}
    if "MaxAgeSeconds" in converted:
        converted["MaxAgeSeconds"] = int(converted["MaxAgeSeconds"])
    return converted


_LIFECYCLE_KEYS = _names(
    "Id Status Prefix ExpirationInDays AbortIncompleteMultipartUpload NoncurrentVersionExpirationInDays"
)


def _lifecycle_rule(rule: Props) -> Props:
    unsupported = set(rule) - _LIFECYCLE_KEYS
    if unsupported:
        raise TemplateError(f"lifecycle rule keys {sorted(unsupported)} are not provisioned locally")
    converted: Props = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    if "NoncurrentVersionExpirationInDays" in rule:
        days = int(rule["NoncurrentVersionExpirationInDays"])
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
    return converted


def _notifications(config: Props) -> Props:
    if set(config) != {"EventBridgeConfiguration"}:
        raise TemplateError("only EventBridge bucket notifications are provisioned locally")
    enabled = _bool(config["EventBridgeConfiguration"].get("EventBridgeEnabled", True))
    return {"EventBridgeConfiguration": {}} if enabled else {}


def _bucket_policy(aws: _Clients, _name: str, props: Props) -> None:
    document = dict(props["PolicyDocument"])
    statements = document["Statement"]
    statements = [statements] if isinstance(statements, dict) else statements
    if aws.drop_tls_only_rule:
        statements = [s for s in statements if not _denies_insecure_transport(s)]
    document["Statement"] = statements
    if document["Statement"]:
        aws("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))


def _denies_insecure_transport(statement: Props) -> bool:
    """The "HTTPS only" Deny, which the local stack leaves out on purpose.

    The local endpoints are plain HTTP, so on AWS semantics it would deny every request; and moto 5.2.5
    does worse: it evaluates bucket policies on object requests without any condition context, so it
    treats this Deny as unconditional and answers 403 to every object GET/PUT, even over HTTPS in
    mock_aws. Every other statement is provisioned as declared.
    """
    condition = statement.get("Condition")
    return (
        statement.get("Effect") == "Deny"
        and condition is not None
        and (
            {key: str(value).lower() for key, value in condition.get("Bool", {}).items()}
            == {"aws:SecureTransport": "false"}
            and set(condition) == {"Bool"}
        )
    )


# ---- SQS --------------------------------------------------------------------------------------
_QUEUE_ATTRIBUTES = _names(
    "ContentBasedDeduplication DeduplicationScope DelaySeconds FifoQueue FifoThroughputLimit "
    "KmsDataKeyReusePeriodSeconds KmsMasterKeyId MaximumMessageSize MessageRetentionPeriod "
    "ReceiveMessageWaitTimeSeconds RedriveAllowPolicy RedrivePolicy SqsManagedSseEnabled "
    "VisibilityTimeout"
)


def _queue(aws: _Clients, name: str, props: Props) -> None:
    sqs = aws("sqs")
    attributes = {key: _attribute(value) for key, value in props.items() if key in _QUEUE_ATTRIBUTES}
    try:
        sqs.create_queue(QueueName=name, Attributes=attributes)
    except ClientError as error:
        # The queue exists with other attributes (an earlier template): converge it.
        _ignore(error, "QueueAlreadyExists", "QueueNameExists")
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        mutable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
        sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _queue_policy(aws: _Clients, _name: str, props: Props) -> None:
    for url in props["Queues"]:
        aws("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})


# ---- DynamoDB ---------------------------------------------------------------------------------
_TABLE_API_KEYS = _names(
    "AttributeDefinitions KeySchema BillingMode GlobalSecondaryIndexes LocalSecondaryIndexes "
    "TableClass DeletionProtectionEnabled Tags"
)


def _table(aws: _Clients, name: str, props: Props) -> None:
    dynamodb = aws("dynamodb")
    create: Props = {key: value for key, value in props.items() if key in _TABLE_API_KEYS}
    if "ProvisionedThroughput" in props:
        create["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
    for index in create.get("GlobalSecondaryIndexes", []):
        if "ProvisionedThroughput" in index:
            index["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
    if "SSESpecification" in props:
        sse = dict(props["SSESpecification"])
        create["SSESpecification"] = {"Enabled": _bool(sse.pop("SSEEnabled")), **sse}
    if "StreamSpecification" in props:
        view = props["StreamSpecification"]["StreamViewType"]
        create["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    try:
        dynamodb.create_table(TableName=name, **create)
    except ClientError as error:
        _ignore(error, "ResourceInUseException")
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    if "TimeToLiveSpecification" in props:
        _time_to_live(dynamodb, name, props["TimeToLiveSpecification"])
    if "PointInTimeRecoverySpecification" in props:
        enabled = _bool(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
        )


def _throughput(throughput: Props) -> Props:
    return {key: int(value) for key, value in throughput.items()}


def _time_to_live(dynamodb: Any, name: str, spec: Props) -> None:
    wanted = {"AttributeName": spec["AttributeName"], "Enabled": _bool(spec["Enabled"])}
    current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    enabled = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    if enabled and wanted["Enabled"] and current.get("AttributeName") == wanted["AttributeName"]:
        return  # AWS rejects enabling TTL that is already enabled
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=wanted)


# ---- EventBridge ------------------------------------------------------------------------------
def _rule(aws: _Clients, name: str, props: Props) -> None:
    events = aws("events")
    rule: Props = {"Name": name, "State": props.get("State", "ENABLED")}
    for key in ("Description", "EventBusName", "RoleArn"):
        if key in props:
            rule[key] = props[key]
    pattern = props["EventPattern"]
    rule["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    events.put_rule(**rule)
    targets = props.get("Targets", [])
    for target in targets:
        if not str(target["Arn"]).startswith("arn:aws:sqs:"):
            raise TemplateError(f"rule {name}: only SQS targets are delivered locally")
    if targets:
        bus = {"EventBusName": props["EventBusName"]} if "EventBusName" in props else {}
        failed = events.put_targets(Rule=name, Targets=targets, **bus).get("FailedEntryCount", 0)
        if failed:
            raise RuntimeError(f"rule {name}: {failed} targets were rejected")


def _event_bus(aws: _Clients, name: str, props: Props) -> None:
    try:
        aws("events").create_event_bus(
            Name=name, **({"Description": props["Description"]} if "Description" in props else {})
        )
    except ClientError as error:
        _ignore(error, "ResourceAlreadyExistsException")


# ---- SES -----------------------------------------------------------------------------------------
def _email_identity(aws: _Clients, name: str, props: Props) -> None:
    """The sender's identity, verified at once: no one reads a verification link locally (moto's SES, like
    AWS's, refuses to send from an address that is not a verified identity)."""
    aws("ses").verify_email_identity(EmailAddress=name)


# ---- Secrets Manager --------------------------------------------------------------------------
def _secret(aws: _Clients, name: str, props: Props) -> None:
    """A given SecretString is (re)written; a generated one is made once and kept across restarts."""
    manager = aws("secretsmanager")
    given = props.get("SecretString")
    try:
        current = manager.get_secret_value(SecretId=name)["SecretString"]
    except ClientError as error:
        _ignore(error, "ResourceNotFoundException")
        current = None
    if current is None:
        value = given if given is not None else _generated_secret(props.get("GenerateSecretString", {}))
        manager.create_secret(Name=name, SecretString=value, Description=props.get("Description", ""))
    elif given is not None and given != current:
        manager.put_secret_value(SecretId=name, SecretString=given)


_GENERATE_KEYS = _names("SecretStringTemplate GenerateStringKey PasswordLength ExcludePunctuation")


def _generated_secret(spec: Props) -> str:
    """What CloudFormation's GenerateSecretString makes, for the options it is given here."""
    unsupported = set(spec) - _GENERATE_KEYS
    if unsupported:
        raise TemplateError(f"GenerateSecretString {sorted(unsupported)} are not provisioned locally")
    alphabet = string.ascii_letters + string.digits
    if not _bool(spec.get("ExcludePunctuation", False)):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "GenerateStringKey" not in spec:
        return password
    document = json.loads(spec.get("SecretStringTemplate", "{}"))
    document[spec["GenerateStringKey"]] = password
    return json.dumps(document)


# ---- CloudWatch -------------------------------------------------------------------------------
_ALARM_INTEGERS = _names("Period EvaluationPeriods DatapointsToAlarm")
_ALARM_KEYS = (
    _names(
        "AlarmDescription ActionsEnabled AlarmActions OKActions InsufficientDataActions MetricName "
        "Namespace Statistic ExtendedStatistic Dimensions Unit ComparisonOperator TreatMissingData "
        "EvaluateLowSampleCountPercentile Metrics ThresholdMetricId Threshold"
    )
    | _ALARM_INTEGERS
)


def _alarm(aws: _Clients, name: str, props: Props) -> None:
    alarm: Props = {key: value for key, value in props.items() if key in _ALARM_KEYS}
    for key in _ALARM_INTEGERS & set(alarm):
        alarm[key] = int(alarm[key])
    if "Threshold" in alarm:
        alarm["Threshold"] = float(alarm["Threshold"])
    if "ActionsEnabled" in alarm:
        alarm["ActionsEnabled"] = _bool(alarm["ActionsEnabled"])
    aws("cloudwatch").put_metric_alarm(AlarmName=name, **alarm)


# ---- Cognito ----------------------------------------------------------------------------------
# CloudFormation's UserPool properties that the CreateUserPool API takes under the same name.
_USER_POOL_KEYS = _names(
    "Policies UsernameAttributes AliasAttributes AutoVerifiedAttributes UsernameConfiguration "
    "AccountRecoverySetting AdminCreateUserConfig MfaConfiguration Schema DeletionProtection UserPoolTags "
    "EmailConfiguration VerificationMessageTemplate"
)
_USER_POOL_INTEGERS = _names("MinimumLength TemporaryPasswordValidityDays Priority")
_CLIENT_KEYS = _names(
    "ClientName GenerateSecret ExplicitAuthFlows AccessTokenValidity IdTokenValidity RefreshTokenValidity "
    "TokenValidityUnits PreventUserExistenceErrors EnableTokenRevocation ReadAttributes WriteAttributes "
    "AuthSessionValidity"
)
_CLIENT_INTEGERS = _names("AccessTokenValidity IdTokenValidity RefreshTokenValidity AuthSessionValidity")


def _user_pool(aws: _Clients, name: str, props: Props) -> str:
    """The pool named `name` (an earlier run's, on a persistent endpoint), else a new one: its id."""
    cognito = aws("cognito-idp")
    for page in cognito.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == name:
                return str(pool["Id"])
    config = _typed({key: value for key, value in props.items() if key in _USER_POOL_KEYS}, _USER_POOL_INTEGERS)
    return str(cognito.create_user_pool(PoolName=name, **config)["UserPool"]["Id"])


def _user_pool_client(aws: _Clients, name: str, props: Props) -> str:
    cognito = aws("cognito-idp")
    pool = props["UserPoolId"]
    for page in cognito.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool, MaxResults=60):
        for client in page["UserPoolClients"]:
            if client["ClientName"] == name:
                return str(client["ClientId"])
    config = _typed({key: value for key, value in props.items() if key in _CLIENT_KEYS}, _CLIENT_INTEGERS)
    config["ClientName"] = name
    return str(cognito.create_user_pool_client(UserPoolId=pool, **config)["UserPoolClient"]["ClientId"])


def _typed(value: Any, integers: frozenset[str], key: str = "") -> Any:
    """Template values as the API wants them: booleans and the named integers out of their strings."""
    if isinstance(value, dict):
        return {k: _typed(v, integers, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(item, integers) for item in value]
    if key in integers:
        return int(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


@dataclass(frozen=True)
class _Kind:
    """How one resource type is provisioned: the properties it maps, and the function that does it."""

    properties: frozenset[str]
    create: Provisioner


_PROVISIONERS: dict[str, _Kind] = {
    "AWS::S3::Bucket": _Kind(
        _names(
            "BucketName BucketEncryption PublicAccessBlockConfiguration OwnershipControls CorsConfiguration "
            "LifecycleConfiguration NotificationConfiguration"
        ),
        _bucket,
    ),
    "AWS::S3::BucketPolicy": _Kind(_names("Bucket PolicyDocument"), _bucket_policy),
    "AWS::SQS::Queue": _Kind(_QUEUE_ATTRIBUTES | {"QueueName"}, _queue),
    "AWS::SQS::QueuePolicy": _Kind(_names("Queues PolicyDocument"), _queue_policy),
    "AWS::DynamoDB::Table": _Kind(
        _TABLE_API_KEYS
        | _names(
            "TableName ProvisionedThroughput SSESpecification StreamSpecification TimeToLiveSpecification "
            "PointInTimeRecoverySpecification"
        ),
        _table,
    ),
    "AWS::Events::Rule": _Kind(_names("Name Description EventBusName RoleArn State EventPattern Targets"), _rule),
    "AWS::Events::EventBus": _Kind(_names("Name Description"), _event_bus),
    "AWS::SecretsManager::Secret": _Kind(_names("Name Description GenerateSecretString SecretString"), _secret),
    "AWS::CloudWatch::Alarm": _Kind(_ALARM_KEYS | {"AlarmName"}, _alarm),
    "AWS::Cognito::UserPool": _Kind(_USER_POOL_KEYS | {"UserPoolName"}, _user_pool),
    "AWS::SES::EmailIdentity": _Kind(_names("EmailIdentity"), _email_identity),
    "AWS::Cognito::UserPoolClient": _Kind(_CLIENT_KEYS | {"UserPoolId"}, _user_pool_client),
}
