"""The local stack's settings from the environment: where the functions' own AWS calls go."""

from __future__ import annotations

from infra.settings import Settings

PROXY = "http://127.0.0.1:4999"


def test_the_functions_can_be_given_an_aws_endpoint_of_their_own():
    # Given LEYLINE_FUNCTIONS_AWS_ENDPOINT (e.g. a proxy in front of the stack's endpoint)
    settings = Settings.from_env({"LEYLINE_FUNCTIONS_AWS_ENDPOINT": PROXY, "LEYLINE_AWS_PORT": "4566"})
    # Then the functions' endpoint is that one, while the stack keeps its own (the embedded moto server)
    assert settings.functions_aws_endpoint == PROXY
    assert (settings.aws_endpoint, settings.aws_port) == (None, 4566)


def test_without_it_the_functions_use_the_stacks_endpoint():
    # Given no LEYLINE_FUNCTIONS_AWS_ENDPOINT (or an empty one), Then there is no separate functions' endpoint
    assert Settings.from_env({}).functions_aws_endpoint is None
    assert Settings.from_env({"LEYLINE_FUNCTIONS_AWS_ENDPOINT": ""}).functions_aws_endpoint is None
