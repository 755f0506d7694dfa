"""Issue 5: a burst of 40 uploads, and 20 status pollers on top of the backlog. Nothing is lost or run twice,
queue positions stay consistent, and polling neither fails nor stalls the model."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from infra.testing import RunningStack
from tests import imagefactory
from tests.integration.polling import FINAL_STATES, status, upload_presigned
from tests.reliability.support import FINISHED_LOG, eventually, log_records, messages_in, now_utc, video_keys, when
from tests.stack import local_stack

# The whole burst runs in the first test's setup (about 40 x 2 s on a 2-core machine): more than the default 300 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

TASKS = 40
POLLERS = 20
# Each poller polls its tasks once a second, as the page does: 40 requests a second on top of the sampler's.
# Five times that saturated this 2-core machine's one-process emulator (a request waited over 10 s in CI):
# that measured the machine, not the product (on AWS each status read is its own Lambda invocation).
POLL_EVERY_SECONDS = 1.0
# The sampler reads every unfinished task's status (up to 40 requests) four times a second, four times as often
# as the page. Back to back it kept over 100 requests a second on this 2-core machine's one-process emulator,
# which then ran each 1 s task in over 6 s: it measured the sampler's load, not the line.
SAMPLE_EVERY_SECONDS = 0.25
# Pollers run while the 10th to the 30th task finish; the gaps before and after are the baseline.
POLLERS_FROM, POLLERS_UNTIL = 10, 30
# A generous functional bound: a 1 s model plus everything around it, per task (the encode, and on this
# 2-core machine every other function of the stack and 20 pollers; a task's run takes about 3 s here).
SECONDS_PER_TASK_BOUND = 12.0
FINISH_MARGIN = timedelta(seconds=0.25)  # around a sampling round, for "no task finished during it"


@dataclass
class Round:
    """One sampling round: every unfinished task's status, fetched concurrently."""

    began: datetime
    ended: datetime
    statuses: dict[str, dict[str, Any]]


class Sampler:
    """Samples every unfinished task's status round after round until all are final (bounded)."""

    def __init__(self, api_url: str, task_ids: list[str], timeout: float) -> None:
        self.api_url, self.task_ids, self.timeout = api_url, task_ids, timeout
        self.rounds: list[Round] = []
        self.final: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(self.timeout + 10)
        assert not self._thread.is_alive(), "the sampler did not finish"

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        with ThreadPoolExecutor(8) as pool:
            while len(self.final) < len(self.task_ids) and time.monotonic() < deadline:
                waiting = [task_id for task_id in self.task_ids if task_id not in self.final]
                began = now_utc()
                try:
                    fetched = dict(zip(waiting, pool.map(lambda t: status(self.api_url, t), waiting), strict=True))
                except requests.RequestException as error:
                    self.errors.append(repr(error))
                    time.sleep(0.2)
                    continue
                self.rounds.append(Round(began, now_utc(), fetched))
                self.final.update({t: s for t, s in fetched.items() if s["state"] in FINAL_STATES})
                time.sleep(SAMPLE_EVERY_SECONDS)


class Pollers:
    """`POLLERS` threads, each polling its tasks' statuses back to back, as impatient clients would."""

    def __init__(self, api_url: str, task_ids: list[str]) -> None:
        self.api_url, self.task_ids = api_url, task_ids
        self.statuses: list[int] = []
        self.failures: list[str] = []
        self.started: datetime | None = None
        self.stopped: datetime | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, args=(n,), daemon=True) for n in range(POLLERS)]

    def start(self) -> None:
        self.started = now_utc()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self.stopped = now_utc()

    def _poll(self, number: int) -> None:
        mine = self.task_ids[number::POLLERS]
        with requests.Session() as session:
            while not self._stop.wait(POLL_EVERY_SECONDS):
                for task_id in mine:
                    try:
                        response = session.get(f"{self.api_url}/status/{task_id}", timeout=10)
                        self.statuses.append(response.status_code)
                        if response.status_code != 200:
                            self.failures.append(f"{response.status_code} {response.text[:200]}")
                    except requests.RequestException as error:
                        self.failures.append(repr(error))


@dataclass
class Burst:
    """What one run of the scenario left behind, for the tests below to judge."""

    stack: RunningStack
    ids: list[str]
    final: dict[str, dict[str, Any]]
    sampler: Sampler
    pollers: Pollers

    def runs(self) -> list[tuple[datetime, datetime, str]]:
        """(started_at, finished_at, task id) of every task, in the order they ran."""
        return sorted((when(s["started_at"]), when(s["finished_at"]), t) for t, s in self.final.items())


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Burst]:
    """Given a stack with a 1 s model and 40 presigned uploads started at the same moment, When the
    backlog runs, with 20 status pollers on while the 10th to the 30th task finish."""
    with local_stack(tmp_path_factory.mktemp("load-stack"), model_seconds="1") as stack:
        image = imagefactory.png()
        with ThreadPoolExecutor(TASKS) as pool:
            ids = list(pool.map(lambda _: upload_presigned(stack.api_url, image), range(TASKS)))
        assert len(set(ids)) == TASKS
        budget = TASKS * SECONDS_PER_TASK_BOUND
        sampler = Sampler(stack.api_url, ids, timeout=budget).start()
        pollers = Pollers(stack.api_url, ids)
        eventually(lambda: len(sampler.final) >= POLLERS_FROM, timeout=budget, what=f"{POLLERS_FROM} tasks done")
        pollers.start()
        try:
            eventually(lambda: len(sampler.final) >= POLLERS_UNTIL, timeout=budget, what=f"{POLLERS_UNTIL} tasks done")
        finally:
            pollers.stop()
        sampler.join()
        assert sampler.errors == []
        yield Burst(stack, ids, sampler.final, sampler, pollers)


