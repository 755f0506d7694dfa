"""Taking a task back: the domain behind POST /tasks/{task_id}/cancel and DELETE /tasks/{task_id}.

A cancel is one conditional write, TaskStore.mark_cancelled, which leyline.states allows from every unfinished
state and from no final one. A task waiting for its upload or in line leaves the line at once (the tasks behind
it move up), and the model skips its job when it comes (logic/processing.run_model: a final task is not run). A
task inside the model is stopped by the model itself: its next progress write, allowed only while PROCESSING, is
refused, and the run ends without storing a video (logic/processing.py). A cancel of a task that may hold a model
slot (PROCESSING, or QUEUED when read: the dispatcher may start it meanwhile) wakes the dispatcher right after
its write (logic/slots.slot_freed), so the next task takes the slot at once.
"""

from __future__ import annotations

from datetime import datetime

from leyline.config import Settings
from leyline.errors import TaskFinished, TaskNotFound
from leyline.logic.ports import MediaStorage, SlotWakes, TaskStore
from leyline.logic.slots import slot_freed
from leyline.logic.tasks import get_status, shown_task, visible_to
from leyline.models import Task, TaskState, TaskStatus, upload_key, video_key


def cancel_task(
    tasks: TaskStore,
    media: MediaStorage,
    wakes: SlotWakes,
    settings: Settings,
    task_id: str,
    now: datetime,
    *,
    user: str | None = None,
) -> TaskStatus:
    """CANCELLED from PENDING, QUEUED or PROCESSING; the status after it. Cancelling a CANCELLED task again
    answers the same status; a task that ended otherwise (shown as SUCCESS or FAILURE) is TaskFinished.
    `user`: the signed-in caller, who can cancel only their own tasks (another's is unknown to them)."""
    task = shown_task(tasks, settings, task_id, now, user=user)
    if task.state is not TaskState.CANCELLED:
        _refuse_if_finished(task)
        if not _cancel(tasks, wakes, settings, task, now):
            # It ended between the read and the write (the model finished, or another cancel was first): it stands.
            _refuse_if_finished(shown_task(tasks, settings, task_id, now))
    return get_status(tasks, media, settings, task_id, now, user=user)


def delete_task(
    tasks: TaskStore,
    media: MediaStorage,
    wakes: SlotWakes,
    settings: Settings,
    task_id: str,
    now: datetime,
    *,
    user: str | None = None,
) -> None:
    """Cancels the task if it is unfinished, then removes its upload, its video and its record, in that order.

    The cancel comes first so that a run in the model stores no video after the delete: a run that stored its
    video before it saw the cancel has its SUCCESS refused and deletes the video itself. The record goes last,
    so a delete that stops half-way can be asked again. An expired task not yet removed by retention is deleted
    too (what the user asks for, and what retention would do)."""
    task = tasks.get(task_id)
    if task is None or not visible_to(task, user):
        raise TaskNotFound(f"No task {task_id} exists.")
    if not task.state.is_final:
        _cancel(tasks, wakes, settings, task, now)  # refused only if it ended meanwhile: deleted all the same
    media.delete(upload_key(task_id))
    media.delete(video_key(task_id))
    tasks.delete(task_id)


def _cancel(tasks: TaskStore, wakes: SlotWakes, settings: Settings, task: Task, now: datetime) -> bool:
    """The cancel's one write; a task that was in line when read may have held a slot, so the dispatcher is
    woken after it (a stale wake costs it one read of the line summary)."""
    if not tasks.mark_cancelled(task.task_id, now):
        return False
    if task.state in (TaskState.QUEUED, TaskState.PROCESSING):
        slot_freed(wakes, settings)
    return True


def _refuse_if_finished(task: Task) -> None:
    """Raises TaskFinished for a task that ended other than by a cancel (as /status shows it)."""
    if task.state.is_final and task.state is not TaskState.CANCELLED:
        shown = task.state.value
        if task.error_code:
            shown = f"{shown} ({task.error_code})"
        raise TaskFinished(f"Task {task.task_id} has already finished, {shown}: there is nothing to cancel.")
