"""The queue as users feel it: how long after their upload the video is ready, and how busy the model is
kept when tasks wait in line. Times come from the status JSON (started_at, finished_at) and from a tight
poller (the moment a response showed a state), both on this machine's wall clock."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from bench.client import FINAL_STATES, StatusClient, epoch, photo_jpeg, upload, wait_final
from bench.stack import bench_stack, template_model_seconds
from bench.stats import ms, summary


@dataclass
class Run:
    """One task from the client's side."""

    task_id: str
    uploaded: float  # the storage answered the upload (wall clock)
    seen: dict[str, float] = field(default_factory=dict)  # first response showing each state
    started: float = 0.0  # started_at
    finished: float = 0.0  # finished_at
    state: str = ""

    def look(self, status: dict[str, Any], at: float) -> None:
        self.seen.setdefault(status["state"], at)
        if status["state"] in FINAL_STATES:
            self.state = status["state"]
            self.started, self.finished = epoch(status["started_at"]), epoch(status["finished_at"])

    @property
    def done(self) -> bool:
        return bool(self.state)


def _warm_up(api_url: str, poller: StatusClient) -> None:
    """One task through every function first: the figures are of warm functions."""
    task_id, _ = upload(api_url, photo_jpeg())
    wait_final(poller, task_id)


def idle_overhead(samples: int, model_seconds: float, every: float) -> dict[str, Any]:
    """Upload complete -> SUCCESS seen by a poller, minus the model time, one task at a time."""
    runs: list[Run] = []
    with bench_stack(model_seconds, "overhead") as stack:
        poller = StatusClient(stack.api_url)
        _warm_up(stack.api_url, poller)
        for _ in range(samples):
            run = Run(*upload(stack.api_url, photo_jpeg()))
            deadline = time.monotonic() + model_seconds + 60
            while not run.done:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"task {run.task_id} not finished; seen {run.seen}")
                status = poller.status(run.task_id)
                run.look(status, time.time())
                if not run.done:
                    time.sleep(every)
            runs.append(run)
        poller.close()
    if any(run.state != "SUCCESS" for run in runs):
        raise RuntimeError(f"a task failed: {[run.state for run in runs]}")
    overhead = [run.seen["SUCCESS"] - run.uploaded - model_seconds for run in runs]
    to_start = [run.started - run.uploaded for run in runs]
    past_model = [run.finished - run.started - model_seconds for run in runs]
    to_seen = [run.seen["SUCCESS"] - run.finished for run in runs]
    return {
        "model_seconds": model_seconds,
        "poll_every_ms": every * 1000,
        "overhead_ms": summary(ms(overhead), 1),
        "upload_to_start_ms": summary(ms(to_start), 1),
        "beyond_model_time_ms": summary(ms(past_model), 1),
        "finish_to_seen_ms": summary(ms(to_seen), 1),
        "samples": [
            {
                "overhead_ms": round(o * 1000, 1),
                "to_start_ms": round(a * 1000, 1),
                "beyond_model_ms": round(b * 1000, 1),
            }
            | {"finish_to_seen_ms": round(c * 1000, 1)}
            for o, a, b, c in zip(overhead, to_start, past_model, to_seen, strict=True)
        ],
    }


def backlog(tasks: int, model_seconds: float, every: float, rounds: int) -> dict[str, Any]:
    """`rounds` bursts of `tasks` uploads, each after the last has drained: the model should go from one task
    to the next without idling. Utilisation is the median burst's, so that one hiccup of the machine (the
    emulator's own garbage collection, another process) does not decide it; gaps are pooled."""
    with bench_stack(model_seconds, "backlog") as stack:
        poller = StatusClient(stack.api_url)
        _warm_up(stack.api_url, poller)
        bursts = [_burst(stack.api_url, poller, tasks, model_seconds, every) for _ in range(rounds)]
        poller.close()
    spans = [burst[-1].finished - burst[0].started for burst in bursts]
    median_round = sorted(range(rounds), key=lambda i: spans[i])[rounds // 2]
    order, span = bursts[median_round], spans[median_round]
    pairs = [pair for burst in bursts for pair in itertools.pairwise(burst)]
    gaps = [later.started - earlier.finished for earlier, later in pairs]
    seen_gaps = [
        later.seen["PROCESSING"] - earlier.seen["SUCCESS"] for earlier, later in pairs if "PROCESSING" in later.seen
    ]
    busy = [run.finished - run.started for burst in bursts for run in burst]
    per_task_overhead = (span - model_seconds * tasks) / tasks
    origin = order[0].started
    deployed = template_model_seconds()
    return {
        "tasks": tasks,
        "rounds": rounds,
        "model_seconds": model_seconds,
        "poll_every_ms": every * 1000,
        "in_upload_order": all(burst == sorted(burst, key=lambda run: run.uploaded) for burst in bursts),
        "utilisation": round(model_seconds * tasks / span, 4),
        "utilisation_per_round": [round(model_seconds * tasks / each, 4) for each in spans],
        "span_s": round(span, 3),
        "gap_ms": summary(ms(gaps), 1),
        "gap_seen_by_poller_ms": summary(ms(seen_gaps), 1) if seen_gaps else None,
        "task_time_beyond_model_ms": summary(ms([b - model_seconds for b in busy]), 1),
        "overhead_per_task_ms": round(per_task_overhead * 1000, 1),
        # The same per-task overhead against the model time the template deploys with.
        "template_model_seconds": deployed,
        "utilisation_at_template_model": round(deployed / (deployed + per_task_overhead), 4),
        "timeline": [
            {
                "uploaded": round(run.uploaded - origin, 3),
                "started": round(run.started - origin, 3),
                "finished": round(run.finished - origin, 3),
            }
            for run in order
        ],
    }


def _burst(api_url: str, poller: StatusClient, tasks: int, model_seconds: float, every: float) -> list[Run]:
    """`tasks` uploads at once, followed until all are done; the runs in the order the model took them."""
    runs = [Run(*upload(api_url, photo_jpeg())) for _ in range(tasks)]
    deadline = time.monotonic() + tasks * (model_seconds + 10) + 60
    while not all(run.done for run in runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"backlog not drained: {[run.seen for run in runs]}")
        # The running task and the next one: their transitions are what the gap is made of.
        for run in [run for run in runs if not run.done][:2]:
            run.look(poller.status(run.task_id), time.time())
        time.sleep(every)
    if any(run.state != "SUCCESS" for run in runs):
        raise RuntimeError(f"a task failed: {[run.state for run in runs]}")
    return sorted(runs, key=lambda run: run.started)
