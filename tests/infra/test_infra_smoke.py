"""`python -m infra` on the real template.yaml: it starts, serves its routes, and stops without leftovers."""

from __future__ import annotations

from pathlib import Path

import requests

from infra.testing import LocalStack


def test_the_product_stack_starts_serves_and_stops_cleanly(tmp_path: Path):
    stack = LocalStack(env={"LEYLINE_MODEL_SECONDS": "1"}, log_dir=tmp_path)
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
    # When it is stopped (SIGINT; the `with` checks exit 0 and no worker left), Then it said so
    assert "[infra] stopped" in stack.log_text()
    assert workers
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
