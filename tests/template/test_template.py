"""template.yaml is valid CloudFormation, SAM transforms it, and it says what the design promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from infra.backends import MOTO_ONLY_SERVICES, Endpoints
from infra.runtime import worker_environment
from infra.template import load_stack
from tests.security.sam import function_ids, functions_with_event, source_template, transformed_template

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    # `sam package` replaces local CodeUri and ContentUri paths with S3 locations, and AWS::LanguageExtensions
    # resolves the AccessMode conditions, before the SAM transform runs (tests/security/sam.py).
    return transformed_template()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


@pytest.mark.integration  # runs cfn-lint in a subprocess
def test_cfn_lint_is_clean():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_transform_yields_the_functions_routes_and_event_source_mappings(template, transformed):
    functions = resources_of_type(transformed, "AWS::Lambda::Function")
    # Every function the template declares, EmailFunction too (Condition: AccountsMode, kept by the transform,
    # created by CloudFormation in accounts mode)
    assert set(functions) == function_ids(template)
    routes = {
        res["Properties"]["RouteKey"] for res in resources_of_type(transformed, "AWS::ApiGatewayV2::Route").values()
    }
    if not routes:  # SAM folds HttpApi routes into the API's OpenAPI body
        api = resources_of_type(transformed, "AWS::ApiGatewayV2::Api")["HttpApi"]["Properties"]["Body"]
        routes = {f"{method.upper()} {path}" for path, ops in api["paths"].items() for method in ops}
    assert {"POST /uploads", "POST /upload", "GET /status/{task_id}", "GET /video/{task_id}"} <= routes

    mappings = {
        res["Properties"]["FunctionName"]["Ref"]: res["Properties"]
        for res in resources_of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    }
    # The line (one message group) goes to the dispatcher, up to a job per slot per invocation (SQS's most: 10)
    line = mappings["DispatchFunction"]
    assert line["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    index, choices = line["BatchSize"]["Fn::Select"]
    assert index == {"Ref": "ModelSlots"}
    assert [int(choices[n]) for n in range(1, 21)] == [min(10, n) for n in range(1, 21)]
    assert line["EventSourceArn"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert functions["DispatchFunction"]["Properties"]["ReservedConcurrentExecutions"] == 1
    # The slots' queue goes to the model: reserved concurrency ModelSlots, the mapping's maximum max(2, ModelSlots)
    slots = mappings["ProcessorFunction"]
    assert (slots["BatchSize"], slots["FunctionResponseTypes"]) == (1, ["ReportBatchItemFailures"])
    assert slots["EventSourceArn"] == {"Fn::GetAtt": ["SlotsQueue", "Arn"]}
    assert functions["ProcessorFunction"]["Properties"]["ReservedConcurrentExecutions"] == {"Ref": "ModelSlots"}
    index, choices = slots["ScalingConfig"]["MaximumConcurrency"]["Fn::Select"]
    assert index == {"Ref": "ModelSlots"}
    assert [int(choices[n]) for n in range(1, 21)] == [max(2, n) for n in range(1, 21)]


def test_model_slots_is_a_parameter_of_1_to_20_slots_defaulting_to_1_given_to_every_function(template):
    slots = template["Parameters"]["ModelSlots"]
    assert (slots["Type"], slots["Default"], slots["MinValue"], slots["MaxValue"]) == ("Number", 1, 1, 20)
    # Every function reads it (the status ETA, the client cap's Retry-After, the dispatcher)
    assert template["Globals"]["Function"]["Environment"]["Variables"]["MODEL_SLOTS"] == {"Ref": "ModelSlots"}


def test_video_seconds_is_a_parameter_of_1_to_10_seconds_defaulting_to_3_given_to_the_processor(template):
    video = template["Parameters"]["VideoSeconds"]
    assert (video["Type"], video["Default"], video["MinValue"], video["MaxValue"]) == ("Number", 3, 1, 10)
    processor = template["Resources"]["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    assert processor["VIDEO_SECONDS"] == {"Ref": "VideoSeconds"}


def _longest_timeout(template: dict[str, Any], function: str) -> int:
    """A function's Timeout, or the largest its parameter allows when it is one."""
    timeout = template["Resources"][function]["Properties"]["Timeout"]
    return int(template["Parameters"][timeout["Ref"]]["MaxValue"]) if isinstance(timeout, dict) else int(timeout)


