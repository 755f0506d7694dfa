"""How long a received queue message stays hidden: the one retry policy of the intake and the processor.

One FIFO message group is one line: a message that failed holds up everything behind it until it comes
back, so it comes back after seconds, not after its queue's visibility timeout.
"""

from __future__ import annotations

import math

CRASH_GRACE_SECONDS = 10
"""A crashed run's job reappears this long after the invocation would have timed out."""


def retry_backoff_seconds(receive_count: int) -> int:
    """How long a failed message stays hidden before its next attempt: 2, 4, 8 s for its 1st, 2nd, 3rd receive."""
    return int(2**receive_count)


def crash_retry_seconds(remaining_millis: int) -> int:
    """How long a job stays hidden while it runs: past the invocation's end, so a crashed run comes back
    then rather than after the queue's visibility timeout (6 x the function's Timeout)."""
    return math.ceil(remaining_millis / 1000) + CRASH_GRACE_SECONDS
