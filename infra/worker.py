"""One warm "Lambda execution environment": `python -m infra.worker <LogicalId> --fd N`.

Started by infra.functions with the function's environment already in os.environ. It imports the
handler once, then serves invocations one at a time over the inherited socket (JSON messages through
multiprocessing.connection framing). Standard library only, so the handler's import namespace stays
what Lambda would give it: the CodeUri first on sys.path, then the installed packages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The context object of the Python runtime (awslambdaric), fed from the environment."""

    def __init__(self, request_id: str, invoked_function_arn: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        # A string, as awslambdaric reads it from the environment.
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logical_id", help="shown by ps; the spec comes from the environment")
    parser.add_argument("--fd", type=int, required=True, help="socket to the local runtime")
    args = parser.parse_args()
    # The runtime stops workers by PID; Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prepare_sys_path()
    _watch_parent(os.getppid())
    connection = Connection(args.fd)
    handler, init_error = _load_handler(os.environ["_HANDLER"])
    connection.send_bytes(b'{"type": "ready"}')
    _serve(connection, handler, init_error)


def _prepare_sys_path() -> None:
    """Make the function's code root what sys.path[0] and the working directory are (/var/task)."""
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[0] = task_root
    os.chdir(task_root)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[attr-defined]


def _watch_parent(parent_pid: int) -> None:
    """Exit if the local runtime dies without stopping us (even mid-invocation): no orphans."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_handler(spec: str) -> tuple[Handler | None, dict[str, Any] | None]:
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the function's init error
        traceback.print_exc()
        message = f"Unable to import module '{module_name}': {error}"
        return None, _error_payload("Runtime.ImportModuleError", message, error)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        print(f"[ERROR] Runtime.HandlerNotFound: {message}", file=sys.stderr)
        return None, {"errorType": "Runtime.HandlerNotFound", "errorMessage": message}
    return handler, None


def _serve(connection: Connection, handler: Handler | None, init_error: dict[str, Any] | None) -> None:
    while True:
        try:
            request = json.loads(connection.recv_bytes())
        except EOFError:
            return
        if handler is None:
            # Like Lambda after a failed init: report it, and start afresh on the next invocation
            # (a new worker re-runs the import, so a fixed handler is picked up).
            _reply(connection, {"type": "error", "fatal": True, "error": init_error})
            sys.exit(1)
        reply = _invoke(handler, request)
        _reply(connection, reply)
        if reply.get("fatal"):
            sys.exit(1)


def _invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContext(request["request_id"], request["invoked_function_arn"], request["deadline_ms"])
    try:
        result = handler(request["event"], context)
    except SystemExit as error:
        message = f"RequestId: {context.aws_request_id} Error: Runtime exited ({error.code})"
        return {"type": "error", "fatal": True, "error": {"errorType": "Runtime.ExitError", "errorMessage": message}}
    except Exception as error:  # noqa: BLE001 - the handler's error is the invocation's result
        traceback.print_exc()
        return {"type": "error", "error": _error_payload(type(error).__name__, str(error), error)}
    try:
        return {"type": "result", "payload": json.dumps(result)}
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        return {"type": "error", "error": {"errorType": "Runtime.MarshalError", "errorMessage": message}}


def _error_payload(error_type: str, message: str, error: BaseException) -> dict[str, Any]:
    stack = traceback.format_tb(error.__traceback__)
    return {"errorType": error_type, "errorMessage": message, "stackTrace": stack}


def _reply(connection: Connection, message: dict[str, Any]) -> None:
    sys.stdout.flush()  # the invocation's logs before the runtime's REPORT line
    sys.stderr.flush()
    connection.send_bytes(json.dumps(message).encode())


if __name__ == "__main__":
    main()