def test_jobs_and_slots_queues_are_fifo_with_dedup_dlq_and_a_visibility_of_six_consumer_timeouts(template):
    resources = template["Resources"]
    for queue_id, consumer in (("JobsQueue", "DispatchFunction"), ("SlotsQueue", "ProcessorFunction")):
        queue = resources[queue_id]["Properties"]
        assert queue["FifoQueue"] is True
        assert queue["ContentBasedDeduplication"] is True
        assert queue["VisibilityTimeout"] >= 6 * _longest_timeout(template, consumer)
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
        assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    assert resources["JobsDeadLetterQueue"]["Properties"]["FifoQueue"] is True
    # The dispatcher outwaits a crashed run: its retry after the processor's Timeout + 10 s, then a model time
    longest_model = template["Parameters"]["ModelSeconds"]["MaxValue"]
    processor_timeout = _longest_timeout(template, "ProcessorFunction")
    assert resources["DispatchFunction"]["Properties"]["Timeout"] > processor_timeout + 10 + longest_model
    # And the longest model fits in the longest run the processor is given
    assert longest_model < processor_timeout


def test_uploaded_rule_sends_object_created_under_uploads_to_one_fifo_queue_in_one_group(template):
    rule = template["Resources"]["UploadedRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "uploads/"}]
    # One target only: EventBridge keeps no order across targets, and the line must have one order
    (intake,) = rule["Targets"]
    assert intake["Arn"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert intake["SqsParameters"]["MessageGroupId"]
    queue = template["Resources"]["IntakeQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is True  # EventBridge sends no deduplication id
    assert template["Resources"]["IntakeDeadLetterQueue"]["Properties"]["FifoQueue"] is True
    policy = template["Resources"]["EventsToQueuesPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "events.amazonaws.com"}
    assert policy["Resource"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}


def test_the_intake_is_the_only_sender_to_the_models_queue_and_both_dead_letter_queues_are_drained(template):
    intake = template["Resources"]["IntakeFunction"]["Properties"]
    assert intake["Environment"]["Variables"]["JOBS_QUEUE_URL"] == {"Ref": "JobsQueue"}
    dead_letters = template["Resources"]["DeadLetterFunction"]["Properties"]["Events"].values()
    assert {event["Properties"]["Queue"]["Fn::GetAtt"][0] for event in dead_letters} == {
        "JobsDeadLetterQueue",
        "IntakeDeadLetterQueue",
    }


def test_every_dead_letter_queue_has_an_alarm_on_its_depth(template):
    # Given every queue some other queue sends its dead letters to
    resources = template["Resources"]
    dead_letter_queues = {
        resource["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for resource in resources.values()
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in resource["Properties"]
    }
    # Then an alarm fires as soon as one of them holds a message (DeadLetterFunction is not draining it)
    watched = {
        dimension["Value"]["Fn::GetAtt"][0]
        for resource in resources.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and resource["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and resource["Properties"]["Threshold"] == 0
        for dimension in resource["Properties"]["Dimensions"]
        if dimension["Name"] == "QueueName"
    }
    assert dead_letter_queues == {
        "JobsDeadLetterQueue",
        "IntakeDeadLetterQueue",
        "WebhookDeadLetterQueue",
        "EmailDeadLetterQueue",
    }
    assert dead_letter_queues <= watched


def test_bucket_is_private_encrypted_and_notifies_eventbridge(template):
    bucket = template["Resources"]["MediaBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    assert "POST" in bucket["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]


def test_tasks_table_is_on_demand_with_ttl_a_client_index_and_an_owner_index(template):
    table = template["Resources"]["TasksTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # No QueueIndex: its one `ACTIVE` partition key carried every waiting task (issue 13)
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["ClientIndex", "OwnerIndex"]


def test_get_tasks_reads_an_index_keyed_by_owner_then_created_time_with_whole_tasks(template):
    # Given the tasks table's owner index
    table = template["Resources"]["TasksTable"]["Properties"]
    (index,) = [index for index in table["GlobalSecondaryIndexes"] if index["IndexName"] == "OwnerIndex"]

    # Then the user is the partition key (one partition per user: no hot key), the creation time sorts it,
    # and the whole task is projected (a page of status objects costs one Query, no GetItem per task)
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert {"AttributeName": "owner", "AttributeType": "S"} in table["AttributeDefinitions"]


def _route_security(transformed: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(route key -> its `security`, or None) and the security schemes of the deployed HttpApi's OpenAPI body."""
    body = resources_of_type(transformed, "AWS::ApiGatewayV2::Api")["HttpApi"]["Properties"]["Body"]
    security = {
        f"{method.upper()} {path}": operation.get("security")
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }
    return security, body.get("components", {}).get("securitySchemes", {})


PUBLIC_ROUTES = {"GET /", "GET /openapi.json", "GET /config", "X-AMAZON-APIGATEWAY-ANY-METHOD $default"}


def test_accounts_mode_puts_the_cognito_jwt_authorizer_on_every_task_route_and_keeps_three_routes_public():
    # Given what CloudFormation deploys with AccessMode=accounts
    security, schemes = _route_security(transformed_template(AccessMode="accounts"))

    # Then one JWT authorizer checks tokens of the template's user pool, for its app client
    jwt = schemes["CognitoUser"]["x-amazon-apigateway-authorizer"]
    assert jwt["type"] == "jwt"
    assert jwt["identitySource"] == "$request.header.Authorization"
    assert jwt["jwtConfiguration"] == {
        "issuer": {"Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${UserPool}"},
        "audience": [{"Ref": "UserPoolClient"}],
    }
    # And it guards every task route, GET /tasks among them; the page, its document, GET /config and the
    # $default route (unknown paths) stay public
    assert {"GET /tasks", "POST /uploads", "POST /upload", "DELETE /tasks/{task_id}"} <= set(security)
    for route, required in security.items():
        expected = [{"NONE": []}] if route in PUBLIC_ROUTES else [{"CognitoUser": []}]
        assert required == expected, route


def test_open_mode_deploys_no_authorizer_and_no_user_pool():
    # Given what CloudFormation deploys with the default AccessMode (open)
    transformed = transformed_template()
    security, schemes = _route_security(transformed)

    # Then no route asks for a token and no authorizer exists
    assert schemes == {}
    assert set(security.values()) == {None}
    # And the user pool and its client exist only under the AccountsMode condition
    assert transformed["Conditions"]["AccountsMode"] == {"Fn::Equals": [{"Ref": "AccessMode"}, "accounts"]}
    for name in ("UserPool", "UserPoolClient"):
        assert transformed["Resources"][name]["Condition"] == "AccountsMode"


def test_access_mode_defaults_to_open_and_the_shipped_deploy_config_turns_accounts_on(template):
    # Given the parameter and samconfig.toml's deploy parameters
    access_mode = template["Parameters"]["AccessMode"]
    deploy = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]

    # Then `make up` stays open (the original curl calls work), and a deploy to AWS is accounts
    assert access_mode["Default"] == "open"
    assert access_mode["AllowedValues"] == ["open", "accounts"]
    assert "AccessMode=accounts" in deploy["parameter_overrides"].split()
    # And AWS::LanguageExtensions runs first: it resolves the Fn::If inside the HttpApi's Auth for SAM
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_the_user_pool_signs_in_by_email_with_a_password_policy_and_a_public_client_with_stated_lifetimes(template):
    # Given the user pool and its app client
    pool = template["Resources"]["UserPool"]["Properties"]
    client = template["Resources"]["UserPoolClient"]["Properties"]

    # Then the email is the user name and is verified; passwords follow a policy
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    policy = pool["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 10
    assert (policy["RequireLowercase"], policy["RequireUppercase"], policy["RequireNumbers"]) == (True, True, True)
    # And the client (the page and the CLI) has no secret, signs in with a password and refreshes, nothing else
    assert client["GenerateSecret"] is False
    assert sorted(client["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]
    assert client["UserPoolId"] == {"Ref": "UserPool"}
    # And its token lifetimes are stated, not left to defaults
    assert (client["AccessTokenValidity"], client["IdTokenValidity"], client["RefreshTokenValidity"]) == (60, 60, 30)
    assert client["TokenValidityUnits"] == {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"}
    assert client["PreventUserExistenceErrors"] == "ENABLED"


def test_parameters_and_outputs(template):
    assert template["Parameters"]["ModelSeconds"]["Default"] == 30
    assert "MaxUploadBytes" in template["Parameters"]
    assert {"ApiUrl", "MediaBucketName", "TasksTableName"} <= set(template["Outputs"])


_ENDPOINT_VARIABLE = {"Fn::If": ["LocalEndpointGiven", {"Ref": "LocalEndpointUrl"}, {"Ref": "AWS::NoValue"}]}


def test_every_endpoint_variable_a_local_backend_sets_is_declared_for_every_function_and_absent_on_aws(template):
    # Given every AWS endpoint variable a backend of the local stack may set, which sam-env prints for
    # `sam local invoke --env-vars` (SAM sets only the variables the template declares)
    every_backend = Endpoints("http://127.0.0.1:4566", dict.fromkeys(MOTO_ONLY_SERVICES, "http://127.0.0.1:5000"))
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    # Then each is declared for every function, present only when LocalEndpointUrl is given, which it is not on AWS
    for name in every_backend.environment():
        assert variables.get(name) == _ENDPOINT_VARIABLE, name
    assert template["Parameters"]["LocalEndpointUrl"]["Default"] == ""
    given = {"Fn::Not": [{"Fn::Equals": [{"Ref": "LocalEndpointUrl"}, ""]}]}
    assert template["Conditions"]["LocalEndpointGiven"] == given


def test_deployed_functions_have_no_endpoint_variable_unless_local_endpoint_url_is_given():
    # Given what CloudFormation deploys with the defaults, and with LocalEndpointUrl given
    deployed = resources_of_type(transformed_template(), "AWS::Lambda::Function")
    pointed = resources_of_type(transformed_template(LocalEndpointUrl="http://emulator:4566"), "AWS::Lambda::Function")

    # Then by default no function has any AWS_ENDPOINT_URL* variable: its SDK calls AWS's own endpoints
    for logical_id, function in deployed.items():
        names = function["Properties"]["Environment"]["Variables"]
        assert not [name for name in names if name.startswith("AWS_ENDPOINT_URL")], logical_id
    # And with it given, every function's endpoint variables are that parameter
    for logical_id, function in pointed.items():
        endpoints = {k: v for k, v in function["Properties"]["Environment"]["Variables"].items() if "ENDPOINT" in k}
        assert list(endpoints.values()) == [{"Ref": "LocalEndpointUrl"}] * (1 + len(MOTO_ONLY_SERVICES)), logical_id
    # And the local stack reads the template alike: its functions get the endpoints from the runtime only
    for spec in load_stack(TEMPLATE).functions.values():
        assert not [name for name in spec.environment if name.startswith("AWS_ENDPOINT_URL")], spec.logical_id


# A cold start of the function's handler in a fresh process where the modules named in argv cannot be
# imported: `import av` or `from PIL import ...` then fails with "import of av halted".
_IMPORT_HANDLER_WITHOUT = (
    "import importlib, os, sys\n"
    "sys.modules.update(dict.fromkeys(sys.argv[1:]))\n"
    "sys.path[0] = os.environ['LAMBDA_TASK_ROOT']\n"
    "importlib.import_module(os.environ['_HANDLER'].rpartition('.')[0])\n"
)


def _start_handler(
    logical_id: str, *blocked: str, before: str = "", then: str = ""
) -> subprocess.CompletedProcess[str]:
    """Imports the function's handler in a fresh process with its environment; `blocked` modules cannot be
    imported there, and the code in `before` and `then` runs around the import."""
    stack = load_stack(TEMPLATE)
    environment = worker_environment(stack, stack.functions[logical_id], "http://127.0.0.1:9")  # no calls at import
    return subprocess.run(
        [sys.executable, "-c", before + _IMPORT_HANDLER_WITHOUT + then, *blocked],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.integration  # runs each handler's import in a fresh interpreter
@pytest.mark.parametrize("logical_id", sorted(load_stack(TEMPLATE).functions))
def test_a_function_carries_the_media_layer_exactly_when_its_code_needs_pillow_or_pyav(logical_id):
    # Given the function as the template declares it, its environment and whether MediaLayer is attached
    spec = load_stack(TEMPLATE).functions[logical_id]
    # When its handler is imported in a fresh process where neither Pillow nor PyAV can be imported
    started = _start_handler(logical_id, "av", "PIL")
    # Then it starts if and only if it goes without the layer: no function lacks a library it imports,
    # and none carries ~120 MiB it never uses
    needs_the_layer = started.returncode != 0
    if needs_the_layer:
        assert re.search(r"import of (av|PIL) halted", started.stderr), started.stderr
    assert needs_the_layer == ("MediaLayer" in spec.layers), started.stderr


@pytest.mark.integration  # runs each handler's import in a fresh interpreter
@pytest.mark.parametrize("logical_id", sorted(functions_with_event(source_template(), "HttpApi")))
def test_the_http_functions_start_without_pydantic(logical_id):
    # Given an HTTP function, whose cold start is on a user's request path
    # When its handler is imported in a fresh process where pydantic cannot be imported
    started = _start_handler(logical_id, "pydantic")
    # Then it starts: importing pydantic would add about 60 ms to every cold start (docs/benchmarks.md);
    # only building /openapi.json needs it
    assert started.returncode == 0, started.stderr


# Notes, at each garbage collection, which of the heavy libraries had begun to load.
_WATCH_THE_COLLECTOR = (
    "import gc, json, sys\n"
    "heavy_loading = []\n"
    "def _note(phase, info):\n"
    "    if phase == 'start':\n"
    "        heavy_loading.append(sorted({'boto3', 'botocore', 'aws_lambda_powertools'} & set(sys.modules)))\n"
    "gc.callbacks.append(_note)\n"
)
_REPORT_THE_COLLECTOR = (
    "gc.callbacks.remove(_note)\n"
    "print(json.dumps({'heavy_loading': heavy_loading, 'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n"
)


@pytest.mark.integration  # runs each handler's import in a fresh interpreter
@pytest.mark.parametrize("logical_id", sorted(load_stack(TEMPLATE).functions))
def test_the_init_phase_runs_no_garbage_collection_and_leaves_the_collector_on(logical_id):
    # Given a function's handler, as Lambda's init phase imports it, in a fresh process
    # When it has been imported
    started = _start_handler(logical_id, before=_WATCH_THE_COLLECTOR, then=_REPORT_THE_COLLECTOR)
    assert started.returncode == 0, started.stderr
    collector = json.loads(started.stdout.splitlines()[-1])
    # Then the collector never ran while boto3, Powertools and the clients were set up (it used to take
    # about 40 ms of a cold start, to free almost nothing), what they made is frozen out of later
    # collections, and the collector is on again for the invocations
    assert collector["heavy_loading"] == [[]] * len(collector["heavy_loading"])
    assert collector["frozen"] > 10_000
    assert collector["enabled"] is True


def test_the_slot_wake_queue_is_standard_encrypted_and_keeps_its_wakes_for_minutes_only(template):
    # Given SlotWakeQueue, which wakes the dispatcher when a model slot frees
    wakes = template["Resources"]["SlotWakeQueue"]["Properties"]
    # Then it is a standard queue (wakes need no order, any number mean the same), encrypted, and a wake nobody
    # took is gone within minutes (the dispatcher re-reads the line every 2 s anyway)
    assert "FifoQueue" not in wakes
    assert wakes["SqsManagedSseEnabled"] is True
    assert wakes["MessageRetentionPeriod"] <= 300
    # And the dispatcher waits on it, and every function that takes a task out of a slot knows it
    for function in ("DispatchFunction", "ProcessorFunction", "ApiFunction", "DeadLetterFunction"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["SLOT_WAKE_QUEUE_URL"] == {"Ref": "SlotWakeQueue"}, function
