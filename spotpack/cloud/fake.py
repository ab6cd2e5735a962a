"""A recording, scriptable cloud and notice feed for unit tests of the provisioner's loop.

In the spirit of Karpenter's ``cloudprovider/fake``: :class:`FakeCloud` keeps
instances in memory, records every call, and can be told to fail the way real
clouds fail:

- :meth:`FakeCloud.insufficient_capacity` - these offerings have no room
  (launch skips them, and raises :class:`InsufficientCapacity` naming the ones
  it tried when none is left);
- :meth:`FakeCloud.throttle` - the next *n* calls of a method raise
  :class:`Throttled`;
- :meth:`FakeCloud.fail_next` - any error, for the next *n* calls;
- :meth:`FakeCloud.crash_after_launch` - the next launch creates the instance
  and then raises :class:`SimulatedCrash`, as if the process died between the
  cloud call and recording the claim. ``SimulatedCrash`` is a
  ``BaseException``, like a real crash it goes through ``except Exception``.

Its state outlives a "restart" (build a new loop around the same FakeCloud),
like a real cloud's, and ``launch`` looks the claim up first, like the real
providers, so the loop's crash recovery can be tested end to end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from spotpack.cloud.base import (
    NOTICE_WINDOWS,
    Instance,
    InsufficientCapacity,
    InterruptionNotice,
    LaunchRequest,
    NoticeKind,
    Offering,
    Throttled,
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SimulatedCrash(BaseException):
    """The process "died" right after the cloud launched an instance."""


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: the method and its argument."""

    method: str
    arg: Any


