"""One open watch: replays the history from a version, then follows new changes.

The stream yields *batches* of ``(type, object)`` events so the server writes a
burst of changes (a binding storm) as one chunk instead of one syscall per
event. It never holds the store lock while the consumer runs, and it ends on
its deadline (``timeoutSeconds``), when the store closes watches (fault
injection or shutdown), when the caller's ``stop`` event is set, or when
``alive()`` reports the client gone.

Selectors are applied to both sides of a modification, like kube's watch
cache: an object that stops matching is sent as DELETED, one that starts
matching as ADDED, so a watch on ``spec.nodeName=`` sees a pod leave when it is
bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from spotpack.devcluster.errors import expired
from spotpack.devcluster.history import (
    ADDED,
    BOOKMARK,
    DELETED,
    ERROR,
    MODIFIED,
    Change,
    HistoryExpiredError,
)
from spotpack.devcluster.resources import ResourceType
from spotpack.devcluster.selectors import Selector

if TYPE_CHECKING:
    from spotpack.devcluster.store import Store

Obj = dict[str, Any]
Event = tuple[str, Obj]

BATCH = 512
# (matched before, matches now) -> what a selector-filtered watch reports
_MODIFIED_AS = {(True, True): MODIFIED, (False, True): ADDED, (True, False): DELETED}
_TICK = 0.5  # how often an idle stream checks its deadline, stop flag and client


class WatchStream:
    """Iterate to receive event batches; see the module docstring for when it ends."""

    def __init__(
        self,
        store: Store,
        rtype: ResourceType,
        *,
        namespace: str,
        selector: Selector,
        cursor: int,
        initial: list[Obj] | None,
        timeout: float,
        bookmark_interval: float | None,
        stop: threading.Event | None,
        alive: Callable[[], bool] | None,
    ) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self.selector = selector
        self.cursor = cursor
        self.closed = False
        self.dropped = False  # closed as a broken connection rather than a clean end
        self._store = store
        self._initial = initial
        self._deadline = time.monotonic() + timeout
        self._bookmark_interval = bookmark_interval
        self._stop = stop
        self._alive = alive

    def close(self, *, abrupt: bool = False) -> None:
        """Mark the stream closed; the store's condition must be notified to wake it."""
        self.closed = True
        self.dropped = self.dropped or abrupt

    def __iter__(self) -> Iterator[list[Event]]:
        try:
            yield from self._initial_batches()
            yield from self._follow()
        finally:
            self._store._forget_watch(self)

    def _initial_batches(self) -> Iterator[list[Event]]:
        initial, self._initial = self._initial or [], None
        for start in range(0, len(initial), BATCH):
            yield [(ADDED, obj) for obj in initial[start : start + BATCH]]

    def _ended(self, now: float) -> bool:
        if self.closed or now >= self._deadline:
            return True
        if self._stop is not None and self._stop.is_set():
            return True
        return self._alive is not None and not self._alive()

    def _follow(self) -> Iterator[list[Event]]:
        next_bookmark = time.monotonic() + (self._bookmark_interval or 0.0)
        while True:
            now = time.monotonic()
            if self._ended(now):
                return
            wait = min(self._deadline - now, _TICK)
            if self._bookmark_interval:
                wait = min(wait, next_bookmark - now)
            try:
                changes = self._store._changes_after(self, max(wait, 0.0))
            except HistoryExpiredError as exc:
                yield [(ERROR, expired(exc.requested, exc.oldest).status())]
                return
            if changes:
                self.cursor = changes[-1].rv
                events = [e for c in changes if (e := self._translate(c)) is not None]
                if events:
                    yield events
            if self._bookmark_interval and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + self._bookmark_interval
                yield [(BOOKMARK, self._bookmark())]

    def _translate(self, change: Change) -> Event | None:
        """The event this watcher sees for ``change``, if any (selector-aware)."""
        if change.resource != self.rtype.plural:
            return None
        if self.namespace and change.namespace != self.namespace:
            return None
        now_matches = self.selector.matches(change.obj)
        if change.type != MODIFIED:
            return (change.type, change.obj) if now_matches else None
        was_matching = change.prev is not None and self.selector.matches(change.prev)
        kind = _MODIFIED_AS.get((was_matching, now_matches))
        return (kind, change.obj) if kind else None

    def _bookmark(self) -> Obj:
        """Kube's bookmark: only kind, apiVersion and the resourceVersion reached."""
        return {
            "kind": self.rtype.kind,
            "apiVersion": self.rtype.api_version,
            "metadata": {"resourceVersion": str(self.cursor)},
        }
