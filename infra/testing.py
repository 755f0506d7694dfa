"""`python -m infra` as a test fixture: free ports, bounded start and stop, no process left behind."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import boto3

from infra.backends import Endpoints, free_port
from infra.sam_env import STACK_FILE
from infra.settings import FAKE_CREDENTIALS, READY_MARKER, REGION, REPO_ROOT, Settings
from infra.template import Stack

_POLL_SECONDS = 0.1
_LOG_TAIL_LINES = 60
_CONTROL_TIMEOUT_SECONDS = 10.0
# The fault-injection proxy is test support, not part of the runtime: it lives in the repository's tests/
# and runs in a process of its own, in front of the stack's AWS endpoint (see tests/faultproxy.py).
FAULT_PROXY_MODULE = "tests.faultproxy"
FAULTS_CONTROL_PATH = "/__leyline/faults"  # the proxy's control API
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, whatever HTTP_PROXY says


class RunningStackError(RuntimeError):
    """The local stack did not start, did not stop cleanly, or left workers behind."""


class RunningStack:
    """Runs `python -m infra` in a subprocess, for as long as the `with` block lasts."""

    def __init__(
        self,
        *,
        template: Path | None = None,
        env: Mapping[str, str] | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        api_port: int | None = None,
        log_dir: Path | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        faults: bool = False,
        backend: str | None = None,
    ) -> None:
        """`faults`: the functions reach AWS through a fault-injection proxy (tests/faultproxy.py) that this
        stack starts and stops with itself; see inject_fault(). `backend`: LEYLINE_BACKEND (moto by default)."""
        self.api_port = api_port or free_port()
        self.aws_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.faults_endpoint: str | None = None  # the proxy: what the functions use as AWS_ENDPOINT_URL
        self.faults_url: str | None = None  # its control API
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="leyline-stack-")) / "stack.log"
        extra = dict(env or {})
        if backend is not None:
            extra["LEYLINE_BACKEND"] = backend
        # Its own state directory: stack.json and a LocalStack's files never meet another stack's.
        extra.setdefault("LEYLINE_STATE_DIR", str(self.log_path.parent / "state"))
        self._faults_port = free_port() if faults else None
        if self._faults_port is not None:
            self.faults_endpoint = f"http://127.0.0.1:{self._faults_port}"
            self.faults_url = f"{self.faults_endpoint}{FAULTS_CONTROL_PATH}"
            extra["LEYLINE_FUNCTIONS_AWS_ENDPOINT"] = self.faults_endpoint
        self.env = self._environment(template, extra, parameter_overrides or {})
        # An AWS_ENDPOINT_URL in `env` (e.g. a LocalStack) replaces the embedded moto server.
        self.aws_endpoint = self.env.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{self.aws_port}"
        # Where each service is served, as the running stack says (stack.json); until then, aws_endpoint.
        self.endpoints = Endpoints(self.aws_endpoint)
        self.stack: Stack = Settings.from_env(self.env).load_stack()
        self.session = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._proxy: subprocess.Popen[bytes] | None = None

    def _environment(
        self, template: Path | None, extra: Mapping[str, str], overrides: Mapping[str, str]
    ) -> dict[str, str]:
        # Nothing of the caller's stack settings or AWS endpoint leaks into this stack.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("LEYLINE_") and key != "AWS_ENDPOINT_URL"
        }
        env.update(
            LEYLINE_API_PORT=str(self.api_port), LEYLINE_AWS_PORT=str(self.aws_port), LEYLINE_EXIT_WITH_PARENT="1"
        )
        if template is not None:
            env["LEYLINE_TEMPLATE"] = str(template)
        if overrides:
            env["LEYLINE_PARAMETER_OVERRIDES"] = " ".join(f"{k}={shlex.quote(v)}" for k, v in overrides.items())
        env.update(extra)
        return env

    # ---- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> RunningStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(check=exc is None)

    @property
    def pid(self) -> int:
        assert self._process is not None, "the stack is not started"
        return self._process.pid

    def start(self) -> None:
        """Start the stack (after its fault proxy, if any) and wait (bounded) for its ready line."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        try:
            # Appending: the proxy's lines and the stack's go to one log without overwriting each other.
            with self.log_path.open("ab") as log:
                if self._faults_port is not None:
                    self._proxy = self._spawn([FAULT_PROXY_MODULE, *self._proxy_arguments(self._faults_port)], log)
                    self._wait_for_proxy(self._proxy)
                self._process = self._spawn(["infra"], log)
            self._wait_until_ready(self._process)
            self._read_endpoints()
        except BaseException:
            self.stop(check=False)  # nothing it started is left running
            raise

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while READY_MARKER not in self.log_text():
            if process.poll() is not None:
                raise RunningStackError(f"the stack exited with {process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RunningStackError(f"the stack was not ready in {self._ready_timeout} s:\n{self.log_tail()}")
            time.sleep(_POLL_SECONDS)
        self.ready_at = time.time()  # when its ready line was seen (wall clock, as the functions' own times)

    def _read_endpoints(self) -> None:
        described = json.loads((Path(self.env["LEYLINE_STATE_DIR"]) / STACK_FILE).read_text())
        urls = described["endpoint_urls"]
        self.endpoints = Endpoints(urls["default"], urls["per_service"])
        self.aws_endpoint = self.endpoints.default

    def _spawn(self, module_and_arguments: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", *module_and_arguments],
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _proxy_arguments(self, port: int) -> list[str]:
        return ["--target", self.aws_endpoint, "--port", str(port), "--parent", str(os.getpid())]

    def _wait_for_proxy(self, proxy: subprocess.Popen[bytes]) -> None:
        """Until the fault proxy answers on its control API, bounded by the ready timeout."""
        deadline = time.monotonic() + self._ready_timeout
        while True:
            try:
                self._faults("GET")
                return
            except (OSError, RunningStackError):  # not listening yet
                pass
            if proxy.poll() is not None:
                raise RunningStackError(f"the fault proxy exited with {proxy.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RunningStackError(f"the fault proxy was not ready in {self._ready_timeout} s:\n{self.log_tail()}")
            time.sleep(_POLL_SECONDS)

    def stop(self, *, check: bool = True) -> None:
        """The stack, then its fault proxy, if any: see _stop_stack and _stop_proxy."""
        try:
            self._stop_stack(check=check)
        finally:
            self._stop_proxy(check=check)

    def _stop_proxy(self, *, check: bool) -> None:
        """SIGTERM, then SIGKILL after the stop timeout."""
        proxy, self._proxy = self._proxy, None
        if proxy is None:
            return
        if proxy.poll() is None:
            proxy.terminate()
            try:
                proxy.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait(timeout=self._stop_timeout)
        if check and proxy.returncode != 0:
            raise RunningStackError(f"unclean stop of the fault proxy: exit {proxy.returncode}:\n{self.log_tail()}")

    def _stop_stack(self, *, check: bool) -> None:
        """SIGINT, then SIGKILL after the stop timeout; then make sure none of its processes (its workers, its
        moto server, a LocalStack it started) outlived it."""
        process = self._process
        if process is None:
            return
        children = {pid: argv for pid, ppid, argv in _processes() if ppid == process.pid}
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self._stop_timeout)
        self._process = None
        leftovers = _wait_gone(children, timeout=self._stop_timeout)
        for pid in leftovers:
            _kill(pid)
        if check and (process.returncode != 0 or leftovers):
            raise RunningStackError(
                f"unclean stop: exit {process.returncode}, processes left {leftovers}:\n{self.log_tail()}"
            )

    # ---- injected faults (RunningStack(faults=True)) -----------------------------------------------
    def inject_fault(
        self,
        service: str,
        operation: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        count: int | None = 1,
        match: str | list[str] | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The next `count` (None: every, until cleared) of the functions' calls of `service` `operation`
        (None: any) whose 'METHOD path?query' or body contains `match` (each of them, for a list) fail with
        `status` and `code` (defaults: S3 503 SlowDown, DynamoDB 400 ProvisionedThroughputExceededException,
        SQS 400 ThrottlingException). Returns the fault as the proxy lists it."""
        spec: dict[str, Any] = {"service": service, "count": count}
        optional = {"operation": operation, "status": status, "code": code, "match": match, "message": message}
        spec.update({name: value for name, value in optional.items() if value is not None})
        fault: dict[str, Any] = self._faults("POST", spec)
        return fault

    def clear_faults(self) -> None:
        """Removes every fault and resets the request counts."""
        self._faults("DELETE")

    def fault_hits(self) -> list[dict[str, Any]]:
        """Every fault injected since the last clear, with its `hits` and `remaining` count."""
        faults: list[dict[str, Any]] = self._faults("GET")["faults"]
        return faults

    def aws_requests(self) -> dict[str, int]:
        """How many calls of each "service:Operation" the functions made through the proxy since the last clear."""
        counts: dict[str, int] = self._faults("GET")["requests"]
        return counts

    def _faults(self, method: str, body: Any = None) -> Any:
        if self.faults_url is None:
            raise RunningStackError("this stack runs without the fault proxy: use RunningStack(faults=True)")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.faults_url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with _DIRECT.open(request, timeout=_CONTROL_TIMEOUT_SECONDS) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise RunningStackError(f"fault proxy refused {method}: {error.read().decode(errors='replace')}") from None

    # ---- inspection ---------------------------------------------------------------------------
    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client of the stack's endpoint for `service`."""
        endpoint = self.endpoints.for_service(service)
        return self.session.client(service, endpoint_url=endpoint, **kwargs)  # type: ignore[call-overload]

    @property
    def parameters(self) -> dict[str, str | list[str]]:
        """The template parameters the stack runs with (defaults and overrides)."""
        return self.stack.parameters

    def physical_name(self, logical_id: str) -> str:
        return self.stack.physical_name(logical_id)

    def queue_url(self, logical_id: str) -> str:
        return self.stack.queue_url(logical_id)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def worker_pids(self, logical_id: str | None = None) -> list[int]:
        """PIDs of this stack's live workers (of one function, or all)."""
        if self._process is None:
            return []
        return sorted(
            pid for pid, ppid, args in _processes() if ppid == self._process.pid and _is_worker(args, logical_id)
        )

    def wait_for_worker(self, logical_id: str, *, exclude: Collection[int] = (), timeout: float = 10.0) -> int:
        """A live worker PID of `logical_id` that is not in `exclude` (e.g. a replacement)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [pid for pid in self.worker_pids(logical_id) if pid not in exclude]
            if fresh:
                return fresh[0]
            time.sleep(_POLL_SECONDS)
        raise RunningStackError(f"no new {logical_id} worker within {timeout} s:\n{self.log_tail()}")


def _is_worker(args: list[str], logical_id: str | None) -> bool:
    for index in range(len(args) - 1):
        if args[index : index + 2] == ["-m", "infra.worker"]:
            return logical_id is None or args[index + 2 : index + 3] == [logical_id]
    return False


def _processes() -> list[tuple[int, int, list[str]]]:
    """(pid, ppid, argv) of every process, from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # it exited while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found.append((int(entry.name), ppid, argv))
    return found


def _alive(pid: int, argv: list[str]) -> bool:
    """The process is still running: not a zombie, and not a PID reused since by another command line."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        now = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return state != "Z" and now == argv


def _wait_gone(processes: dict[int, list[str]], *, timeout: float) -> list[int]:
    """The processes (PID: command line) still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid, argv in processes.items() if _alive(pid, argv)]
        if not alive:
            return []
        time.sleep(_POLL_SECONDS)
    return [pid for pid, argv in processes.items() if _alive(pid, argv)]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
