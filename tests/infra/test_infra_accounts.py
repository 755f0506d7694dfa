"""The local stack reads accounts mode from template.yaml as CloudFormation and SAM do: Conditions and Fn::If,
the user pool and its client provisioned with the ids Cognito assigns, and the HttpApi's JWT authorizer on
exactly the routes the SAM transform guards. In process (moto's mock), no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.jwt_authorizer import jwks_url
from infra.moto_dynamodb import partitioned_index_queries
from infra.provision import provision
from infra.template import Stack, TemplateError, load_stack
from tests.mocked_aws import provisioned
from tests.security.sam import transformed_template

ROOT = Path(__file__).parents[2]


def _stack(mode: str) -> Stack:
    return load_stack(ROOT / "template.yaml", parameter_overrides={"AccessMode": mode})


def _guarded_routes(stack: Stack) -> dict[str, str | None]:
    """Route key -> the authorizer the local gateway applies (None: public)."""
    assert stack.http_api is not None
    guarded = {}
    for spec in stack.functions.values():
        for method, path in spec.http_routes:
            authorizer = stack.http_api.authorizer_of(spec, (method, path))
            key = "X-AMAZON-APIGATEWAY-ANY-METHOD $default" if path == "$default" else f"{method} {path}"
            guarded[key] = None if authorizer is None else authorizer.name
    return guarded


def _sam_routes(transformed: dict[str, Any]) -> dict[str, str | None]:
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    routes = {}
    for path, operations in body["paths"].items():
        for method, operation in operations.items():
            names = [name for requirement in operation.get("security") or [] for name in requirement]
            routes[f"{method.upper()} {path}"] = None if names in ([], ["NONE"]) else names[0]
    return routes


@pytest.mark.parametrize("mode", ["open", "accounts"])
def test_the_local_gateway_guards_exactly_the_routes_the_sam_transform_guards(mode):
    # Given the template bound locally, and what the SAM transform deploys, in the same mode
    # Then every route has the same authorizer (or none) in both
    assert _guarded_routes(_stack(mode)) == _sam_routes(transformed_template(AccessMode=mode))


def test_open_mode_has_no_user_pool_no_authorizer_and_no_pool_outputs():
    stack = _stack("open")
    assert stack.conditions["AccountsMode"] is False
    assert "UserPool" not in stack.resources
    assert "EmailFunction" not in stack.functions  # task emails need accounts
    assert "UserPoolClient" not in stack.resources
    assert stack.http_api is not None
    assert stack.http_api.authorizers == ()
    assert "UserPoolId" not in stack.outputs()
    # Fn::If picked its false branch in the function's environment
    assert stack.functions["ApiFunction"].environment["USER_POOL_ID"] == ""
    assert stack.functions["ApiFunction"].environment["ACCESS_MODE"] == "open"


def test_accounts_mode_provisions_the_pool_and_binds_its_assigned_ids_everywhere():
    # Given the template in accounts mode, before provisioning: Cognito has not named the pool yet
    stack = _stack("accounts")
    assert "assigned when provisioned" in stack.ref("UserPool")

    # When it is provisioned (moto's mock)
    with provisioned(stack) as session:
        cognito = session.client("cognito-idp")
        pool_id, client_id = stack.ref("UserPool"), stack.ref("UserPoolClient")

        # Then the pool and client exist as the template declares them
        pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]
        assert pool["Name"] == "leyline-local-users"
        assert pool["UsernameAttributes"] == ["email"]
        assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 10
        client = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]
        assert client["ClientName"] == "leyline-page-and-cli"
        assert "ClientSecret" not in client
        assert sorted(client["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]
        assert client["AccessTokenValidity"] == 60

        # And the ids reach the function's environment and the authorizer (issuer, audience)
        assert stack.functions["ApiFunction"].environment["USER_POOL_ID"] == pool_id
        assert stack.functions["ApiFunction"].environment["USER_POOL_CLIENT_ID"] == client_id
        assert stack.http_api is not None
        (authorizer,) = stack.http_api.authorizers
        assert authorizer.issuer == f"https://cognito-idp.us-east-1.amazonaws.com/{pool_id}"
        assert authorizer.audiences == (client_id,)
        assert stack.outputs()["UserPoolId"] == pool_id

        # And provisioning again (a persistent endpoint) finds them rather than making new ones
        again = _stack("accounts")
        provision(again, session, None)
        assert (again.ref("UserPool"), again.ref("UserPoolClient")) == (pool_id, client_id)


def test_an_aws_issuers_keys_are_served_by_the_local_aws_endpoint():
    issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc"
    assert jwks_url(issuer, "http://127.0.0.1:4566") == "http://127.0.0.1:4566/us-east-1_Abc/.well-known/jwks.json"
    assert jwks_url(issuer, None) == f"{issuer}/.well-known/jwks.json"
    other = "https://login.example.com/tenant"
    assert jwks_url(other, "http://127.0.0.1:4566") == f"{other}/.well-known/jwks.json"


def _template(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(body)
    return path


CONDITIONAL = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Mode: {Type: String, Default: a, AllowedValues: [a, b, c]}
Conditions:
  IsA: !Equals [!Ref Mode, a]
  IsB: !Equals [b, !Ref Mode]
  AOrB: !Or [!Condition IsA, !Condition IsB]
  NeitherAB: !Not [!Condition AOrB]
  BAndNotA: !And [!Condition IsB, !Not [!Condition IsA]]
Resources:
  OnlyInA:
    Type: AWS::SQS::Queue
    Condition: IsA
  Always:
    Type: AWS::SQS::Queue
    Properties:
      DelaySeconds: !If [AOrB, 1, 2]
      MessageRetentionPeriod: !If [NeitherAB, 60, !Ref AWS::NoValue]
Outputs:
  OnlyInB:
    Condition: BAndNotA
    Value: b
"""


