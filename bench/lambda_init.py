"""One cold execution environment, timed: `python bench/lambda_init.py EVENTS_JSON OUT_JSON [--cpu N]`.

bench.coldstart runs it in a fresh process with the function's environment (LAMBDA_TASK_ROOT, _HANDLER
and the template's variables). It imports the handler, invokes it with the first event (the cold
invocation) and then with each of the others (warm), and writes the times to OUT_JSON. Only the standard
library is loaded before the handler's import, as in Lambda's Python runtime.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import uuid
from typing import Any

PROCESS_STARTED = time.time()


class LambdaContext:
    """What the handlers read of Lambda's context object."""

    def __init__(self, timeout_seconds: int) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "bench"
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", help="a JSON list: the cold invocation's event, then the warm ones'")
    parser.add_argument("out", help="where to write the times (JSON)")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core (one vCPU, like a 1769 MB Lambda)")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with open(args.events, encoding="utf-8") as file:
        events: list[Any] = json.load(file)
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[0] = task_root  # /var/task: the code first, as Lambda puts it
    os.chdir(task_root)
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    timeout = int(os.environ["AWS_LAMBDA_FUNCTION_TIMEOUT"])

    began = time.perf_counter()
    handler = getattr(importlib.import_module(module_name), function_name)
    imported = time.perf_counter()
    results = [handler(events[0], LambdaContext(timeout))]
    first = time.perf_counter()
    warm = []
    for event in events[1:]:
        start = time.perf_counter()
        results.append(handler(event, LambdaContext(timeout)))
        warm.append(time.perf_counter() - start)

    times = {
        "process_started": PROCESS_STARTED,
        "import_s": imported - began,
        "first_invocation_s": first - imported,
        "warm_invocation_s": warm,
        "answers": [_answer(result) for result in results],
    }
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(times, file)


def _answer(result: Any) -> Any:
    """What the invocation answered, briefly: the HTTP status or the batch failures."""
    if isinstance(result, dict) and "statusCode" in result:
        return result["statusCode"]
    if isinstance(result, dict) and "batchItemFailures" in result:
        return f"{len(result['batchItemFailures'])} failed"
    return type(result).__name__


if __name__ == "__main__":
    main()
