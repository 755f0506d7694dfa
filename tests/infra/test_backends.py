"""infra/backends.py without starting anything: per-service endpoints, the backend setting, its account."""

from __future__ import annotations

import pytest

from infra.backends import BackendConfig, BackendError, Endpoints, endpoint_variable, running_backend
from infra.settings import Settings


def test_botocore_names_each_services_endpoint_variable_after_its_service_id():
    assert endpoint_variable("dynamodb") == "AWS_ENDPOINT_URL_DYNAMODB"
    assert endpoint_variable("dynamodbstreams") == "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"
    assert endpoint_variable("cognito-idp") == "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"


def test_endpoints_give_each_service_its_own_or_the_default():
    # Given LocalStack for everything but DynamoDB
    endpoints = Endpoints("http://127.0.0.1:4000", {"dynamodb": "http://127.0.0.1:4566"})
    # Then each service resolves to its endpoint, and the functions' variables say the same to botocore
    assert (endpoints.for_service("s3"), endpoints.for_service("dynamodb")) == (
        "http://127.0.0.1:4000",
        "http://127.0.0.1:4566",
    )
    assert endpoints.environment() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4000",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:4566",
    }


def test_the_backend_and_its_account_come_from_the_environment():
    assert (Settings.from_env({}).backend, Settings.from_env({}).account_id) == ("moto", "123456789012")
    localstack = Settings.from_env({"LEYLINE_BACKEND": "localstack"})
    assert (localstack.backend, localstack.account_id) == ("localstack", "000000000000")
    # And the bound template names LocalStack's account in its ARNs and queue URLs
    assert "/000000000000/" in localstack.load_stack().queue_url("JobsQueue")


def test_an_unknown_backend_is_refused_before_anything_starts():
    with pytest.raises(BackendError, match="LEYLINE_BACKEND"), running_backend(BackendConfig("docker")):
        pass


def test_the_test_helper_does_not_take_the_backend_s_name():
    # Given the test support module; Then its stack runner is not named after the LocalStack product
    import infra.testing

    assert not hasattr(infra.testing, "LocalStack")
    assert infra.testing.RunningStack.__name__ == "RunningStack"