@pytest.mark.parametrize(
    ("mode", "resources", "properties", "outputs"),
    [
        ("a", {"OnlyInA", "Always"}, {"DelaySeconds": 1}, {}),
        ("b", {"Always"}, {"DelaySeconds": 1}, {"OnlyInB": "b"}),
        ("c", {"Always"}, {"DelaySeconds": 2, "MessageRetentionPeriod": 60}, {}),
    ],
)
def test_conditions_decide_resources_outputs_and_fn_if_as_cloudformation_does(
    tmp_path, mode, resources, properties, outputs
):
    stack = load_stack(_template(tmp_path, CONDITIONAL), parameter_overrides={"Mode": mode})
    assert set(stack.resources) == resources
    assert stack.properties("Always") == properties
    assert stack.outputs() == outputs


def test_an_unknown_or_circular_condition_is_a_template_error(tmp_path):
    unknown = CONDITIONAL.replace("Condition: IsA\n", "Condition: IsZ\n")
    with pytest.raises(TemplateError, match="IsZ"):
        load_stack(_template(tmp_path, unknown))
    circular = CONDITIONAL.replace("IsA: !Equals [!Ref Mode, a]", "IsA: !Not [!Condition NeitherAB]")
    with pytest.raises(TemplateError, match="depends on itself"):
        load_stack(_template(tmp_path, circular))


def test_an_index_query_on_moto_reads_its_partition_with_moto_s_own_answer():
    # Given moto with index queries that read one partition, and a table whose index holds three partitions
    partitioned_index_queries()
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "owner", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "ByOwner",
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        for index in range(30):
            item = {"id": {"S": f"task-{index:02d}"}, "at": {"N": str(index)}}
            if index % 3:  # a third of the items have no owner: they are in no partition of the sparse index
                item["owner"] = {"S": f"user-{index % 3}"}
            dynamodb.put_item(TableName="t", Item=item)

        # When one partition is read newest first, 4 at a time
        pages, start = [], None
        while True:
            page = dynamodb.query(
                TableName="t",
                IndexName="ByOwner",
                KeyConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": "user-1"}},
                ScanIndexForward=False,
                Limit=4,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            pages.append([item["id"]["S"] for item in page["Items"]])
            start = page.get("LastEvaluatedKey")
            if not start:
                break

        # Then it holds exactly that partition's items, in the index's order, across pages
        assert [task for page in pages for task in page] == [f"task-{i:02d}" for i in range(28, 0, -3)]
        # And a scan still sees every item (the table itself is untouched)
        assert dynamodb.scan(TableName="t")["Count"] == 30

        # And a write shows in the next query at once: a new item joins the partition, a moved one leaves it
        def partition(owner: str) -> list[str]:
            found = dynamodb.query(
                TableName="t",
                IndexName="ByOwner",
                KeyConditionExpression="#o = :o",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":o": {"S": owner}},
                ScanIndexForward=False,
            )
            return [item["id"]["S"] for item in found["Items"]]

        dynamodb.put_item(TableName="t", Item={"id": {"S": "new"}, "at": {"N": "99"}, "owner": {"S": "user-1"}})
        dynamodb.update_item(
            TableName="t",
            Key={"id": {"S": "task-28"}},
            UpdateExpression="SET #o = :o",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "user-2"}},
        )
        assert partition("user-1")[:2] == ["new", "task-25"]
        assert "task-28" in partition("user-2")
