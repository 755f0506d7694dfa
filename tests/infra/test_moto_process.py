"""infra/backends.MotoProcess: the embedded moto server runs in a process of its own (infra/moto_process.py says
why), serves signed requests with the local stack's changes to moto applied, and stops with the stack: at its
stop, and when the process that started it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pytest
import requests

from infra.backends import MotoProcess, free_port
from infra.settings import FAKE_CREDENTIALS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether the process has exited (or is a zombie no one has reaped yet) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_moto_serves_from_a_process_of_its_own_with_the_stack_s_changes_applied():
    # Given moto started by the local stack
    moto = MotoProcess(free_port())
    moto.start()
    try:
        # Then it is another process than the stack's
        assert moto.pid != os.getpid()
        endpoint = f"http://127.0.0.1:{moto.port}"
        # And it serves a signed request
        session = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        url = session.client("sqs", endpoint_url=endpoint).create_queue(QueueName="jobs")["QueueUrl"]
        assert url.endswith("/jobs")
        # And it refuses an unsigned one: the signature guard runs in moto's process
        assert requests.get(endpoint, params={"Action": "ListQueues"}, timeout=5).status_code == 403
    finally:
        pid = moto.pid
        moto.stop()
    # And the stop ends it
    assert gone(pid)


def test_moto_does_not_outlive_a_stack_that_is_killed():
    # Given a stack process that started moto and is then SIGKILLed (it cannot stop moto itself)
    starter = textwrap.dedent(
        f"""
        import sys, time
        from infra.backends import MotoProcess
        moto = MotoProcess({free_port()})
        moto.start()
        print(moto.pid, flush=True)
        time.sleep(60)
        """
    )
    stack = subprocess.Popen([sys.executable, "-c", starter], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert stack.stdout is not None
        moto_pid = int(stack.stdout.readline())
        assert not gone(moto_pid, within=0.5)
    finally:
        stack.send_signal(signal.SIGKILL)
        stack.wait(timeout=10)
    # Then moto goes with it
    assert gone(moto_pid)


def test_a_taken_port_is_refused_before_moto_starts():
    # Given a port something already listens on
    moto = MotoProcess(free_port())
    moto.start()
    try:
        # When another moto is started on it; Then it is refused at once, not left waiting
        with pytest.raises(OSError, match="in use"):
            MotoProcess(moto.port).start()
    finally:
        moto.stop()
