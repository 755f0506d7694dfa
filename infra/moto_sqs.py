"""moto's SQS long polling made to behave as SQS's does when a FIFO message group frees.

moto's ReceiveMessage with a WaitTimeSeconds takes a copy of the FIFO groups in flight once, when the call
begins, then loops until a message it may deliver turns up or the wait ends; between passes it waits only
while the queue holds no visible message at all. So a message visible behind its group's in-flight one (the
next job of a model slot, sent while the slot's last run is being deleted) did two things: the call spun a
core until its wait ended (the server's GIL with it: every other request of the stack slowed down), and it
never delivered that message, however soon the group freed, because its copy of the groups was stale. A
slot's next task waited up to a whole WaitTimeSeconds.

And when several received messages of one FIFO group come back together (a Lambda batch whose visibility ran
out), moto's receive released each from its in-flight set only as it reached it, so the first was skipped as
"behind" the ones still marked in flight and the group came back out of order (the last message first).
Here a receive first releases every in-flight message whose visibility ran out, so the group comes back in
order, as SQS delivers it.

Here a long poll is a series of moto's own zero-wait receives, each with the queue's state of that moment,
under the queue's lock (so two pollers never take the same message), and between them the poll sleeps on
the queue's condition until a send, a delete or a visibility change wakes it, or RECHECK_SECONDS pass (a
message also becomes visible when its visibility timeout or delay runs out, which nothing signals).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from moto.sqs.models import SQSBackend

# The longest a waiting poll goes without looking again: the latest a message whose visibility timeout or
# delay ran out is delivered (SQS gives no bound either; Lambda's pollers see such messages within ~1 s).
RECHECK_SECONDS = 0.2
_CHANGES = ("delete_message", "delete_message_batch", "change_message_visibility", "change_message_visibility_batch")


def long_polls_wake_on_change() -> None:
    """Idempotent: each method is wrapped once per process."""
    if getattr(SQSBackend.receive_message, "_leyline_long_poll", False):
        return
    SQSBackend.receive_message = _long_poll(SQSBackend.receive_message)  # type: ignore[method-assign]
    for name in _CHANGES:
        setattr(SQSBackend, name, _waking(getattr(SQSBackend, name)))


def _long_poll(receive: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(receive)
    def receive_message(
        backend: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        queue = backend.get_queue(queue_name)
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        with queue._messages_lock:  # a Condition on an RLock: moto's own send takes it too
            while True:
                _release_timed_out(queue)
                received = receive(backend, queue_name, count, 0, visibility_timeout, message_attribute_names)
                left = deadline - time.monotonic()
                if received or left <= 0:
                    return received
                queue._messages_lock.wait(min(left, RECHECK_SECONDS))

    receive_message._leyline_long_poll = True  # type: ignore[attr-defined]
    return receive_message


def _release_timed_out(queue: Any) -> None:
    """Messages received and not deleted whose visibility ran out are no longer in flight, all of them at once."""
    for message in [message for message in queue.pending_messages if message.visible]:
        queue.pending_messages.remove(message)


def _waking(change: Callable[..., Any]) -> Callable[..., Any]:
    """`change` (a delete or a visibility change: either may free a message or its FIFO group) under the
    queue's lock, waking the polls that wait on the queue."""

    @functools.wraps(change)
    def changed(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = backend.get_queue(queue_name)
        with queue._messages_lock:
            result = change(backend, queue_name, *args, **kwargs)
            queue._messages_lock.notify_all()
            return result

    return changed
