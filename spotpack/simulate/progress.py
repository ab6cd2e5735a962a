"""Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise (logs, CI).

A bar redrawn with ``\\r`` is unreadable in a log file, and silence for a minute
looks like a hang; so the plain form prints a few whole lines instead.
"""

from __future__ import annotations

from typing import TextIO

BAR = 30


def bar(fraction: float, width: int = BAR) -> str:
    """``[#####.....]`` for ``fraction`` in 0..1 (clamped)."""
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class ProgressBar:
    """Writes progress to ``stream``; ``live`` redraws one line (a TTY), else steps of 10%."""

    def __init__(self, stream: TextIO, *, live: bool, label: str = "") -> None:
        self.stream = stream
        self.live = live
        self.label = label
        self._next_decile = 0
        self._drawn = False

    def update(self, t: float, total: float, status: str) -> None:
        fraction = t / total if total > 0 else 1.0
        line = f"{self.label} {bar(fraction)} {100 * fraction:3.0f}% t={t:.0f}s {status}"
        if self.live:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self._drawn = True
            return
        decile = int(fraction * 10)
        if decile >= self._next_decile:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._next_decile = decile + 1

    def close(self) -> None:
        if self.live and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


__all__ = ["ProgressBar", "bar"]
