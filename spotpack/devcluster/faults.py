"""Faults a test can inject into the HTTP layer: delays and error answers.

Faults are looked up by ``(resource, verb)`` where ``resource`` may name a
subresource (``pods/binding``, ``nodes/status``) and either part may be ``*``.
They act only on requests that come through the server, so a test can still
arrange state through the store directly while the API misbehaves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}
)


@dataclass(slots=True)
class Fault:
    """Delay the request by ``delay`` seconds, then fail it with ``code`` if set."""

    resource: str
    verb: str
    delay: float = 0.0
    code: int | None = None
    message: str = "injected fault"
    times: int | None = None  # None: until cleared

    def applies_to(self, resource: str, verb: str) -> bool:
        return self.resource in ("*", resource) and self.verb in ("*", verb)


class FaultPlan:
    """Thread-safe list of active faults; the first matching one wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.verb not in VERBS:
            raise ValueError(f"unknown verb {fault.verb!r}; use one of {sorted(VERBS)}")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, resource: str, verb: str) -> Fault | None:
        """The fault for this request, consuming one of its ``times`` if limited."""
        with self._lock:
            for fault in self._faults:
                if not fault.applies_to(resource, verb):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None
