"""Batching windows for newly pending pods: plan once per burst, not once per pod.

A Spark application asks for its executors over a second or two, a Deployment
scale-up for its replicas in one go. Planning each pod as it arrives would
launch one node per pod; waiting for the burst to end lets the planner pack
them together. A window opens with the first new pending pod and closes

    idle seconds after the last new pod  (the burst is over), or
    max seconds after the first one      (a steady trickle still gets planned)

whichever comes first (Karpenter's 1 s idle / 10 s max). A pod already in the
open window does not extend it: only *new* pods mean the burst goes on.

The clock is injectable (monotonic seconds), so tests move time by hand; the
object is thread-safe, since informer threads add and the loop takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Batcher:
    """One open window at a time; :meth:`take` closes it once it is due."""

    def __init__(
        self,
        idle: float = 1.0,
        max_wait: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle <= 0 or max_wait < idle:
            raise ValueError(f"need 0 < idle <= max_wait, got idle={idle} max_wait={max_wait}")
        self.idle = idle
        self.max_wait = max_wait
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._first: float | None = None
        self._last: float | None = None

    def add(self, key: str) -> bool:
        """Count ``key`` into the window (opening one); False when it is in it already."""
        with self._lock:
            if key in self._keys:
                return False
            now = self._clock()
            self._keys.add(key)
            if self._first is None:
                self._first = now
            self._last = now
            return True

    def _deadline(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.idle, self._first + self.max_wait)

    def time_left(self) -> float | None:
        """Seconds until the open window is due (0 when due); None when no window is open."""
        with self._lock:
            deadline = self._deadline()
        return None if deadline is None else max(0.0, deadline - self._clock())

    def due(self) -> bool:
        left = self.time_left()
        return left is not None and left <= 0

    def take(self) -> frozenset[str]:
        """The window's pod keys if it is due (closing it), else an empty set."""
        with self._lock:
            deadline = self._deadline()
            if deadline is None or self._clock() < deadline:
                return frozenset()
            return self._close()

    def flush(self) -> frozenset[str]:
        """Close the window now, due or not (a new leader plans everything at once)."""
        with self._lock:
            return self._close()

    def _close(self) -> frozenset[str]:
        keys = frozenset(self._keys)
        self._keys.clear()
        self._first = self._last = None
        return keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


__all__ = ["Batcher"]
