"""What template.yaml promises about the deployed stack's security, read from the template and from
what the SAM transform makes of it (the IAM roles, the API stage)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.security.sam import (
    function_ids,
    functions_with_event,
    resources_of_type,
    source_template,
    transformed_template,
)

MANAGED = "arn:aws:iam::aws:policy/"

# The only AWS managed policies a function role may carry; SAM attaches them, none is ours to scope.
ALLOWED_MANAGED_POLICIES = {
    # Every function: create its log group/stream and write its logs (logs:* on log groups only).
    f"{MANAGED}service-role/AWSLambdaBasicExecutionRole",
    # Tracing: Active. X-Ray has no resource-level permissions, hence its Resource "*".
    f"{MANAGED}AWSXrayWriteOnlyAccess",
    # Every SQS event source: the event source mapping polls with the function's role (ReceiveMessage,
    # DeleteMessage, GetQueueAttributes on "*"); SAM adds it whenever a function has an SQS event.
    f"{MANAGED}service-role/AWSLambdaSQSQueueExecutionRole",
    # A DynamoDB stream source: the mapping reads the stream with the function's role (GetRecords,
    # GetShardIterator, DescribeStream, ListStreams on "*"); SAM adds it whenever a function has a DynamoDB event.
    f"{MANAGED}service-role/AWSLambdaDynamoDBExecutionRole",
}

# What each function's own code calls, and nothing more. A new AWS call in a function needs a line here
# and a statement in template.yaml (IAM is not enforced locally, so only this catches a missing grant);
# a new function needs an entry (test_each_function_is_granted_exactly_what_its_code_calls fails without one).
EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    "ApiFunction": {
        ("dynamodb:PutItem", "TasksTable"),
        ("dynamodb:Query", "TasksTable/index/ClientIndex"),
        ("s3:PutObject", "MediaBucket/uploads/*"),
        # Idempotency-Key on POST /upload(s): Powertools' records, in a table of their own
        ("dynamodb:GetItem", "SubmitIdempotencyTable"),
        ("dynamodb:PutItem", "SubmitIdempotencyTable"),
        ("dynamodb:UpdateItem", "SubmitIdempotencyTable"),
        ("dynamodb:DeleteItem", "SubmitIdempotencyTable"),
        # cancel and delete: read, cancel (conditional update; the line summary's copies rewritten by PutItem,
        # granted above) and delete a task; remove its upload and video
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:UpdateItem", "TasksTable"),
        ("dynamodb:DeleteItem", "TasksTable"),
        ("s3:DeleteObject", "MediaBucket/uploads/*"),
        ("s3:DeleteObject", "MediaBucket/videos/*"),
        # a cancel frees a running task's model slot: it wakes the dispatcher
        ("sqs:SendMessage", "SlotWakeQueue"),
    },
    "StatusFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("s3:GetObject", "MediaBucket/videos/*"),
        # GET /tasks: one Query of the caller's partition of the owner index (never a scan, never the table)
        ("dynamodb:Query", "TasksTable/index/OwnerIndex"),
        ("dynamodb:Query", "WebhookDeliveriesTable"),
    },
    "IntakeFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:UpdateItem", "TasksTable"),
        ("s3:DeleteObject", "MediaBucket/uploads/*"),
        ("sqs:SendMessage", "JobsQueue"),
        ("sqs:GetQueueUrl", "IntakeQueue"),
        ("sqs:ChangeMessageVisibility", "IntakeQueue"),
    },
    "ProcessorFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:UpdateItem", "TasksTable"),
        ("dynamodb:PutItem", "TasksTable"),  # the line summary's copies, rewritten whole with a run's end
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
        ("s3:GetObject", "MediaBucket/uploads/*"),
        ("s3:ListBucket", "MediaBucket"),
        ("s3:PutObject", "MediaBucket/videos/*"),
        ("s3:DeleteObject", "MediaBucket/videos/*"),
        ("sqs:GetQueueUrl", "SlotsQueue"),
        ("sqs:ChangeMessageVisibility", "SlotsQueue"),
        ("sqs:SendMessage", "SlotWakeQueue"),  # a run's end frees its slot: it wakes the dispatcher
    },
    "DispatchFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:UpdateItem", "TasksTable"),
        ("dynamodb:PutItem", "TasksTable"),  # the line summary's copies, rewritten whole with a start
        ("sqs:SendMessage", "SlotsQueue"),
        ("sqs:GetQueueUrl", "JobsQueue"),
        ("sqs:ChangeMessageVisibility", "JobsQueue"),  # its batch's lease
        # waits for a slot's wake (a long poll), deletes the wakes it took
        ("sqs:ReceiveMessage", "SlotWakeQueue"),
        ("sqs:DeleteMessage", "SlotWakeQueue"),
    },
    "DeadLetterFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:UpdateItem", "TasksTable"),
        ("dynamodb:PutItem", "TasksTable"),  # the line summary's copies, rewritten whole with a FAILURE
        ("sqs:SendMessage", "SlotWakeQueue"),  # a task that kept crashing leaves its slot: it wakes the dispatcher
    },
    "TaskEventsFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("s3:GetObject", "MediaBucket/videos/*"),
        ("events:PutEvents", "TaskEventBus"),
        # the mapping's OnFailure destination (SAM's statement): where the events it gave up on are recorded
        ("sqs:SendMessage", "TaskEventsFailedQueue"),
    },
    "WebhookFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("dynamodb:PutItem", "WebhookDeliveriesTable"),
        ("secretsmanager:GetSecretValue", "{'Ref': 'WebhookSigningSecret'}"),
        ("sqs:GetQueueUrl", "WebhookQueue"),
        ("sqs:ChangeMessageVisibility", "WebhookQueue"),
        ("sqs:SendMessage", "WebhookDeadLetterQueue"),
    },
    # accounts mode: the task (did it ask, whose is it), its owner's address by `sub`, one send from the sender
    "EmailFunction": {
        ("dynamodb:GetItem", "TasksTable"),
        ("cognito-idp:ListUsers", "UserPool"),
        ("ses:SendEmail", "ses:identity/NotificationSenderIdentity"),
    },
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return source_template()


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return transformed_template()


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(transformed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = transformed["Resources"][f"{function}Role"]["Properties"]
    return [
        statement for policy in role.get("Policies", []) for statement in _listed(policy["PolicyDocument"]["Statement"])
    ]


_THIS_ACCOUNTS_ARN = re.compile(r"^arn:\$\{AWS::Partition\}:([a-z0-9-]+):\$\{AWS::Region\}:\$\{AWS::AccountId\}:")


def _resource_name(resource: Any) -> str:
    """`!GetAtt X.Arn` -> X; `!Sub "${X.Arn}/rest"` -> X/rest; an ARN of this stack's account and region built
    with !Sub, `arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${X}` -> ses:identity/X;
    anything else as it is."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        text = _THIS_ACCOUNTS_ARN.sub(r"\1:", str(resource["Fn::Sub"]))
        return text.replace("${", "").replace(".Arn}", "").replace("}", "")
    return str(resource)


