"""Paginated lists (``limit`` / ``continue``), as kube-apiserver serves them.

The first page takes a snapshot of the matching objects and answers with a
``continue`` token; later pages are slices of that same snapshot, so a client
paging through 50,000 pods sees one consistent list at one resourceVersion,
as from etcd. Snapshots hold references, not copies, and expire after a while
(a stale token answers 410 ``Expired``, and the client lists again).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spotpack.devcluster.errors import ApiError, bad_request

TTL_SECONDS = 300.0
MAX_SNAPSHOTS = 64


@dataclass
class _Snapshot:
    items: list[Any]
    resource_version: str
    expires: float


class Pager:
    """Snapshots of paginated lists, by token."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._snapshots: dict[str, _Snapshot] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def page(
        self,
        limit: int,
        token: str | None,
        take: Callable[[], tuple[list[Any], str]],
    ) -> tuple[list[Any], str, str | None, int]:
        """(items, resourceVersion, next token or None, remaining item count)."""
        if limit <= 0:
            raise bad_request("limit must be a positive integer")
        if token:
            snapshot, offset = self._resume(token)
            key = token.split(":", 1)[0]
        else:
            items, rv = take()
            snapshot, offset = _Snapshot(items, rv, self._clock() + TTL_SECONDS), 0
            key = secrets.token_hex(8)
        end = offset + limit
        page = snapshot.items[offset:end]
        remaining = max(len(snapshot.items) - end, 0)
        with self._lock:
            self._expire()
            if remaining:
                self._snapshots[key] = snapshot
                return page, snapshot.resource_version, f"{key}:{end}", remaining
            self._snapshots.pop(key, None)
        return page, snapshot.resource_version, None, 0

    def _resume(self, token: str) -> tuple[_Snapshot, int]:
        key, _, offset = token.partition(":")
        with self._lock:
            snapshot = self._snapshots.get(key)
        if snapshot is None or snapshot.expires < self._clock():
            raise ApiError(
                410,
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter.",
                reason="Expired",
            )
        if not offset.isdigit():
            raise bad_request(f"continue token {token!r} is malformed")
        return snapshot, int(offset)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._snapshots.items() if s.expires < now]:
            del self._snapshots[key]
        while len(self._snapshots) > MAX_SNAPSHOTS:
            del self._snapshots[next(iter(self._snapshots))]