def test_every_upload_of_the_burst_runs_exactly_once_to_success(burst):
    # Then all 40 reached SUCCESS
    assert sorted(s["state"] for s in burst.final.values()) == ["SUCCESS"] * TASKS, burst.final
    # And none was lost or run twice: 40 videos, one "task finished" each, runs that never overlap
    assert sorted(video_keys(burst.stack)) == sorted(f"videos/{task_id}.mp4" for task_id in burst.ids)
    finished = defaultdict(list)
    for record in log_records(burst.stack, source="ProcessorFunction"):
        if record.get("message") == FINISHED_LOG:
            finished[record["task_id"]].append(record["state"])
    assert {task_id: finished[task_id] for task_id in burst.ids} == {task_id: ["SUCCESS"] for task_id in burst.ids}
    runs = burst.runs()
    for earlier, later in itertools.pairwise(runs):
        assert earlier[1] <= later[0], f"{earlier[2]} and {later[2]} overlap"
    # And no job is left behind in the jobs queue or the dead-letter queue
    assert messages_in(burst.stack, "JobsQueue") == 0
    assert messages_in(burst.stack, "SlotsQueue") == 0
    assert messages_in(burst.stack, "JobsDeadLetterQueue") == 0


def test_status_pollers_get_only_200s_and_do_not_stall_the_model(burst: Burst) -> None:
    # Then every poller request was a 200
    pollers = burst.pollers
    assert pollers.failures == []
    assert pollers.statuses, "the pollers made no request"
    # And the model kept its pace: the gap between one task's end and the next one's start stays small
    assert pollers.started is not None
    assert pollers.stopped is not None
    runs = burst.runs()
    gaps: dict[bool, list[float]] = {True: [], False: []}
    durations: dict[bool, list[float]] = {True: [], False: []}
    for earlier, later in itertools.pairwise(runs):
        polled = pollers.started <= later[0] <= pollers.stopped
        gaps[polled].append((later[0] - earlier[1]).total_seconds())
        durations[polled].append((later[1] - later[0]).total_seconds())
    assert gaps[True], "no task started while the pollers ran"
    assert gaps[False], "no task started without pollers"
    assert max(gaps[True] + gaps[False]) < SECONDS_PER_TASK_BOUND
    print(
        f"\nload: {TASKS} tasks ran in {(runs[-1][1] - runs[0][0]).total_seconds():.1f} s; "
        f"{len(pollers.statuses)} poller requests, all 200; {len(burst.sampler.rounds)} sampling rounds"
        f"\n  gap finish->next start, median: {statistics.median(gaps[False]):.3f} s without pollers "
        f"({len(gaps[False])} gaps), {statistics.median(gaps[True]):.3f} s with {POLLERS} ({len(gaps[True])} gaps);"
        f" max {max(gaps[False]):.3f} / {max(gaps[True]):.3f} s"
        f"\n  started_at->finished_at, median: {statistics.median(durations[False]):.3f} s without pollers, "
        f"{statistics.median(durations[True]):.3f} s with"
    )


def test_a_tasks_queue_position_never_goes_up(burst):
    assert position_problems(burst.sampler.rounds, burst.final)["rises"] == []


def test_no_two_waiting_tasks_ever_share_a_queue_position(burst):
    # Then in every sampling round during which no task finished (and none was still arriving), the
    # waiting tasks' positions are all different
    assert position_problems(burst.sampler.rounds, burst.final)["shared"] == []


def test_queue_positions_follow_the_order_the_model_takes(burst):
    # Then in every round during which no task finished (and none was still arriving), the waiting tasks'
    # positions are in the order in which they then entered the model
    assert position_problems(burst.sampler.rounds, burst.final)["order"] == []


def position_problems(rounds: list[Round], final: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """What went wrong with the queue positions the sampler saw: rises, shared positions, order."""
    problems: dict[str, list[str]] = {"rises": [], "shared": [], "order": []}
    finishes = sorted(when(s["finished_at"]) for s in final.values())
    started = {task_id: when(s["started_at"]) for task_id, s in final.items()}
    last_seen: dict[str, int] = {}
    for number, sampled in enumerate(rounds):
        placed = {t: s["queue_position"] for t, s in sampled.statuses.items() if s["queue_position"] is not None}
        for task_id, position in placed.items():
            if position > last_seen.get(task_id, position):
                problems["rises"].append(f"round {number}: {task_id} went from {last_seen[task_id]} up to {position}")
            last_seen[task_id] = position
        arriving = any(s["state"] == "PENDING" for s in sampled.statuses.values())
        finishing = any(sampled.began - FINISH_MARGIN <= f <= sampled.ended + FINISH_MARGIN for f in finishes)
        if arriving or finishing:
            continue
        if len(set(placed.values())) != len(placed):
            problems["shared"].append(f"round {number}: shared positions {sorted(placed.values())}")
        in_running_order = sorted(placed, key=lambda t: started[t])
        if sorted(placed, key=lambda t: placed[t]) != in_running_order:
            order = [placed[t] for t in in_running_order]
            problems["order"].append(f"round {number}: positions in the order the tasks ran: {order}")
    return problems