# ---- bucket -----------------------------------------------------------------------------------
def test_bucket_blocks_public_access_encrypts_and_grants_no_one_but_the_account(template):
    # Given the media bucket and its policy
    bucket = template["Resources"]["MediaBucket"]["Properties"]
    policies = resources_of_type(template, "AWS::S3::BucketPolicy")

    # Then every public access block is on, objects are encrypted at rest, ACLs are disabled
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert encryption["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket.get("AccessControl", "Private") == "Private"

    # And no bucket policy allows anyone: its only statements deny
    statements = [s for p in policies.values() for s in _listed(p["Properties"]["PolicyDocument"]["Statement"])]
    assert statements
    assert all(statement["Effect"] == "Deny" for statement in statements)


def test_bucket_refuses_every_request_that_is_not_tls(template):
    # Given the bucket policy
    (policy,) = resources_of_type(template, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "MediaBucket"}
    statements = _listed(policy["Properties"]["PolicyDocument"]["Statement"])

    # Then one statement denies every S3 action on the bucket and its objects without TLS, for everyone
    tls_only = [s for s in statements if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(tls_only) == 1
    statement = tls_only[0]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] in ("s3:*", ["s3:*"])
    assert statement["Resource"] == [{"Fn::GetAtt": ["MediaBucket", "Arn"]}, {"Fn::Sub": "${MediaBucket.Arn}/*"}]


# ---- API --------------------------------------------------------------------------------------
def test_every_route_of_the_http_api_is_throttled(template, transformed):
    # Given the HttpApi's default route settings
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]

    # Then a rate and a burst limit are set
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"]

    # And the deployed stage carries them, so they apply to every route ($default included)
    (stage,) = resources_of_type(transformed, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": settings["ThrottlingBurstLimit"],
        "ThrottlingRateLimit": settings["ThrottlingRateLimit"],
    }


