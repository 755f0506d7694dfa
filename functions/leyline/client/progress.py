"""The progress line the CLI draws on stderr."""

from __future__ import annotations

from typing import TextIO

BAR_WIDTH = 24


class ProgressLine:
    """Redrawn in place on a terminal; elsewhere (logs, CI) a new line only when the phase or the tens digit moves."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._drawn = 0  # width of the line on the terminal now
        self._last: tuple[str, int] | None = None

    def show(self, label: str, percent: int | None = None, detail: str = "") -> None:
        text = f"{label:<22}" if percent is None else f"{label:<22}{_bar(percent)} {percent:3d}%"
        text = f"{text}  {detail}".rstrip()
        if self._tty:
            self._stream.write("\r" + text.ljust(self._drawn))
            self._drawn = len(text)
        elif self._last != (label, -1 if percent is None else percent // 10):
            self._last = (label, -1 if percent is None else percent // 10)
            self._stream.write(text + "\n")
        self._stream.flush()

    def end(self) -> None:
        """Finishes the line in place, so that what follows starts on a fresh one."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0


def percent_of(done: int, total: int) -> int:
    return 100 if total <= 0 else min(100, done * 100 // total)


def duration(seconds: int) -> str:
    """45 -> '45 s', 125 -> '2 min 05 s'."""
    minutes, rest = divmod(max(0, seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _bar(percent: int) -> str:
    filled = BAR_WIDTH * percent // 100
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"
