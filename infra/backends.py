"""The AWS emulators behind the local stack, and which service each client is pointed at.

LEYLINE_BACKEND=moto (the default): one embedded moto server serves every service, its app behind a guard that
checks signatures and S3 POST policies as AWS does (infra/moto_guard.py), since moto serves unsigned requests.
LEYLINE_BACKEND=localstack: LocalStack's runtime (started here, in host mode, unless AWS_ENDPOINT_URL names
one already running) serves what it can without Docker or a download; the embedded moto server serves the rest
(MOTO_ONLY_SERVICES). Each client gets its service's endpoint (botocore's AWS_ENDPOINT_URL_<SERVICE> variables
for the functions, Endpoints.for_service for the stack's own clients).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import botocore.session
from localstack_client.config import get_service_endpoint

from infra.settings import REPO_ROOT

BACKENDS = ("moto", "localstack")
# What LocalStack's community edition cannot serve here: DynamoDB downloads Java at start, Cognito is not in
# the community edition. (Lambda needs Docker: the functions run in the local runtime on either backend.)
MOTO_ONLY_SERVICES = ("dynamodb", "dynamodbstreams", "cognito-idp")
LOCALSTACK_VENV = Path(__file__).resolve().parent.parent / ".venv-localstack"
# The interpreter `make localstack-venv` builds it with (the Makefile looks in the same places): pyenv's, or PATH's.
PYTHON313 = next(
    (str(path) for path in sorted(Path.home().glob(".pyenv/versions/3.13.*/bin/python3.13"))),
    shutil.which("python3.13"),
)
LOCALSTACK_LAUNCHER = Path(__file__).resolve().parent / "localstack_launcher.py"
_MOTO_START_SECONDS = 10.0
_MOTO_STOP_SECONDS = 5.0
_LOCALSTACK_START_SECONDS = 60.0
_LOCALSTACK_STOP_SECONDS = 5.0  # it may hang on SIGTERM: SIGKILL after this
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BackendError(RuntimeError):
    """An emulator did not start, or the backend is misconfigured."""


@dataclass(frozen=True)
class Endpoints:
    """Where each AWS service is served: `default`, unless `per_service` names another endpoint for it."""

    default: str
    per_service: Mapping[str, str] = field(default_factory=dict)

    def for_service(self, service: str) -> str:
        return self.per_service.get(service, self.default)

    def environment(self) -> dict[str, str]:
        """The variables that point botocore's clients at these endpoints, service by service."""
        variables = {"AWS_ENDPOINT_URL": self.default}
        variables.update({endpoint_variable(service): url for service, url in self.per_service.items()})
        return variables


def endpoint_variable(service: str) -> str:
    """botocore's per-service endpoint variable, from the service id: cognito-idp's is ..._COGNITO_IDENTITY_PROVIDER."""
    service_id = botocore.session.get_session().get_service_model(service).service_id
    return "AWS_ENDPOINT_URL_" + str(service_id).replace(" ", "_").upper()


# ---- the embedded moto server -----------------------------------------------------------------
class MotoProcess:
    """The embedded moto server in a process of its own (infra/moto_process.py says why)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "moto is not started"
        return self._process.pid

    def start(self) -> None:
        # Whatever already listens on the port would pass for moto's readiness below: check first.
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", self.port))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "infra.moto_process", str(self.port), str(os.getpid())],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the stack, which stops moto itself
        )
        try:
            _wait_until_ready(self._process, "moto", _MOTO_START_SECONDS, self._listening)
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        _terminate(process, _MOTO_STOP_SECONDS)


def start_moto(port: int) -> MotoProcess:
    moto = MotoProcess(port)
    moto.start()
    return moto


def _wait_until_ready(process: subprocess.Popen[bytes], name: str, seconds: float, ready: Callable[[], bool]) -> None:
    """Until the emulator the process runs is `ready()`, checked every 0.1 s; BackendError if it exits first or
    is not ready within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackendError(f"{name} exited with {process.returncode} at start")
        if ready():
            return
        time.sleep(0.1)
    raise BackendError(f"{name} was not ready within {seconds:g} s")


