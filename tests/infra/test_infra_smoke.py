"""`python -m infra` on the real template.yaml: it starts, serves its routes, and stops without leftovers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from infra.testing import RunningStack

pytestmark = pytest.mark.integration


def test_the_product_stack_starts_serves_and_stops_cleanly(tmp_path: Path):
    stack = RunningStack(env={"LEYLINE_MODEL_SECONDS": "1"}, log_dir=tmp_path)
    with stack:
        # Given the stack of template.yaml is ready, Then every function has a warm worker
        for logical_id in stack.stack.functions:
            stack.wait_for_worker(logical_id)
        workers = stack.worker_pids()
        # And the template's resources exist on the embedded AWS endpoint
        stack.client("s3").head_bucket(Bucket=stack.physical_name("MediaBucket"))
        stack.client("dynamodb").describe_table(TableName=stack.physical_name("TasksTable"))
        # And routes the template declares reach their function; any other path goes to the $default
        # route's ApiFunction, which answers our 404 error object
        nowhere = requests.get(f"{stack.api_url}/nowhere", timeout=10)
        assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "NOT_FOUND")
        declared = requests.get(f"{stack.api_url}/status/00000000-0000-4000-8000-000000000000", timeout=10)
        assert "[StatusFunction] START RequestId" in stack.log_text()
        assert declared.headers["apigw-requestid"]
        assert stack.parameters["ModelSeconds"] == "1"
        # And the moto server runs in a process of its own, which the stack names
        moto = int(re.findall(r"embedded moto server, pid (\d+)", stack.log_text())[0])
        assert "infra.moto_process" in Path(f"/proc/{moto}/cmdline").read_bytes().decode()
    # When it is stopped (SIGINT; the `with` checks exit 0 and none of its processes left), Then it said so
    assert "[infra] stopped" in stack.log_text()
    assert workers
    assert not [pid for pid in [*workers, moto] if Path(f"/proc/{pid}").exists()]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_on_a_port_other_than_8080_the_page_origin_may_call_the_api_and_upload(tmp_path: Path, host: str):
    # Given a stack on a free port (never 8080) started as a user would: CorsAllowedOrigins not set
    stack = RunningStack(log_dir=tmp_path)
    assert stack.api_port != 8080
    assert "LEYLINE_PARAMETER_OVERRIDES" not in stack.env
    origin = f"http://{host}:{stack.api_port}"
    with stack:
        # When the page, served from that origin, asks for an upload ticket as a browser does (preflight first)
        api_preflight = _preflight(f"{stack.api_url}/uploads", origin, "content-type")
        ticket = requests.post(f"{stack.api_url}/uploads", json={}, headers={"Origin": origin}, timeout=10)
        # Then the API allows that origin
        assert api_preflight.headers.get("access-control-allow-origin") == origin
        assert ticket.headers.get("access-control-allow-origin") == origin

        # And the bucket allows the browser's POST of the file to the presigned URL (a browser needs a 2xx
        # preflight: moto's server echoes any Origin, and says no with a 403, as S3 does)
        bucket_preflight = _preflight(ticket.json()["upload"]["url"], origin, "content-type")
        assert bucket_preflight.status_code == 200, bucket_preflight.text
        assert bucket_preflight.headers.get("access-control-allow-origin") == origin
        assert "POST" in bucket_preflight.headers.get("access-control-allow-methods", "")

        # While an origin on another port is still refused, by the bucket and by the API
        stranger = f"http://{host}:1"
        assert _preflight(ticket.json()["upload"]["url"], stranger, "content-type").status_code == 403
        assert "access-control-allow-origin" not in _preflight(f"{stack.api_url}/uploads", stranger, "x").headers


def _preflight(url: str, origin: str, headers: str) -> requests.Response:
    """The OPTIONS request a browser sends before a cross-origin POST."""
    return requests.options(
        url,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers},
        timeout=10,
    )
