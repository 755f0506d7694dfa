"""Functions as pools of warm worker processes, invoked one event at a time per worker.

A worker is one `python -m infra.worker <LogicalId>` process (see infra.worker). The pool caps
concurrent invocations at the function's reserved concurrency, enforces its Timeout by SIGKILL, and
replaces workers that die, like Lambda starting a fresh execution environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from infra.template import FunctionSpec

# Lambda's synchronous invocation limit, for the request and the response.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Lambda gives the init phase (importing the handler) 10 s on top of the function's Timeout.
INIT_TIMEOUT_SECONDS = 10.0
_STOP_GRACE_SECONDS = 2.0
_MONITOR_INTERVAL_SECONDS = 0.2
_INFRA_PARENT = Path(__file__).resolve().parent.parent


class PayloadTooLargeError(ValueError):
    """The event exceeds Lambda's invocation payload limit."""


class Console:
    """The stack's stdout: one line at a time, each prefixed with where it comes from."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, source: str, text: str) -> None:
        with self._lock:
            self._stream.write(f"[{source}] {text}\n")
            self._stream.flush()

    def pump(self, source: str, pipe: IO[bytes]) -> None:
        """Copy a worker's output until it closes it."""
        with pipe:
            for raw in pipe:
                self.line(source, raw.decode(errors="replace").rstrip("\n"))


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation: the handler's JSON result, or Lambda's error object."""

    request_id: str
    result_json: str | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> Any:
        return None if self.result_json is None else json.loads(self.result_json)


class _WorkerGone(Exception):
    """The worker stopped answering: it timed out (and was killed) or it died."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error = {"errorType": error_type, "errorMessage": message}


