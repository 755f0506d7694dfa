"""What 1,000 videos and an idle month cost on AWS: template.yaml's settings, operation counts recorded
from the local stack's AWS endpoint (moto's request recorder) and published us-east-1 list prices."""

from __future__ import annotations

import base64
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from bench.client import StatusClient, photo_jpeg, upload, wait_final
from bench.stack import bench_stack
from infra.settings import Settings
from infra.template import Stack

PRICES_AS_OF = (
    "2026-11: AWS list prices for us-east-1 as published on the pages named below "
    "(typed into bench/cost.py, not fetched by the benchmark), free tiers left out"
)
# price in USD per unit, the unit, and where it is published
PRICES: dict[str, tuple[float, str, str]] = {
    "lambda_gb_second": (0.0000166667, "GB-s (x86)", "AWS Lambda pricing"),
    "lambda_request": (0.20 / 1e6, "request", "AWS Lambda pricing"),
    "http_api_request": (1.00 / 1e6, "request (first 300 M/month)", "Amazon API Gateway pricing, HTTP APIs"),
    "sqs_standard_request": (0.40 / 1e6, "request (64 KB chunk)", "Amazon SQS pricing"),
    "sqs_fifo_request": (0.50 / 1e6, "request (64 KB chunk)", "Amazon SQS pricing"),
    "dynamodb_wru": (0.625 / 1e6, "write request unit, on-demand", "Amazon DynamoDB pricing (since 2024-11-01)"),
    "dynamodb_rru": (0.125 / 1e6, "read request unit, on-demand", "Amazon DynamoDB pricing (since 2024-11-01)"),
    "s3_put": (0.005 / 1000, "PUT/POST/COPY/LIST request", "Amazon S3 pricing, Standard"),
    "s3_get": (0.0004 / 1000, "GET/HEAD request", "Amazon S3 pricing, Standard"),
    "s3_gb_month": (0.023, "GB-month stored", "Amazon S3 pricing, Standard (first 50 TB)"),
    "transfer_out_gb": (0.09, "GB out to the internet (first 10 TB)", "Amazon EC2/S3 data transfer pricing"),
    "xray_trace": (5.00 / 1e6, "trace recorded", "AWS X-Ray pricing"),
    "logs_gb": (0.50, "GB ingested", "Amazon CloudWatch pricing, Logs"),
    "alarm_month": (0.10, "standard alarm-month", "Amazon CloudWatch pricing, alarms"),
    "eventbridge_aws_event": (0.0, "AWS service event on the default bus", "Amazon EventBridge pricing"),
}
POLL_SECONDS = 1.0  # the web page polls GET /status once a second (functions/leyline/web/index.html)
VIDEO_GETS = 2  # a browser's video element typically fetches the MP4 in two range requests
HTTP_FUNCTION_BILLED_SECONDS = 0.1  # API/Status/Intake at 256 MB on AWS: 4-15 ms here; 100 ms is conservative
# Lambda's SQS pollers on an idle queue (not published by AWS; commonly observed): 5 pollers, 20 s long polls.
IDLE_POLLERS, IDLE_RECEIVES_PER_POLLER_MINUTE = 5, 3
HOURS_PER_MONTH = 730
_RECORDED_TASKS = 2
_MODEL_SECONDS = 3


def _price(name: str) -> float:
    return PRICES[name][0]


# ---- operation counts, recorded --------------------------------------------------------------
def _entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        headers = {key.lower(): value for key, value in entry["headers"].items()}
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        entries.append(
            {"method": entry["method"], "url": entry["url"], "target": headers.get("x-amz-target"), "body": body}
        )
    return entries


def _classify(entries: list[dict[str, Any]], stack: Stack) -> Counter[str]:
    """Operations by kind: DynamoDB reads and writes (progress writes apart), S3 and SQS requests."""
    counts: Counter[str] = Counter()
    bucket = stack.physical_name("MediaBucket")
    for entry in entries:
        target, body = entry["target"] or "", entry["body"]
        if target.startswith("DynamoDB"):
            action = target.split(".")[1]
            if action in ("GetItem", "Query"):
                counts[f"dynamodb_{action}"] += 1
            elif action in ("PutItem", "UpdateItem", "DeleteItem"):
                counts["dynamodb_progress_write" if "progress = :progress" in body else "dynamodb_write"] += 1
                # A write that adds or removes the task from a sparse index also writes to that index.
                if "waiting_client" in body or action == "PutItem":
                    counts["dynamodb_index_write"] += 1
            elif action == "TransactWriteItems":
                # A move in or out of the line: the task and the line's items, each at twice a plain write's units.
                items = json.loads(body)["TransactItems"]
                counts["dynamodb_write"] += 2 * len(items)
                counts["dynamodb_index_write"] += sum("waiting_client" in json.dumps(item) for item in items)
        elif target.startswith("AmazonSQS"):
            counts[f"sqs_{target.split('.')[1]}"] += 1
        elif f"/{bucket}" in entry["url"]:
            counts["s3_get" if entry["method"] in ("GET", "HEAD") else "s3_put"] += 1
    return counts