def test_requests_no_route_matches_go_to_the_api_function_for_an_error_object(transformed):
    # Given the HttpApi's OpenAPI body after the transform
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]

    # Then its $default route takes any method and is integrated with ApiFunction
    default = body["paths"]["$default"]["x-amazon-apigateway-any-method"]
    assert default["isDefaultRoute"] is True
    assert "${ApiFunction.Arn}" in default["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]


# ---- CORS -------------------------------------------------------------------------------------
def test_cors_origins_come_from_one_parameter_whose_default_allows_no_wildcard(template, transformed):
    # Given the CorsAllowedOrigins parameter
    parameter = template["Parameters"]["CorsAllowedOrigins"]
    defaults = [origin.strip() for origin in str(parameter["Default"]).split(",")]

    # Then it is a list of explicit origins, none of them "*" or a pattern
    assert parameter["Type"] == "CommaDelimitedList"
    assert defaults
    assert all(origin.startswith(("http://", "https://")) and "*" not in origin for origin in defaults)

    # And both the HttpApi and the bucket take their allowed origins from it
    api_cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert api_cors["AllowOrigins"] == {"Ref": "CorsAllowedOrigins"}
    (rule,) = template["Resources"]["MediaBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == {"Ref": "CorsAllowedOrigins"}
    assert set(rule["AllowedMethods"]) <= {"GET", "POST"}

    # And the deployed API allows exactly those origins
    assert transformed["Resources"]["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]["allowOrigins"] == (
        defaults
    )
    assert not api_cors.get("AllowCredentials", False)


# ---- IAM --------------------------------------------------------------------------------------
def test_no_function_role_grants_a_wildcard_action_or_resource(template, transformed):
    # Given every function's role after the SAM transform
    for function in sorted(function_ids(template)):
        statements = _role_statements(transformed, function)
        assert statements, f"{function} has no inline policy"

        # Then no inline statement allows "*" or "service:*" actions, nor "*" resources, nor uses Not*
        for statement in statements:
            assert statement["Effect"] == "Allow"
            assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement
            for action in _listed(statement["Action"]):
                assert "*" not in action, f"{function} grants {action}"
            for resource in _listed(statement["Resource"]):
                assert resource != "*", f"{function} grants {statement['Action']} on every resource"
                assert not str(_resource_name(resource)).startswith("arn:"), f"{function}: {resource} is not ours"


def test_managed_policies_are_only_the_ones_sam_attaches(template, transformed):
    # Given every function's role, and which functions the template gives an SQS or a DynamoDB stream source
    sqs_triggered = functions_with_event(template, "SQS")
    stream_triggered = functions_with_event(template, "DynamoDB")
    assert sqs_triggered
    assert stream_triggered
    for function in sorted(function_ids(template)):
        managed = set(transformed["Resources"][f"{function}Role"]["Properties"].get("ManagedPolicyArns", []))

        # Then it carries only the listed exceptions: logs and X-Ray for all, polling for the triggered ones
        assert managed <= ALLOWED_MANAGED_POLICIES, f"{function}: {managed - ALLOWED_MANAGED_POLICIES}"
        sqs_role = f"{MANAGED}service-role/AWSLambdaSQSQueueExecutionRole"
        assert (sqs_role in managed) == (function in sqs_triggered), function
        stream_role = f"{MANAGED}service-role/AWSLambdaDynamoDBExecutionRole"
        assert (stream_role in managed) == (function in stream_triggered), function


def test_each_function_is_granted_exactly_what_its_code_calls(template, transformed):
    # Given every function the template declares: each has its expected grants listed (a new one needs its entry)
    functions = function_ids(template)
    assert functions == set(EXPECTED_GRANTS), (
        f"EXPECTED_GRANTS lacks {functions - set(EXPECTED_GRANTS)}, lists unknown {set(EXPECTED_GRANTS) - functions}"
    )
    # And every function's inline statements
    for function, expected in EXPECTED_GRANTS.items():
        granted = {
            (action, _resource_name(resource))
            for statement in _role_statements(transformed, function)
            for action in _listed(statement["Action"])
            for resource in _listed(statement["Resource"])
        }

        # Then they grant exactly the actions, on exactly the resources (and key prefixes), it uses
        assert granted == expected, f"{function}: extra {granted - expected}, missing {expected - granted}"