@dataclass
class FakeCloud:
    """An in-memory ``CloudProvider`` that records calls and injects failures."""

    name: str = "fake"
    clock: Callable[[], datetime] = _utcnow
    calls: list[Call] = field(default_factory=list)
    instances: dict[str, Instance] = field(default_factory=dict)
    unavailable: set[Offering] = field(default_factory=set)
    _failures: dict[str, deque[BaseException]] = field(default_factory=dict, repr=False)
    _crashes: int = 0
    _next_id: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- scripting -----------------------------------------------------------------------

    def insufficient_capacity(self, *offerings: Offering | tuple[str, str, str]) -> None:
        """These offerings have no room until :meth:`restore_capacity`."""
        self.unavailable.update(Offering(*o) for o in offerings)

    def restore_capacity(self, *offerings: Offering | tuple[str, str, str]) -> None:
        """Room again in ``offerings`` (all, when none is named)."""
        if offerings:
            self.unavailable.difference_update(Offering(*o) for o in offerings)
        else:
            self.unavailable.clear()

    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` (before doing anything)."""
        with self._lock:
            self._failures.setdefault(method, deque()).extend([error] * times)

    def throttle(self, times: int = 1, method: str = "launch") -> None:
        self.fail_next(method, Throttled(f"fake: {method} throttled"), times)

    def crash_after_launch(self, times: int = 1) -> None:
        self._crashes += times

    def calls_to(self, method: str) -> list[Any]:
        return [c.arg for c in self.calls if c.method == method]

    # --- CloudProvider -------------------------------------------------------------------

    def launch(self, req: LaunchRequest) -> Instance:
        self._enter("launch", req)
        existing = self._find(req.claim_id)
        if existing is not None:
            return existing
        tried = []
        for offering in req.offerings():
            if offering in self.unavailable:
                tried.append(offering)
                continue
            instance = self._create(req, offering)
            if self._crashes:
                self._crashes -= 1
                raise SimulatedCrash(f"crashed after launching {instance.instance_id}")
            return instance
        raise InsufficientCapacity(tried, f"fake: no capacity for claim {req.claim_id}")

    def find(self, claim_id: str) -> Instance | None:
        self._enter("find", claim_id)
        return self._find(claim_id)

    def list_owned(self) -> list[Instance]:
        self._enter("list_owned", None)
        return [i for i in self.instances.values() if i.state in ("pending", "running")]

    def terminate(self, instance_ids: Sequence[str]) -> None:
        self._enter("terminate", tuple(instance_ids))
        with self._lock:
            for instance_id in instance_ids:
                instance = self.instances.get(instance_id)
                if instance is not None:
                    self.instances[instance_id] = replace(instance, state="terminated")

    # --- helpers -------------------------------------------------------------------------

    def set_state(self, instance_id: str, state: str) -> None:
        """Move an instance along (``running``, ``terminated``...), as the cloud would."""
        with self._lock:
            self.instances[instance_id] = replace(self.instances[instance_id], state=state)

    def _enter(self, method: str, arg: Any) -> None:
        with self._lock:
            self.calls.append(Call(method, arg))
            queue = self._failures.get(method)
            error = queue.popleft() if queue else None
        if error is not None:
            raise error

    def _find(self, claim_id: str) -> Instance | None:
        live = [
            i
            for i in self.instances.values()
            if i.claim_id == claim_id and i.state in ("pending", "running")
        ]
        return min(live, key=lambda i: (i.launched_at, i.instance_id)) if live else None

    def _create(self, req: LaunchRequest, offering: Offering) -> Instance:
        with self._lock:
            self._next_id += 1
            instance_id = f"i-fake{self._next_id:08x}"
            instance = Instance(
                instance_id=instance_id,
                instance_type=offering.instance_type,
                zone=offering.zone,
                capacity=offering.capacity,
                claim_id=req.claim_id,
                state="pending",
                launched_at=self.clock(),
                node_name=f"node-{instance_id}",
                private_dns=f"node-{instance_id}.fake.internal",
            )
            self.instances[instance_id] = instance
        return instance


@dataclass
class FakeNotices:
    """An in-memory ``NoticeSource``: push notices, receive them, see what was acked.

    A received notice stays *in flight* until acked; :meth:`redeliver` puts the
    unacked ones back, as SQS does when the visibility timeout ends.
    """

    clock: Callable[[], datetime] = _utcnow
    queue: deque[InterruptionNotice] = field(default_factory=deque)
    in_flight: dict[str, InterruptionNotice] = field(default_factory=dict)
    acked: list[InterruptionNotice] = field(default_factory=list)
    receives: int = 0
    _seq: int = 0

    def push(self, *notices: InterruptionNotice) -> None:
        self.queue.extend(notices)

    def interrupt(
        self,
        instance_id: str,
        kind: NoticeKind = "spot-interruption",
        *,
        at: datetime | None = None,
        window: timedelta | None = NOTICE_WINDOWS["aws"],
    ) -> InterruptionNotice:
        """Queue a notice for ``instance_id``; its deadline is ``at + window`` (None: none)."""
        self._seq += 1
        when = at or self.clock()
        notice = InterruptionNotice(
            kind=kind,
            instance_id=instance_id,
            time=when,
            deadline=when + window if window is not None else None,
            receipt=f"fake-receipt-{self._seq}",
            event_id=f"fake-event-{self._seq}",
        )
        self.queue.append(notice)
        return notice

    def receive(
        self, max_messages: int = 10, wait_seconds: float = 0.0
    ) -> list[InterruptionNotice]:
        self.receives += 1
        out: list[InterruptionNotice] = []
        while self.queue and len(out) < max(1, max_messages):
            notice = self.queue.popleft()
            self.in_flight[notice.receipt] = notice
            out.append(notice)
        return out

    def ack(self, notice: InterruptionNotice) -> None:
        if self.in_flight.pop(notice.receipt, None) is not None:
            self.acked.append(notice)

    def redeliver(self) -> int:
        """Unacked notices go back on the queue; returns how many."""
        back = list(self.in_flight.values())
        self.in_flight.clear()
        self.queue.extend(back)
        return len(back)


__all__ = ["Call", "FakeCloud", "FakeNotices", "SimulatedCrash"]
