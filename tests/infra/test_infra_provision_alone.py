"""infra.provision on templates and settings of the test's own, each provisioned into a fresh moto mock.

Apart from test_infra_provision.py, whose resources live in one moto mock for the whole module: a mock started
inside another shares its state, so these would see (and change) those resources.
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from infra.provision import provision
from infra.settings import Settings
from infra.template import TemplateError, load_stack


def test_an_unknown_resource_type_fails_before_anything_is_created(tmp_path, monkeypatch):
    # Given a template with a bucket and a resource type the local stack does not provision
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n"
        "  Topic:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: t}\n"
    )
    stack = load_stack(path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        # When provisioning, Then it fails loudly, and nothing was half-created
        with pytest.raises(TemplateError, match="AWS::SNS::Topic"):
            provision(stack, session, None)
        assert session.client("s3").list_buckets()["Buckets"] == []


def test_a_local_stack_on_another_port_lets_its_page_upload_to_the_bucket(monkeypatch):
    # Given the local stack's settings for API port 18080, CorsAllowedOrigins not set
    settings = Settings.from_env({"LEYLINE_API_PORT": "18080", "LEYLINE_PARAMETER_OVERRIDES": "RetentionDays=3"})
    stack = settings.load_stack()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=stack.region)
        # When it is provisioned
        provision(stack, session, None)
        # Then the bucket's CORS (read back from moto) and the API's allow the page's origins on 18080
        rule = session.client("s3").get_bucket_cors(Bucket=stack.physical_name("MediaBucket"))["CORSRules"][0]
    expected = ["http://localhost:18080", "http://127.0.0.1:18080"]
    assert rule["AllowedOrigins"] == expected
    cors = stack.http_api.cors if stack.http_api else None
    assert cors is not None
    assert list(cors.allow_origins) == expected
    # And the user's other overrides still apply
    assert stack.parameters["RetentionDays"] == "3"
