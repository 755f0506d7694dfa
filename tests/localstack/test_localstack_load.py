"""The load test's guarantees on LocalStack: a burst of 20 presigned uploads, each run exactly once, in the
order the queue positions promised, one at a time."""

from __future__ import annotations

import itertools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from infra.testing import RunningStack
from tests import imagefactory
from tests.integration.polling import upload_presigned
from tests.localstack.support import LOCALSTACK_TIER
from tests.reliability.support import FINISHED_LOG, log_records, messages_in, video_keys, when
from tests.reliability.test_load import Sampler, position_problems

pytestmark = [*LOCALSTACK_TIER, pytest.mark.timeout(300)]

TASKS = 20
SECONDS_PER_TASK_BOUND = 6.0  # a 1 s model plus everything around it: a functional bound, not a benchmark


@dataclass
class Burst:
    stack: RunningStack
    ids: list[str]
    final: dict[str, dict[str, Any]]
    sampler: Sampler

    def runs(self) -> list[tuple[datetime, datetime, str]]:
        return sorted((when(s["started_at"]), when(s["finished_at"]), t) for t, s in self.final.items())


@pytest.fixture(scope="module")
def burst(localstack_stack: RunningStack) -> Burst:
    """Given the product on LocalStack with a 1 s model, When 20 presigned uploads start at the same moment and
    every task's status is sampled round after round until all are final."""
    image = imagefactory.png()
    with ThreadPoolExecutor(TASKS) as pool:
        ids = list(pool.map(lambda _: upload_presigned(localstack_stack.api_url, image), range(TASKS)))
    assert len(set(ids)) == TASKS
    sampler = Sampler(localstack_stack.api_url, ids, timeout=TASKS * SECONDS_PER_TASK_BOUND).start()
    sampler.join()
    assert sampler.errors == []
    return Burst(localstack_stack, ids, sampler.final, sampler)


def test_every_upload_of_the_burst_runs_exactly_once_to_success(burst):
    # Then all 20 reached SUCCESS
    assert sorted(s["state"] for s in burst.final.values()) == ["SUCCESS"] * TASKS, burst.final
    # And none was lost or run twice: a video each in LocalStack's S3, one "task finished" each
    assert set(video_keys(burst.stack)) >= {f"videos/{task_id}.mp4" for task_id in burst.ids}
    finished = defaultdict(list)
    for record in log_records(burst.stack, source="ProcessorFunction"):
        if record.get("message") == FINISHED_LOG and record.get("task_id") in burst.ids:
            finished[record["task_id"]].append(record["state"])
    assert dict(finished) == {task_id: ["SUCCESS"] for task_id in burst.ids}
    # And the model ran them one at a time
    for earlier, later in itertools.pairwise(burst.runs()):
        assert earlier[1] <= later[0], f"{earlier[2]} and {later[2]} overlap"
    # And no job is left in LocalStack's jobs queue or its dead-letter queue
    assert messages_in(burst.stack, "JobsQueue") == 0
    assert messages_in(burst.stack, "JobsDeadLetterQueue") == 0


def test_queue_positions_never_rise_are_never_shared_and_follow_the_running_order(burst):
    # Then in every sampling round no position rose, and (in rounds when no task arrived or finished) the waiting
    # tasks' positions were all different and in the order in which the model then took them
    assert position_problems(burst.sampler.rounds, burst.final) == {"rises": [], "shared": [], "order": []}