def _terminate(process: subprocess.Popen[bytes] | None, seconds: float) -> None:
    """SIGTERM, SIGKILL if it has not exited within `seconds` (an emulator may hang on SIGTERM)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=seconds)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# ---- LocalStack in host mode ------------------------------------------------------------------
class LocalStackRuntime:
    """LocalStack's runtime in a process of its own (.venv-localstack, Python 3.13), no Docker.

    Everything it writes goes under `root` (FILESYSTEM_ROOT, and its S3 object storage, which LocalStack
    otherwise keeps in a fixed folder of the system temp dir shared by every instance); `stop` removes it.
    """

    def __init__(self, port: int, root: Path, log_path: Path, python: Path | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.root = root
        self.log_path = log_path  # outside `root`: it outlives the stop, for a look at what happened
        self.python = python or LOCALSTACK_VENV / "bin" / "python"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "LocalStack is not started"
        return self._process.pid

    def start(self) -> None:
        if not self.python.exists():
            raise BackendError(f"no LocalStack at {self.python}: run `make localstack-venv` (needs python3.13)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.root),  # its plugin cache goes under the root too
            "DISABLE_EVENTS": "1",  # no analytics; without it the runtime hangs on SIGTERM after work
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(self.root / "filesystem"),
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
        }
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.python), str(LOCALSTACK_LAUNCHER), str(self.root / "s3-storage"), str(os.getpid())],
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the stack, which stops LocalStack itself
            )
        try:
            _wait_until_ready(self._process, "LocalStack", _LOCALSTACK_START_SECONDS, self._healthy)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        with contextlib.suppress(OSError), _DIRECT.open(f"{self.url}/_localstack/health", timeout=2) as answer:
            return bool(answer.status == 200)
        return False

    def stop(self) -> None:
        """Stops the process (_terminate), then removes its files."""
        process, self._process = self._process, None
        _terminate(process, _LOCALSTACK_STOP_SECONDS)
        shutil.rmtree(self.root, ignore_errors=True)


def localstack_endpoint(localstack_host: str | None = None) -> str:
    """LocalStack's edge endpoint as localstack-client resolves it: AWS_ENDPOINT_URL if set, else LOCALSTACK_HOST."""
    endpoint = get_service_endpoint("s3", localstack_host=localstack_host)
    if endpoint is None:
        raise BackendError("localstack-client knows no endpoint for s3")
    return endpoint


# ---- the whole backend ------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendConfig:
    name: str = "moto"
    aws_port: int = 4566  # the embedded moto server's
    external_endpoint: str | None = None  # AWS_ENDPOINT_URL: an emulator the user runs
    state_dir: Path = Path(tempfile.gettempdir()) / "leyline"  # a started LocalStack's files go under it


@dataclass(frozen=True)
class RunningBackend:
    endpoints: Endpoints
    description: dict[str, str]  # service (or "*") -> what serves it, for the console


@contextlib.contextmanager
def running_backend(config: BackendConfig) -> Iterator[RunningBackend]:
    """Starts what `config` asks for, yields where each service is served, stops it all (by PID) afterwards."""
    if config.name not in BACKENDS:
        raise BackendError(f"LEYLINE_BACKEND must be one of {', '.join(BACKENDS)}, not {config.name!r}")
    with contextlib.ExitStack() as started:
        if config.name == "moto":
            yield _moto_backend(config, started)
        else:
            yield _localstack_backend(config, started)


def _moto_backend(config: BackendConfig, started: contextlib.ExitStack) -> RunningBackend:
    if config.external_endpoint:  # the user's own emulator serves everything, as it is
        return RunningBackend(Endpoints(config.external_endpoint), {"*": f"{config.external_endpoint} (external)"})
    moto = start_moto(config.aws_port)
    started.callback(moto.stop)
    moto_url = f"http://127.0.0.1:{config.aws_port}"
    return RunningBackend(Endpoints(moto_url), {"*": f"{moto_url} (embedded moto server, pid {moto.pid})"})


def _localstack_backend(config: BackendConfig, started: contextlib.ExitStack) -> RunningBackend:
    localstack = None
    if config.external_endpoint:
        edge = localstack_endpoint()  # localstack-client follows AWS_ENDPOINT_URL (this process's, the user's)
    else:
        root = config.state_dir
        localstack = LocalStackRuntime(free_port(), root / "localstack", root / "localstack.log")
        localstack.start()
        started.callback(localstack.stop)
        edge = localstack_endpoint(f"127.0.0.1:{localstack.port}")
    moto = start_moto(config.aws_port)
    started.callback(moto.stop)
    moto_url = f"http://127.0.0.1:{config.aws_port}"
    served_by_moto = f"{moto_url} (embedded moto server, pid {moto.pid})"
    kind = "external LocalStack" if localstack is None else f"LocalStack, pid {localstack.pid}"
    return RunningBackend(
        Endpoints(edge, dict.fromkeys(MOTO_ONLY_SERVICES, moto_url)),
        {"*": f"{edge} ({kind})", **dict.fromkeys(MOTO_ONLY_SERVICES, served_by_moto)},
    )
