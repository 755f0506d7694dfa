"""The embedded moto server, in a process of its own: `python -m infra.moto_process PORT PARENT_PID`
(infra.backends.MotoProcess starts it and stops it).

moto serves every request on a thread of the process it runs in. In the local stack's own process it shared
one GIL with the gateway, the event source pollers and the console: a burst of their work (a stream batch
parsed, a status poll proxied) stretched every AWS call the functions were waiting on meanwhile. In its own
process it has a GIL of its own, as an AWS service has hosts of its own.

Its app is behind SignatureGuard (nothing reaches moto unsigned: infra/moto_guard.py), with the changes that
make moto behave as AWS does (infra/moto_fidelity.py). It dies with the local stack that started it
(PARENT_PID), even if that one is killed and cannot stop it, and stops at SIGTERM or SIGINT.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

import moto.backends as moto_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from infra.moto_fidelity import behave_as_aws
from infra.moto_guard import SignatureGuard
from infra.settings import FAKE_CREDENTIALS

_PR_SET_PDEATHSIG = 1


def main(port: int, parent: int) -> int:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    server = _guarded_server(port)
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    return 0


def _guarded_server(port: int) -> BaseWSGIServer:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per AWS call
    behave_as_aws()
    _route_without_listing_moto()
    credentials = {FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]: FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
    app = SignatureGuard(DomainDispatcherApplication(create_backend_app), credentials)
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def _route_without_listing_moto() -> None:
    """moto routes each request by testing its host against the list of its own packages, which it reads from
    disk every time (about 170 isdir calls, 1.5 ms, under the router's one lock: a quarter of a request's time
    on the server). The list cannot change while the server runs: read it once."""
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
