"""The bounded log of changes that watches replay from.

Every write to the store bumps the global resourceVersion by exactly one and
appends exactly one change, so the change with version ``rv`` sits at index
``rv - first`` of the deque: a watch resumes in O(1) to find its place and
O(k) to read the k changes it missed. When the deque is full the oldest
change falls off; a watch that asks for a version older than what remains is
told ``410 Expired`` and must relist, exactly as with etcd compaction.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write. ``obj`` and ``prev`` are never mutated after commit."""

    rv: int
    type: str
    resource: str
    namespace: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None


class HistoryExpiredError(Exception):
    """The requested version is older than the oldest retained change."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest  # kube reports the oldest version it can resume from


class History:
    """Bounded, contiguous log of changes; not thread-safe (the store locks)."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("history length must be at least 1")
        self._changes: deque[Change] = deque(maxlen=maxlen)
        self._last = 0
        self._compacted = 0  # every version <= this is gone

    @property
    def last(self) -> int:
        return self._last

    @property
    def oldest_resumable(self) -> int:
        """The oldest version a watch can still start from."""
        if self._changes:
            return self._changes[0].rv - 1
        return self._compacted

    def append(self, change: Change) -> None:
        if change.rv != self._last + 1:
            raise ValueError(f"change {change.rv} does not follow {self._last}")
        if len(self._changes) == self._changes.maxlen:
            self._compacted = self._changes[0].rv
        self._changes.append(change)
        self._last = change.rv

    def compact(self) -> None:
        """Forget every change, as etcd compaction does: only versions >= now resume."""
        self._changes.clear()
        self._compacted = self._last

    def since(self, rv: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes after version ``rv`` (empty if none yet)."""
        if rv < self.oldest_resumable:
            raise HistoryExpiredError(rv, self.oldest_resumable)
        if rv >= self._last:
            return []
        start = rv + 1 - self._changes[0].rv
        stop = min(len(self._changes), start + limit)
        return [self._changes[i] for i in range(start, stop)]
