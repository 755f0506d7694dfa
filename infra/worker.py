"""One warm "Lambda execution environment": `python -m infra.worker <LogicalId> --fd N`.

Started by infra.functions with the function's environment already in os.environ. It imports the
handler once, then serves invocations one at a time over the inherited socket (JSON messages through
multiprocessing.connection framing). Standard library only, so the handler's import namespace stays
what Lambda would give it: the CodeUri first on sys.path, then the installed packages.
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import io
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
    handler = _load_handler(os.environ["_HANDLER"])
    connection.send_bytes(b'{"type": "ready"}')
    _serve(connection, handler)


def _prepare_sys_path() -> None:
    """Make the function's code root what sys.path[0] and the working directory are (/var/task)."""
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path[0] = task_root
    os.chdir(task_root)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)


def _watch_parent(parent_pid: int) -> None:
    """Exit if the local runtime dies without stopping us (even mid-invocation): no orphans."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _load_handler(spec: str) -> Handler | dict[str, Any]:
    """The handler, or the init error every invocation of this worker will report."""
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import failure is the function's init error
        return _log_error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}", error)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        return _log_error("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


def _serve(connection: Connection, handler: Handler | dict[str, Any]) -> None:
    """Each invocation is two messages (request, event JSON) answered by a reply, and for a
    result, the result JSON: payloads travel as sent, never re-encoded inside another document."""
    while True:
        try:
            request = json.loads(connection.recv_bytes())
            event = json.loads(connection.recv_bytes())
        except EOFError:
            return
        if isinstance(handler, dict):
            # Like Lambda after a failed init: report it, and start afresh on the next invocation
            # (a new worker re-runs the import, so a fixed handler is picked up).
            _reply(connection, {**handler, "fatal": True})
            sys.exit(1)
        reply, result_json = _invoke(handler, request, event)
        _reply(connection, reply)
        if result_json is not None:
            connection.send_bytes(result_json.encode())
        if reply.get("fatal"):
            sys.exit(1)


def _invoke(handler: Handler, request: dict[str, Any], event: Any) -> tuple[dict[str, Any], str | None]:
    context = LambdaContext(request["request_id"], request["invoked_function_arn"], request["deadline_ms"])
    try:
        result = handler(event, context)
    except SystemExit as error:
        message = f"RequestId: {context.aws_request_id} Error: Runtime exited ({error.code})"
        return _error("Runtime.ExitError", message, fatal=True), None
    except Exception as error:  # the handler's error is the invocation's result
        return _log_error(type(error).__name__, str(error), error), None
    try:
        return {"type": "result"}, json.dumps(result, default=_decimal_as_number, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        return _error("Runtime.MarshalError", f"Unable to marshal response: {error}"), None


def _decimal_as_number(value: Any) -> Any:
    """Lambda's Python runtime encodes Decimal (as boto3 returns DynamoDB numbers) as a JSON number."""
    if not isinstance(value, decimal.Decimal):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)


def _log_error(error_type: str, message: str, error: BaseException | None = None) -> dict[str, Any]:
    """Log it as Lambda does (an [ERROR] line, then the traceback) and build the error reply."""
    print(f"[ERROR] {error_type}: {message}", file=sys.stderr)
    if error is None:
        return _error(error_type, message)
    traceback.print_exception(error)
    return _error(error_type, message, stackTrace=traceback.format_tb(error.__traceback__))


def _error(error_type: str, message: str, *, fatal: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "fatal": fatal, "error": {"errorType": error_type, "errorMessage": message, **extra}}


def _reply(connection: Connection, message: dict[str, Any]) -> None:
    sys.stdout.flush()  # the invocation's logs before the runtime's REPORT line
    sys.stderr.flush()
    connection.send_bytes(json.dumps(message).encode())


if __name__ == "__main__":
    main()