def _function_log_bytes(lines: list[str], stack: Stack) -> int:
    """What the functions wrote (and their START/REPORT lines): what CloudWatch Logs would ingest."""
    prefixes = tuple(f"[{name}] " for name in stack.functions)
    return sum(len(line.encode()) - line.index("] ") - 1 for line in lines if line.startswith(prefixes))


def _reset(stack_endpoint: str) -> None:
    requests.post(f"{stack_endpoint}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()


def record_operations() -> dict[str, Any]:
    """Runs tasks with nobody polling, then polls a task in the model and a finished one, recording every
    request the functions make to AWS."""
    recording = Path(tempfile.mkdtemp(prefix="leyline-bench-cost-")) / "moto_recording.jsonl"
    recorder = {"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording)}
    with bench_stack(_MODEL_SECONDS, "cost", env=recorder) as stack:
        poller = StatusClient(stack.api_url)
        _reset(stack.aws_endpoint)
        log_start = len(stack.log_text().splitlines())
        for done in range(1, _RECORDED_TASKS + 1):
            upload(stack.api_url, photo_jpeg())
            deadline = time.monotonic() + _MODEL_SECONDS + 60
            while stack.log_text().count('"task finished"') < done:  # nobody polls: the processor's log tells
                if time.monotonic() > deadline:
                    raise TimeoutError(f"task {done} did not finish:\n{stack.log_tail()}")
                time.sleep(0.05)
        time.sleep(1.5)  # the intake and the pollers' deletes settle
        per_task = _classify(_entries(recording), stack.stack)
        log_bytes = _function_log_bytes(stack.log_text().splitlines()[log_start:], stack.stack)
        task_id, _ = upload(stack.api_url, photo_jpeg())
        time.sleep(1.0)  # in the model now, its encode well under way
        _reset(stack.aws_endpoint)
        polls = 5
        processing = [poller.status(task_id)["state"] for _ in range(polls)]
        in_model = _classify(_entries(recording), stack.stack)
        wait_final(poller, task_id)
        _reset(stack.aws_endpoint)
        for _ in range(polls):
            poller.status(task_id)
        finished = _classify(_entries(recording), stack.stack)
        poller.close()
    shutil.rmtree(recording.parent, ignore_errors=True)
    reads = ("dynamodb_GetItem", "dynamodb_Query")
    return {
        "model_seconds": _MODEL_SECONDS,
        "tasks": _RECORDED_TASKS,
        "per_task": {key: value / _RECORDED_TASKS for key, value in sorted(per_task.items())},
        "log_bytes_per_task": log_bytes / _RECORDED_TASKS,
        "states_polled_in_model": sorted(set(processing)),
        "reads_per_poll_in_model": {key: in_model[key] / polls for key in reads},
        "reads_per_poll_finished": {key: finished[key] / polls for key in reads},
    }


# ---- the bill -----------------------------------------------------------------------------------
def _line(item: str, quantity: float, price: str, note: str = "") -> dict[str, Any]:
    return {
        "item": item,
        "quantity": round(quantity, 3),
        "unit": PRICES[price][1],
        "unit_usd": _price(price),
        "usd": quantity * _price(price),
        "note": note,
    }


def bill(counts: dict[str, Any], stack: Stack, beyond_model_seconds: float, video_bytes: int) -> dict[str, Any]:
    """Cost of 1,000 videos (one at a time, nobody waiting in line) and of an idle month."""
    model = float(str(stack.parameters["ModelSeconds"]))
    retention_days = float(str(stack.parameters["RetentionDays"]))
    functions = stack.functions
    per_task: dict[str, float] = counts["per_task"]
    recorded_model = counts["model_seconds"]
    polls = math.ceil((model + beyond_model_seconds) / POLL_SECONDS) + 1  # in the model, then SUCCESS
    processor_seconds = model + beyond_model_seconds
    videos = 1000

    def gb_s(name: str, seconds: float) -> float:
        return functions[name].memory_mb / 1024 * seconds

    status_calls = polls + 1  # the polls and one GET /video (a 302)
    invocations = {"ApiFunction": 1, "IntakeFunction": 1, "ProcessorFunction": 1, "StatusFunction": status_calls}
    gb_seconds = (
        gb_s("ProcessorFunction", processor_seconds)
        + gb_s("ApiFunction", HTTP_FUNCTION_BILLED_SECONDS)
        + gb_s("IntakeFunction", HTTP_FUNCTION_BILLED_SECONDS)
        + gb_s("StatusFunction", HTTP_FUNCTION_BILLED_SECONDS) * status_calls
    )
    compute = (
        f"{functions['ProcessorFunction'].memory_mb}/1024 GB x {processor_seconds:g} s + "
        f"{functions['StatusFunction'].memory_mb}/1024 GB x {HTTP_FUNCTION_BILLED_SECONDS:g} s x "
        f"{status_calls + 2} = {gb_seconds:.2f} GB-s per video"
    )
    progress_writes = per_task.get("dynamodb_progress_write", 0) / recorded_model * model
    writes = per_task.get("dynamodb_write", 0) + progress_writes + per_task.get("dynamodb_index_write", 0)
    in_model, finished = counts["reads_per_poll_in_model"], counts["reads_per_poll_finished"]
    poll_rru = (polls - 1) * (in_model["dynamodb_GetItem"] + 0.5 * in_model["dynamodb_Query"]) + (
        finished["dynamodb_GetItem"] + 0.5 * finished["dynamodb_Query"]
    ) * (1 + 1)  # SUCCESS poll and GET /video
    task_rru = per_task.get("dynamodb_GetItem", 0) + 0.5 * per_task.get("dynamodb_Query", 0)
    # On AWS each message is received once per queue; the local pollers' empty receives are not counted.
    jobs_fifo = 1 + 1 + per_task.get("sqs_ChangeMessageVisibility", 0) + 1  # send, receive, visibility, delete
    intake_fifo = 1 + 1 + 1  # EventBridge's send, receive, delete
    image_bytes = len(photo_jpeg())
    stored_gb_months = (image_bytes + video_bytes) / 1e9 * retention_days / (HOURS_PER_MONTH / 24)
    traces = sum(invocations.values())
    lines = [
        _line("Lambda compute", gb_seconds * videos, "lambda_gb_second", compute),
        _line(
            "Lambda requests", traces * videos, "lambda_request", ", ".join(f"{k} {v}" for k, v in invocations.items())
        ),
        _line(
            "HTTP API requests", (1 + status_calls) * videos, "http_api_request", "POST /uploads + polls + GET /video"
        ),
        _line("SQS FIFO requests (jobs)", jobs_fifo * videos, "sqs_fifo_request", "send, receive, visibility, delete"),
        _line("SQS FIFO requests (intake)", intake_fifo * videos, "sqs_fifo_request", "send, receive, delete"),
        _line("DynamoDB writes", writes * videos, "dynamodb_wru", f"{progress_writes:.0f} of them progress"),
        _line("DynamoDB reads", (task_rru + poll_rru) * videos, "dynamodb_rru", "Query on a GSI: 0.5 RRU"),
        _line("S3 PUT/POST", per_task.get("s3_put", 0) * videos, "s3_put", "upload + video"),
        _line("S3 GET/HEAD", (per_task.get("s3_get", 0) + VIDEO_GETS) * videos, "s3_get", "processor + viewer"),
        _line("S3 storage", stored_gb_months * videos, "s3_gb_month", f"image + video kept {retention_days:g} days"),
        _line("X-Ray traces (upper bound)", traces * videos, "xray_trace", "Tracing: Active, every invocation"),
        _line("CloudWatch Logs", counts["log_bytes_per_task"] / 1e9 * videos, "logs_gb", "as logged locally"),
        _line("EventBridge", videos, "eventbridge_aws_event", "S3 events are free"),
        _line("Data transfer out", video_bytes / 1e9 * videos, "transfer_out_gb", "each video downloaded once"),
    ]
    alarms = sum(1 for resource in stack.resources.values() if resource.type == "AWS::CloudWatch::Alarm")
    sqs_mappings = [(name, source) for name, spec in functions.items() for source in spec.sqs_sources]
    idle_receives = IDLE_POLLERS * IDLE_RECEIVES_PER_POLLER_MINUTE * 60 * HOURS_PER_MONTH
    idle = [
        _line(
            f"SQS empty receives, {name} <- {source.queue_logical_id}",
            idle_receives,
            "sqs_fifo_request"
            if stack.properties(source.queue_logical_id).get("FifoQueue")
            else "sqs_standard_request",
            f"{IDLE_POLLERS} pollers x {IDLE_RECEIVES_PER_POLLER_MINUTE}/min",
        )
        for name, source in sqs_mappings
    ] + [_line("CloudWatch alarms", alarms, "alarm_month", f"{alarms} alarms")]
    for line in lines + idle:
        line["usd"] = round(line["usd"], 4)
    return {
        "template": {
            "ModelSeconds": model,
            "RetentionDays": retention_days,
            "memory_mb": {name: spec.memory_mb for name, spec in functions.items()},
            "timeout_s": {name: spec.timeout_seconds for name, spec in functions.items()},
        },
        "assumptions": {
            "poll_every_s": POLL_SECONDS,
            "polls_per_video": polls,
            "processor_billed_s": round(processor_seconds, 3),
            "http_function_billed_s": HTTP_FUNCTION_BILLED_SECONDS,
            "image_bytes": image_bytes,
            "video_bytes": video_bytes,
        },
        "per_1000_videos": lines,
        "per_1000_videos_usd": round(sum(line["usd"] for line in lines), 2),
        "idle_month": idle,
        "idle_month_usd": round(sum(line["usd"] for line in idle), 2),
        "prices_as_of": PRICES_AS_OF,
        "prices": {name: {"usd": usd, "unit": unit, "source": source} for name, (usd, unit, source) in PRICES.items()},
    }


def cost(beyond_model_seconds: float, video_bytes: int) -> dict[str, Any]:
    counts = record_operations()
    return {"recorded": counts} | bill(counts, Settings().load_stack(), beyond_model_seconds, video_bytes)
