"""Cold init and warm invocations of each function, each sample a fresh Python process.

A sample process gets the function's environment from the template (as the local stack gives its
workers, pointed at a running stack's moto endpoint), imports the handler, invokes it once with a sample
event from events/ (the cold invocation) and then again (warm). Processes are pinned to one core.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.client import StatusClient, photo_jpeg, upload, wait_final
from bench.stack import bench_stack
from bench.stats import ms, summary
from infra.runtime import worker_environment
from infra.settings import REPO_ROOT
from infra.testing import RunningStack

EVENTS = REPO_ROOT / "events"
SAMPLE_TASK_ID = "3f2b6c1e-8d4a-4b7e-9c1d-2a5e6f7a8b9c"
CHILD = Path(__file__).with_name("lambda_init.py")
PINNED_CPU = 1
# name: (the sample event, what its invocations do)
FUNCTIONS = {
    "ApiFunction": ("http-create-upload.json", "POST /uploads: a task and a presigned POST"),
    "StatusFunction": ("http-get-status.json", "GET /status of a finished task: a read + a presigned GET"),
    "ProcessorFunction": (
        "sqs-jobs-record.json",
        "a job for a task it does not know: SQS visibility, idempotency record, task lookup; no model run",
    ),
}


def _http_events(stack: RunningStack, name: str, task_id: str, count: int) -> list[Any]:
    """The sample event, about a real task; each from its own client address (documentation range), as the
    API counts a client's unfinished tasks and every invocation here creates one."""
    text = (EVENTS / FUNCTIONS[name][0]).read_text(encoding="utf-8").replace(SAMPLE_TASK_ID, task_id)
    events = [json.loads(text) for _ in range(count)]
    for event in events:
        event["requestContext"]["http"]["sourceIp"] = f"198.51.100.{secrets.randbelow(254) + 1}"
    return events


def _job_events(stack: RunningStack, count: int) -> list[Any]:
    """Real SQS records (the processor changes their visibility) on a queue of our own, so that the stack's
    processor does not take them; each for a different, unknown task."""
    sqs = stack.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"bench-coldstart-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sample = json.loads((EVENTS / FUNCTIONS["ProcessorFunction"][0]).read_text(encoding="utf-8"))["Records"][0]
    for _ in range(count):
        body = json.loads(sample["body"])
        body["detail"]["bucket"]["name"] = stack.physical_name("MediaBucket")
        body["detail"]["object"]["key"] = f"uploads/{uuid.uuid4()}"
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    received: list[dict[str, Any]] = []
    while len(received) < count:
        received += sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
    return [
        {
            "Records": [
                sample
                | {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "md5OfBody": message["MD5OfBody"],
                    "eventSourceARN": arn,
                }
            ]
        }
        for message in received
    ]


def _sample(stack: RunningStack, name: str, events: list[Any], workdir: Path) -> dict[str, Any]:
    events_path, out_path = workdir / f"{name}-events.json", workdir / f"{name}-times.json"
    events_path.write_text(json.dumps(events), encoding="utf-8")
    environment = worker_environment(stack.stack, stack.stack.functions[name], stack.aws_endpoint)
    spawned = time.time()
    subprocess.run(
        [sys.executable, str(CHILD), str(events_path), str(out_path), "--cpu", str(PINNED_CPU)],
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    times["interpreter_start_s"] = times.pop("process_started") - spawned
    return times


# Imports the handler as Lambda's init phase does, for `python -X importtime`.
_IMPORT_HANDLER = (
    "import importlib, os, sys\n"
    "sys.path[0] = os.environ['LAMBDA_TASK_ROOT']\n"
    "importlib.import_module(os.environ['_HANDLER'].rpartition('.')[0])\n"
)


def import_profile(stack: RunningStack, name: str, top: int = 8) -> dict[str, float]:
    """Where the init phase goes: `-X importtime` self times (ms) summed by top-level package, in a fresh
    process on the pinned core. A module's self time includes its module-level code: for leyline, creating
    the boto3 clients (botocore reads its endpoint and service models then) and the pydantic models."""
    environment = worker_environment(stack.stack, stack.stack.functions[name], stack.aws_endpoint)
    done = subprocess.run(
        ["taskset", "-c", str(PINNED_CPU), sys.executable, "-X", "importtime", "-c", _IMPORT_HANDLER],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    by_package: Counter[str] = Counter()  # microseconds
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            by_package[fields[2].strip().split(".")[0]] += int(fields[0])
    leading = dict(by_package.most_common(top))
    profile = {package: round(spent / 1000, 1) for package, spent in leading.items()}
    profile["(other)"] = round((sum(by_package.values()) - sum(leading.values())) / 1000, 1)
    return profile


def coldstart(samples: int, warm: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with bench_stack(1, "coldstart") as stack, tempfile.TemporaryDirectory() as workdir:
        poller = StatusClient(stack.api_url)
        finished, _ = upload(stack.api_url, photo_jpeg())
        wait_final(poller, finished)
        poller.close()
        for name, (event_file, does) in FUNCTIONS.items():
            runs = []
            for _ in range(samples):
                if name == "ProcessorFunction":
                    events = _job_events(stack, warm + 1)
                else:
                    events = _http_events(stack, name, finished, warm + 1)
                runs.append(_sample(stack, name, events, Path(workdir)))
            imports = [run["import_s"] for run in runs]
            firsts = [run["first_invocation_s"] for run in runs]
            results[name] = {
                "event": event_file,
                "does": does,
                "memory_mb": stack.stack.functions[name].memory_mb,
                "answers": sorted({str(answer) for run in runs for answer in run["answers"]}),
                "interpreter_start_ms": summary(ms([run["interpreter_start_s"] for run in runs]), 1),
                "import_ms": summary(ms(imports), 1),
                "first_invocation_ms": summary(ms(firsts), 1),
                "cold_total_ms": summary(ms([i + f for i, f in zip(imports, firsts, strict=True)]), 1),
                "warm_invocation_ms": summary(ms([second for run in runs for second in run["warm_invocation_s"]]), 2),
                "import_profile_ms": import_profile(stack, name),
            }
    return {"samples": samples, "warm_invocations_per_sample": warm, "pinned_cpu": PINNED_CPU, "functions": results}
