"""AWS_ENDPOINT_URL points the local stack at an emulator the user runs (e.g. LocalStack) instead of moto."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from infra.testing import free_port
from tests.integration.polling import poll_until_final, upload_form
from tests.stack import local_stack

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "image.png"


@pytest.fixture
def users_emulator() -> Iterator[str]:
    """Stands in for an emulator the user started themselves."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_the_stack_uses_the_given_endpoint_and_starts_no_emulator_of_its_own(users_emulator, tmp_path):
    # Given AWS_ENDPOINT_URL pointing at the user's emulator
    with local_stack(tmp_path, env={"AWS_ENDPOINT_URL": users_emulator}) as stack:
        # Then the template's resources were created there
        bucket = stack.physical_name("MediaBucket")
        buckets = [b["Name"] for b in stack.client("s3").list_buckets()["Buckets"]]
        assert bucket in buckets
        assert stack.aws_endpoint == users_emulator
        # And nothing listens on the port the embedded moto server would have used
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", stack.aws_port)) != 0

        # And the original flow works end to end through it
        task_id = upload_form(stack.api_url, EXAMPLE.read_bytes())
        assert poll_until_final(stack.api_url, task_id)[-1]["state"] == "SUCCESS"
