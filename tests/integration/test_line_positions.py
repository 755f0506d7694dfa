"""Issue 13 on the local stack: queue positions and ETAs come from the line summary and stay exact under
concurrent intake and with cancellations in the middle of the line (the crash case is in
tests/reliability/test_crash.py)."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests import imagefactory
from tests.integration.polling import status, upload_presigned

pytestmark = pytest.mark.integration

MODEL_SECONDS = 60  # nothing finishes while the line is read
TASKS = 12


def line_statuses(api_url: str, ids: list[str]) -> list[dict[str, Any]]:
    return [status(api_url, task_id) for task_id in ids]


def assert_exact(statuses: list[dict[str, Any]]) -> None:
    """Positions 0, 1, 2... in line order; each ETA one model run after the one ahead (±1 s of rounding)."""
    assert [s["queue_position"] for s in statuses] == list(range(len(statuses))), statuses
    for ahead, behind in itertools.pairwise(statuses):
        assert abs(behind["eta_seconds"] - ahead["eta_seconds"] - MODEL_SECONDS) <= 1, (ahead, behind)


def test_positions_and_etas_are_exact_under_concurrent_intake_and_cancels_in_the_middle(make_stack):
    # Given a stack whose model takes a minute, and 12 uploads made at once from 6 threads (concurrent intake)
    stack = make_stack(model_seconds=str(MODEL_SECONDS))
    image = imagefactory.png()
    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(lambda _: upload_presigned(stack.api_url, image), range(TASKS)))
    deadline = time.monotonic() + 60
    while True:
        statuses = line_statuses(stack.api_url, ids)
        states = [s["state"] for s in statuses]
        if states.count("PROCESSING") == 1 and states.count("QUEUED") == TASKS - 1:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)

    # Then in the order the line holds them, the positions are 0..11 with no repeat and no gap, and the ETAs
    # follow one model run apart
    in_line = sorted(statuses, key=lambda s: s["queue_position"])
    assert in_line[0]["state"] == "PROCESSING"
    order = [s["task_id"] for s in in_line]
    assert_exact(line_statuses(stack.api_url, order))

    # When three tasks in the middle of the line are cancelled
    cancelled = {order[3], order[6], order[7]}
    for task_id in cancelled:
        response = requests.post(f"{stack.api_url}/tasks/{task_id}/cancel", timeout=10)
        assert response.status_code == 200, response.text

    # Then everyone behind them moves up at once: positions 0..8, ETAs still one run apart
    remaining = [task_id for task_id in order if task_id not in cancelled]
    assert_exact(line_statuses(stack.api_url, remaining))
    assert {status(stack.api_url, task_id)["queue_position"] for task_id in cancelled} == {None}
