"""infra.template: the SAM template read as a local stack (no AWS, no processes)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from infra.event_sources import pollers_for
from infra.functions import Console, FunctionPool
from infra.gateway import routes_of
from infra.provision import provisioning_order
from infra.runtime import capacity_of
from infra.settings import Settings
from infra.template import SqsSource, TemplateError, load_stack, parse_parameter_overrides

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"
FIXTURE = Path(__file__).parent / "fixtures" / "template.yaml"


@pytest.fixture(scope="module")
def product():
    return load_stack(TEMPLATE)


@pytest.fixture(scope="module")
def fixture():
    return load_stack(FIXTURE)


def write_template(tmp_path: Path, resources: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(
        f'AWSTemplateFormatVersion: "2010-09-09"\nTransform: AWS::Serverless-2016-10-31\nResources:\n{resources}'
    )
    return path


def test_product_functions_come_with_their_routes_handlers_and_code_dir(product):
    # Given template.yaml, When it is loaded, Then routes and handlers are the template's
    assert ("POST", "/uploads") in product.functions["ApiFunction"].http_routes
    assert ("GET", "/status/{task_id}") in product.functions["StatusFunction"].http_routes
    processor = product.functions["ProcessorFunction"]
    assert processor.handler == "leyline.handlers.processor.handler"
    assert processor.code_dir == ROOT / "functions"
    assert processor.code_dir.is_absolute()


def test_globals_are_merged_and_the_function_keeps_its_own_values(product):
    processor = product.functions["ProcessorFunction"]
    # Then the function's own Timeout/MemorySize win over Globals, the rest comes from Globals
    assert (processor.timeout_seconds, processor.memory_mb, processor.reserved_concurrency) == (90, 1769, 1)
    assert product.functions["ApiFunction"].timeout_seconds == 10
    assert product.functions["ApiFunction"].reserved_concurrency is None
    # And the environment is Globals' plus the function's, every value resolved to a string
    assert processor.environment["IDEMPOTENCY_TABLE"] == product.physical_name("IdempotencyTable")
    assert processor.environment["TASKS_TABLE"] == product.physical_name("TasksTable")
    assert processor.environment["MODEL_SECONDS"] == "30"
    # And ApiFunction has an IDEMPOTENCY_TABLE of its own: its submits' table, not the model's
    assert product.functions["ApiFunction"].environment["IDEMPOTENCY_TABLE"] == product.physical_name(
        "SubmitIdempotencyTable"
    )
    assert "IDEMPOTENCY_TABLE" not in product.functions["StatusFunction"].environment


def test_sqs_event_sources_as_declared(product):
    assert product.functions["DispatchFunction"].sqs_sources == (
        SqsSource("JobsQueue", batch_size=1, report_batch_item_failures=True),
    )
    assert product.functions["ProcessorFunction"].sqs_sources == (
        SqsSource("SlotsQueue", batch_size=1, report_batch_item_failures=True, maximum_concurrency=2),
    )


@pytest.mark.parametrize("slots", [1, 2, 3, 10, 11, 20])
def test_the_local_runtime_runs_one_model_worker_and_one_poller_per_slot_as_lambda_would(slots):
    # Given the template with ModelSlots = slots
    stack = load_stack(TEMPLATE, parameter_overrides={"ModelSlots": str(slots)})
    processor, dispatcher = stack.functions["ProcessorFunction"], stack.functions["DispatchFunction"]
    # Then the processor's reserved concurrency and its mapping's maximum follow it (Lambda's floor of 2)
    assert processor.reserved_concurrency == slots
    (source,) = processor.sqs_sources
    assert source.maximum_concurrency == max(2, slots)
    # And the local runtime gives it a pool of `slots` workers polled by `slots` pollers; the line one of each
    pool = FunctionPool(processor, {}, Console(io.StringIO()), capacity=capacity_of(processor))
    assert (pool.capacity, pollers_for(source, pool)) == (slots, slots)
    line = FunctionPool(dispatcher, {}, Console(io.StringIO()), capacity=capacity_of(dispatcher))
    assert (line.capacity, pollers_for(dispatcher.sqs_sources[0], line)) == (1, 1)
    # And the line's batches hold up to one job per slot (SQS receives at most 10 at once)
    assert dispatcher.sqs_sources[0].batch_size == min(10, slots)
    # And every function is told how many slots there are (the ETAs count them)
    assert {spec.environment["MODEL_SLOTS"] for spec in stack.functions.values()} == {str(slots)}


def test_physical_names_are_deterministic_and_valid(product):
    # Then the bucket is lowercase, FIFO queues end in .fifo, and names derive from stack + logical id
    assert product.physical_name("MediaBucket") == "leyline-local-mediabucket"
    assert product.physical_name("JobsQueue") == "leyline-local-JobsQueue.fifo"
    assert product.physical_name("IntakeQueue") == "leyline-local-IntakeQueue.fifo"
    assert product.ref("JobsQueue") == "https://sqs.us-east-1.amazonaws.com/123456789012/leyline-local-JobsQueue.fifo"
    assert product.arn("JobsQueue") == "arn:aws:sqs:us-east-1:123456789012:leyline-local-JobsQueue.fifo"
    assert product.get_att("JobsDeadLetterQueue", "QueueName") == "leyline-local-JobsDeadLetterQueue.fifo"
    assert load_stack(TEMPLATE, stack_name="other").physical_name("MediaBucket") == "other-mediabucket"


def test_intrinsics_resolve_sub_getatt_and_comma_delimited_lists(product):
    policy = product.properties("MediaBucketPolicy")["PolicyDocument"]["Statement"][0]
    assert policy["Resource"] == ["arn:aws:s3:::leyline-local-mediabucket", "arn:aws:s3:::leyline-local-mediabucket/*"]
    assert product.http_api is not None
    assert product.http_api.cors is not None
    assert product.http_api.cors.allow_origins == ("http://localhost:8080", "http://127.0.0.1:8080")
    assert product.outputs()["MediaBucketName"] == "leyline-local-mediabucket"
    assert product.resolve({"Fn::Join": ["-", [{"Ref": "AWS::Region"}, "x"]]}) == "us-east-1-x"
    assert product.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}) == "b"
    assert product.resolve({"Fn::Sub": ["${A}-${!Literal}", {"A": {"Ref": "AWS::AccountId"}}]}) == (
        "123456789012-${Literal}"
    )
    assert product.resolve({"k": {"Ref": "AWS::NoValue"}, "j": 1}) == {"j": 1}


def test_parameter_overrides_reach_the_environment():
    stack = load_stack(TEMPLATE, parameter_overrides={"ModelSeconds": "2", "CorsAllowedOrigins": "http://a,http://b"})
    assert stack.functions["ProcessorFunction"].environment["MODEL_SECONDS"] == "2"
    assert stack.parameters["CorsAllowedOrigins"] == ["http://a", "http://b"]


@pytest.mark.parametrize(
    "overrides",
    [{"ModelSeconds": "0"}, {"ModelSeconds": "soon"}, {"NoSuchParameter": "1"}],
)
def test_invalid_parameter_overrides_are_refused(overrides):
    with pytest.raises(TemplateError):
        load_stack(TEMPLATE, parameter_overrides=overrides)


def test_settings_read_sam_style_overrides_and_the_model_seconds_alias():
    settings = Settings.from_env(
        {
            "LEYLINE_PARAMETER_OVERRIDES": "RetentionDays=3 CorsAllowedOrigins='http://x'",
            "LEYLINE_MODEL_SECONDS": "1",
            "LEYLINE_API_PORT": "9000",
        }
    )
    assert settings.parameter_overrides == {"RetentionDays": "3", "CorsAllowedOrigins": "http://x", "ModelSeconds": "1"}
    assert (settings.api_port, settings.aws_port, settings.aws_endpoint) == (9000, 4566, None)
    with pytest.raises(TemplateError):
        parse_parameter_overrides("JustAWord")


def test_routes_are_tried_most_specific_first(fixture):
    # Given routes with literal, variable and greedy paths, When ordered, Then greedy comes last
    keys = [route.key for route in routes_of(fixture)]
    assert keys.index("GET /plain") < keys.index("GET /echo/{name}") < keys.index("ANY /files/{proxy+}")
    files = next(route for route in routes_of(fixture) if route.path == "/files/{proxy+}")
    assert files.match("DELETE", "/files/a/b%20c") == {"proxy": "a/b c"}
    assert files.match("GET", "/files") is None


def test_an_unsupported_event_type_fails_loudly(tmp_path):
    # Given a function triggered by something the local runtime does not emulate
    path = write_template(
        tmp_path,
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.12\n      CodeUri: .\n      Handler: m.h\n"
        "      Events:\n        Tick:\n          Type: Schedule\n          Properties: {Schedule: rate(1 minute)}\n",
    )
    # When it is loaded, Then it is refused rather than silently never triggered
    with pytest.raises(TemplateError, match="Schedule"):
        load_stack(path)


def test_an_unsupported_function_property_fails_loudly(tmp_path):
    path = write_template(
        tmp_path,
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.12\n      CodeUri: .\n      Handler: m.h\n      Layers: [arn:aws:lambda:l]\n",
    )
    with pytest.raises(TemplateError, match="Layers"):
        load_stack(path)


def test_a_layer_of_the_template_is_accepted_and_not_provisioned(tmp_path):
    # Given a function using a layer the template builds (its packages are installed locally)
    path = write_template(
        tmp_path,
        "  Lib:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {ContentUri: lib/}\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      Runtime: python3.12\n      CodeUri: .\n      Handler: m.h\n      Layers: [!Ref Lib]\n",
    )
    # When it is loaded
    stack = load_stack(path)
    # Then the function knows its layer, `!Ref` gives a layer version ARN, and nothing is created for it
    assert stack.functions["Fn"].layers == ("Lib",)
    assert stack.ref("Lib").startswith("arn:aws:lambda:us-east-1:")
    assert ":layer:" in stack.ref("Lib")
    assert provisioning_order(stack) == []