class Worker:
    """One worker process and its private channel."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], console: Console) -> None:
        self.spec = spec
        parent_end, child_end = socket.socketpair()
        with child_end:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.worker", spec.logical_id, "--fd", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                env={**environment, "AWS_LAMBDA_LOG_STREAM_NAME": _log_stream_name()},
                cwd=_INFRA_PARENT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        self._connection = Connection(parent_end.detach())
        self._ready = False
        self.retired = False
        assert self.process.stdout is not None
        threading.Thread(target=console.pump, args=(spec.logical_id, self.process.stdout), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, request: dict[str, Any], event_json: str, timeout: float) -> tuple[dict[str, Any], str | None]:
        """The worker's reply and result JSON; raises _WorkerGone on timeout or death (it is then dead)."""
        self._wait_ready()
        try:
            self._connection.send_bytes(json.dumps(request).encode())
            self._connection.send_bytes(event_json.encode())
            if not self._connection.poll(timeout):
                self.kill()
                raise _WorkerGone(
                    "Sandbox.Timedout",
                    f"RequestId: {request['request_id']} Error: "
                    f"Task timed out after {self.spec.timeout_seconds:.2f} seconds",
                )
            reply: dict[str, Any] = json.loads(self._connection.recv_bytes())
            result = self._connection.recv_bytes().decode() if reply["type"] == "result" else None
            return reply, result
        except (EOFError, OSError):
            self.kill()
            raise _WorkerGone("Runtime.ExitError", self._exit_message(request["request_id"])) from None

    def _wait_ready(self) -> None:
        if self._ready:
            return
        try:
            ready = self._connection.poll(INIT_TIMEOUT_SECONDS) and self._connection.recv_bytes()
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise _WorkerGone("Runtime.InitError", "the worker did not finish its init phase")
        self._ready = True

    def _exit_message(self, request_id: str) -> str:
        reason = _exit_reason(self.process.returncode)
        return f"RequestId: {request_id} Error: Runtime exited with error: {reason}"

    def kill(self) -> None:
        self.retired = True
        _signal(self.process, signal.SIGKILL)
        self.process.wait(timeout=_STOP_GRACE_SECONDS)
        self._connection.close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        self.retired = True
        _signal(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
        self._connection.close()


class FunctionPool:
    """The warm workers of one function; invocations beyond `capacity` wait for a free one."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], console: Console, capacity: int) -> None:
        self.spec = spec
        self.capacity = capacity
        self._environment = environment
        self._console = console
        self._slots = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._workers: set[Worker] = set()
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name=f"{spec.logical_id}-monitor", daemon=True)

    def start(self) -> None:
        """Start one warm worker (more on demand) and the watchdog that replaces dead ones."""
        if self.capacity:
            with self._lock:
                self._idle.append(self._spawn())
        self._monitor.start()

    def wait_warm(self) -> None:
        """Wait (bounded by the init timeout) until the warm worker `start` made has run its init phase, so that a
        stack announced ready answers its first requests without every function's imports competing for the
        CPU. A worker whose init fails is left for its first invocation to report, as Lambda does."""
        with self._lock:
            starting = list(self._idle)
        for worker in starting:
            with contextlib.suppress(_WorkerGone):
                worker._wait_ready()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return sorted(worker.pid for worker in self._workers if worker.alive())

    def invoke(self, event: Any, *, wait_seconds: float | None = None) -> Invocation:
        """Run the handler on `event` in a free worker, waiting at most `wait_seconds` for one."""
        event_json = json.dumps(event)
        if len(event_json.encode()) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(f"{len(event_json)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        request_id = str(uuid.uuid4())
        if not self._slots.acquire(timeout=wait_seconds):
            error = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
            return Invocation(request_id, error=error)
        try:
            return self._run(request_id, event_json)
        finally:
            self._slots.release()

    def stop(self) -> None:
        """Stop every worker, idle or busy (a busy invocation then fails as a crash)."""
        self._stopping.set()
        if self._monitor.is_alive():
            self._monitor.join(timeout=_STOP_GRACE_SECONDS)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.stop()

    def _run(self, request_id: str, event_json: str) -> Invocation:
        started = time.monotonic()
        self._console.line(self.spec.logical_id, f"START RequestId: {request_id} Version: $LATEST")
        invocation = self._call(request_id, event_json)
        status = f"\tStatus: {invocation.error['errorType']}" if invocation.error else ""
        duration_ms = (time.monotonic() - started) * 1000
        self._console.line(
            self.spec.logical_id,
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms"
            f"\tMemory Size: {self.spec.memory_mb} MB{status}",
        )
        return invocation

    def _call(self, request_id: str, event_json: str) -> Invocation:
        request = {
            "request_id": request_id,
            "invoked_function_arn": self.spec.arn,
            "deadline_ms": int(time.time() * 1000) + self.spec.timeout_seconds * 1000,
        }
        try:
            worker = self._checkout()
            reply, result_json = worker.invoke(request, event_json, self.spec.timeout_seconds)
        except _WorkerGone as gone:
            self._console.line(self.spec.logical_id, gone.error["errorMessage"])
            return Invocation(request_id, error=gone.error)
        if reply.get("fatal"):
            worker.retired = True  # it exits by itself; the watchdog starts a fresh one
        else:
            with self._lock:
                self._idle.append(worker)
        if result_json is None:
            return Invocation(request_id, error=reply["error"])
        if len(result_json.encode()) > MAX_PAYLOAD_BYTES:
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
            return Invocation(request_id, error={"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message})
        return Invocation(request_id, result_json=result_json)

    def _checkout(self) -> Worker:
        with self._lock:
            if self._stopping.is_set():
                raise _WorkerGone("Runtime.Unavailable", "the local stack is stopping")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
            return self._spawn()

    def _spawn(self) -> Worker:
        worker = Worker(self.spec, self._environment, self._console)
        self._workers.add(worker)
        return worker

    def _watch(self) -> None:
        while not self._stopping.wait(_MONITOR_INTERVAL_SECONDS):
            with self._lock:
                self._reap()
                if not self._workers and self.capacity and not self._stopping.is_set():
                    self._idle.append(self._spawn())

    def _reap(self) -> None:
        for worker in [w for w in self._workers if not w.alive()]:
            self._workers.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if not worker.retired:
                self._console.line(
                    self.spec.logical_id,
                    f"worker pid {worker.pid} exited ({_exit_reason(worker.process.returncode)}); "
                    "a fresh one replaces it",
                )


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _exit_reason(code: int | None) -> str:
    return f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"


def _log_stream_name() -> str:
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
