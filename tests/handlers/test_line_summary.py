"""The line summary in the real table (moto), issue 13: the intake's places are consecutive, every move in and
out of the line updates all the summary's copies in the same transaction as the task (or nothing), the
adapter and the in-memory fake agree move for move, and a status read costs the same few reads at any length."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from leyline.adapters.tasks_table import LINE_SHARDS, TaskRepository, summary_key
from leyline.logic.ports import TaskStore
from leyline.logic.tasks import get_status
from leyline.models import TaskState, utc_now
from tests.fakes import SETTINGS, FakeMediaStorage, FakeTaskStore, seed_task

HOUR = timedelta(hours=1)


def tasks_table(aws, template) -> TaskRepository:
    return TaskRepository(template.functions["ApiFunction"].environment["TASKS_TABLE"], aws.client("dynamodb"))


def queue(store: TaskStore, count: int) -> list[str]:
    now, placed = utc_now(), []
    for _ in range(count):
        task_id = seed_task(store, TaskState.PENDING, now)
        assert store.mark_queued(task_id, now, opened_since=now - HOUR)
        placed.append(task_id)
    return placed


def summary_copies(aws, template) -> list[dict[str, Any]]:
    table = template.functions["ApiFunction"].environment["TASKS_TABLE"]
    items = []
    for shard in range(LINE_SHARDS):
        key = {"task_id": {"S": summary_key(shard)}}
        item = aws.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        items.append({name: value for name, value in item.items() if name != "task_id"})
    return items


def test_places_are_consecutive_and_a_refused_move_takes_none(aws, template):
    # Given the real table, three uploads queued and one whose window closed
    store, now = tasks_table(aws, template), utc_now()
    first = queue(store, 3)
    late = seed_task(store, TaskState.PENDING, now - 2 * HOUR)
    # When the late one is refused and one more is queued
    assert not store.mark_queued(late, now, opened_since=now - HOUR)
    (last,) = queue(store, 1)
    # Then the places follow on, 1 to 4, with no gap
    assert [store.get(task_id).queued_seq for task_id in [*first, last]] == [1, 2, 3, 4]


def test_every_copy_moves_with_the_task_or_not_at_all(aws, template):
    # Given a line of four, the head in the model and the third cancelled
    store, now = tasks_table(aws, template), utc_now()
    head, second, third, fourth = queue(store, 4)
    assert store.mark_processing(head, now)
    assert store.mark_cancelled(third, now)
    # When a move the transition table refuses is tried (a cancelled task cannot enter the model)
    assert not store.mark_processing(third, now)
    # Then all copies say the same: the head running, the third gone, and the refused move left no trace
    copies = summary_copies(aws, template)
    assert all(copy == copies[0] for copy in copies)
    summary = store.line_summary(fourth)
    assert (summary.cursor, list(summary.running), summary.removed) == (1, [1], (3,))
    # And the head's success and the next start leave the cursor at 2 with only the second running
    assert store.mark_succeeded(head, now)
    assert store.mark_processing(second, now)
    summary = store.line_summary(fourth)
    assert (summary.cursor, list(summary.running), summary.removed) == (2, [2], (3,))


def test_the_table_and_the_fake_agree_move_for_move(aws, template):
    # Given the real table and the fake, and one seeded sequence of moves made on both
    store, fake, now = tasks_table(aws, template), FakeTaskStore(), utc_now()
    pick = random.Random(13)
    real_line, fake_line = queue(store, 40), queue(fake, 40)
    for _ in range(60):
        index = pick.randrange(40)
        move = pick.choice(["process", "succeed", "fail", "cancel"])
        for line, tasks in ((real_line, store), (fake_line, fake)):
            task_id = line[index]
            if move == "process":
                tasks.mark_processing(task_id, now)
            elif move == "succeed":
                tasks.mark_succeeded(task_id, now)
            elif move == "fail":
                tasks.mark_failed(task_id, "PROCESSING_FAILED", "Failed.", now)
            else:
                tasks.mark_cancelled(task_id, now)
        # Then after each move both hold the same summary and show the same positions
        assert store.line_summary(real_line[0]) == fake.line_summary(fake_line[0])
    for real_id, fake_id in zip(real_line, fake_line, strict=True):
        real = get_status(store, FakeMediaStorage(), SETTINGS, real_id, now)
        shown = get_status(fake, FakeMediaStorage(), SETTINGS, fake_id, now)
        assert (real.state, real.queue_position, real.eta_seconds) == (
            shown.state,
            shown.queue_position,
            shown.eta_seconds,
        )


def test_a_status_read_makes_the_same_two_item_reads_at_any_line_length(aws, template):
    # Given the real table, with DynamoDB's requests counted as they leave the client
    client = aws.client("dynamodb")
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
    store = TaskRepository(template.functions["ApiFunction"].environment["TASKS_TABLE"], client)
    seen = []
    for more in (5, 145):
        # When the last of 5, then of 150, waiting tasks reads its status
        last = queue(store, more)[-1]
        calls.clear()
        status = get_status(store, FakeMediaStorage(), SETTINGS, last, utc_now())
        seen.append((status.queue_position, dict(calls)))
    # Then both are two GetItems (the task, one summary copy) and no query
    assert seen == [(4, {"GetItem": 2}), (149, {"GetItem": 2})]


def test_transactions_and_writes_on_other_threads_do_not_break_the_emulator(aws, template):
    # Given the real table, and moto's copy of the table before each transaction (its rollback)
    store = tasks_table(aws, template)
    line = queue(store, 30)
    failures: list[BaseException] = []

    def keep_creating() -> None:
        try:
            for _ in range(150):
                seed_task(store, TaskState.PENDING, utc_now())
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    # When tasks are created on another thread while moves in the line run as transactions
    writer = threading.Thread(target=keep_creating)
    writer.start()
    for task_id in line:
        assert store.mark_cancelled(task_id, utc_now())
    writer.join(timeout=60)

    # Then neither side failed (infra.moto_dynamodb serialises the emulator's writes, as DynamoDB is atomic)
    assert failures == []
    assert store.line_summary(line[0]).removed == tuple(range(1, 31))
