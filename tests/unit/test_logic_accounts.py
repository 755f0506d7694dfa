"""Accounts in leyline.logic, on the in-memory fakes: who sees which task in each access mode (switching modes
loses no record), GET /tasks pages, the page size, and per-user caps and Idempotency-Key scopes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from leyline.errors import BadRequest, TaskNotFound, TooManyTasks
from leyline.logic.lifecycle import cancel_task, delete_task
from leyline.logic.submit import key_scope
from leyline.logic.tasks import (
    DEFAULT_PAGE_SIZE,
    create_presigned_upload,
    get_status,
    list_tasks,
    page_size,
    video_location,
)
from leyline.models import Caller, LineSummary
from tests.fakes import SETTINGS, FakeClock, FakeMediaStorage, FakeSlotWakes, FakeTaskStore

ALICE, BOB = "sub-alice", "sub-bob"
IP = "198.51.100.1"


class CountingStore(FakeTaskStore):
    """The fake store, counting its line-summary reads."""

    def __init__(self) -> None:
        super().__init__()
        self.summary_reads = 0

    def line_summary(self, task_id: str) -> LineSummary:
        self.summary_reads += 1
        return super().line_summary(task_id)


class World:
    def __init__(self) -> None:
        self.settings = replace(SETTINGS, max_waiting_tasks_per_client=100)
        self.clock, self.tasks, self.media = FakeClock(), CountingStore(), FakeMediaStorage()

    def create(self, caller: Caller) -> str:
        ticket = create_presigned_upload(
            self.tasks, self.media, self.settings, self.clock(), client=caller.client, owner=caller.user
        )
        self.clock.advance(0.01)  # one after the other, as requests come
        return ticket.task_id

    def status(self, task_id: str, user: str | None) -> dict[str, object]:
        return get_status(self.tasks, self.media, self.settings, task_id, self.clock(), user=user).to_json()

    def page(self, user: str, limit: int, cursor: str | None = None) -> tuple[list[str], str | None]:
        page = list_tasks(self.tasks, self.media, self.settings, user, self.clock(), limit=limit, cursor=cursor)
        return [status.task_id for status in page.tasks], page.next_cursor


@pytest.fixture
def world() -> World:
    return World()


def test_in_accounts_mode_a_user_sees_their_own_tasks_and_no_one_elses(world):
    # Given a task of Alice's and an anonymous one (created in open mode)
    alices = world.create(Caller(IP, user=ALICE))
    anonymous = world.create(Caller(IP))

    # Then Alice reads hers; Bob is told it does not exist, as for the anonymous one, in the same words
    assert world.status(alices, ALICE)["task_id"] == alices
    for task_id in (alices, anonymous):
        with pytest.raises(TaskNotFound) as refused:
            world.status(task_id, BOB)
        assert refused.value.message == f"No task {task_id} exists."
    # And the other task routes refuse him alike, changing nothing
    with pytest.raises(TaskNotFound):
        video_location(world.tasks, world.media, world.settings, alices, world.clock(), attachment=False, user=BOB)
    with pytest.raises(TaskNotFound):
        cancel_task(world.tasks, world.media, FakeSlotWakes(), world.settings, alices, world.clock(), user=BOB)
    with pytest.raises(TaskNotFound):
        delete_task(world.tasks, world.media, FakeSlotWakes(), world.settings, alices, world.clock(), user=BOB)
    assert world.status(alices, ALICE)["state"] == "PENDING"


def test_switching_modes_loses_no_record(world):
    # Given tasks made in open mode (no owner) and in accounts mode (Alice's)
    anonymous = world.create(Caller(IP))
    alices = world.create(Caller(IP, user=ALICE))

    # When the deployment runs in accounts mode, the anonymous task is no user's: nobody sees it...
    with pytest.raises(TaskNotFound):
        world.status(anonymous, ALICE)
    # ...and back in open mode (no user), both are there, as they were
    assert world.status(anonymous, None)["state"] == "PENDING"
    assert world.status(alices, None)["state"] == "PENDING"
    assert world.tasks.get(alices).owner == ALICE


def test_a_history_is_read_newest_first_page_by_page_with_nothing_missing_or_repeated(world):
    # Given 7 tasks of Alice's, interleaved with Bob's
    alices = []
    for _ in range(7):
        alices.append(world.create(Caller(IP, user=ALICE)))
        world.create(Caller(IP, user=BOB))

    # When she reads pages of 3
    seen, cursor, pages = [], None, 0
    while True:
        ids, cursor = world.page(ALICE, 3, cursor)
        seen += ids
        pages += 1
        if cursor is None:
            break

    # Then every task of hers comes once, newest first, and none of Bob's
    assert pages == 3
    assert seen == alices[::-1]


def test_a_page_of_waiting_tasks_reads_the_line_once_and_each_entry_is_its_status(world):
    # Given Alice's 5 tasks waiting in line
    ids = [world.create(Caller(IP, user=ALICE)) for _ in range(5)]
    for task_id in ids:
        assert world.tasks.mark_queued(task_id, world.clock(), opened_since=world.clock() - timedelta(hours=1))
    world.tasks.summary_reads = 0

    # When she lists them
    page = list_tasks(world.tasks, world.media, world.settings, ALICE, world.clock())

    # Then one line-summary read served the whole page, and each entry is what GET /status shows
    assert world.tasks.summary_reads == 1
    assert [status.to_json() for status in page.tasks] == [world.status(task_id, ALICE) for task_id in ids[::-1]]
    assert [status.queue_position for status in page.tasks] == [4, 3, 2, 1, 0]


def test_expired_tasks_are_left_out_of_a_history(world):
    # Given one old task (past its retention, not yet removed by the TTL) and one new
    old = world.create(Caller(IP, user=ALICE))
    world.clock.advance(timedelta(days=world.settings.retention_days, minutes=1).total_seconds())
    new = world.create(Caller(IP, user=ALICE))

    # Then the history shows the new one only
    assert world.page(ALICE, 10) == ([new], None)
    assert old != new


@pytest.mark.parametrize(("raw", "size"), [(None, DEFAULT_PAGE_SIZE), ("1", 1), ("100", 100), ("020", 20)])
def test_a_page_size_is_1_to_100_default_20(raw, size):
    assert page_size(raw) == size


@pytest.mark.parametrize("raw", ["0", "101", "-3", "", "x", "1.0", "²"])
def test_any_other_page_size_is_refused(raw):
    with pytest.raises(BadRequest) as refused:
        page_size(raw)
    assert refused.value.code == "INVALID_LIMIT"


def test_the_cap_and_idempotency_keys_count_per_user_not_per_address(world):
    # Given Alice at two addresses, and Bob at one of hers
    at_home, at_work, bob = Caller("203.0.113.1", ALICE), Caller("203.0.113.2", ALICE), Caller("203.0.113.1", BOB)

    # Then Alice is one client wherever she is, and Bob another at the same address
    assert at_home.client == at_work.client != bob.client
    assert key_scope(at_home.client) == key_scope(at_work.client) != key_scope(bob.client)
    # And anonymous callers remain their address, as in open mode
    assert Caller("203.0.113.1").client == "203.0.113.1"
    # And the cap counts Alice's tasks from both addresses together
    world.settings = replace(world.settings, max_waiting_tasks_per_client=2)
    world.create(at_home)
    world.create(at_work)
    with pytest.raises(TooManyTasks):
        world.create(at_work)
    world.create(bob)


def test_a_cursor_of_another_user_is_refused(world):
    for _ in range(2):
        world.create(Caller(IP, user=ALICE))
    _, cursor = world.page(ALICE, 1)
    with pytest.raises(BadRequest):
        world.page(BOB, 1, cursor)
