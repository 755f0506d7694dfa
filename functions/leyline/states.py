"""A task's states and every move between them: the one table the whole product follows.

Standard library only, so that the CLI (leyline.client) and the page's tests share this vocabulary with the
functions. The task table's conditional writes are built from TRANSITIONS (adapters/tasks_table.py), so no
write can move a task along a transition that is not listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class TaskState(StrEnum):
    PENDING = "PENDING"  # created, waiting for the upload
    QUEUED = "QUEUED"  # uploaded, waiting for the model
    PROCESSING = "PROCESSING"  # inside the model
    SUCCESS = "SUCCESS"  # the video is stored
    FAILURE = "FAILURE"  # the video will never exist; the task's error says why
    CANCELLED = "CANCELLED"  # taken back by its user before it finished

    @property
    def is_final(self) -> bool:
        """Nothing moves a task on from a final state: its outcome stands."""
        return not TRANSITIONS[self]


TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    # The intake queues a landed upload; an upload that never lands fails (UPLOAD_EXPIRED) or is cancelled.
    TaskState.PENDING: frozenset({TaskState.QUEUED, TaskState.FAILURE, TaskState.CANCELLED}),
    TaskState.QUEUED: frozenset({TaskState.PROCESSING, TaskState.FAILURE, TaskState.CANCELLED}),
    # PROCESSING -> PROCESSING: progress while the model runs, and a retry re-entering after a crash.
    TaskState.PROCESSING: frozenset({TaskState.PROCESSING, TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED}),
    TaskState.SUCCESS: frozenset(),
    TaskState.FAILURE: frozenset(),
    TaskState.CANCELLED: frozenset(),
}

FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)


def can_move(source: TaskState, target: TaskState) -> bool:
    return target in TRANSITIONS[source]


def sources_of(target: TaskState, *, only: TaskState | None = None) -> frozenset[TaskState]:
    """The states a task may be in for a write to move it to `target`; with `only`, that one state, which
    the table must allow (a write asking for a move the table does not list is a bug: ValueError)."""
    sources = frozenset(source for source, targets in TRANSITIONS.items() if target in targets)
    if only is None:
        return sources
    if only not in sources:
        raise ValueError(f"the transition table does not allow {only} -> {target}")
    return frozenset({only})
