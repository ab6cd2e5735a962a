"""Claims: one per instance we launched, followed from launch until its node is ready.

A claim is the provisioner's memory of "I asked the cloud for a node for these
pods". It moves

    launched  --node object appears-->  registered  --Ready=True-->  ready

and is judged against a **registration timeout** (default 15 minutes, counted
from the launch): an instance whose node is not ready by then is broken (a bad
image, a bootstrap that cannot reach the API server) and is terminated, and
its pods are planned again. Karpenter's liveness check is the same idea.

A claim that has registered and whose node then disappears is *gone*: someone
deleted the node, and a node is the instance (Karpenter's rule too), so the
instance is terminated.

While a claim is not ready it **holds** its pods: they are pending, yet they
are not planned again, and its room counts as in-flight capacity for other
pods. :func:`step` is the pure transition; :class:`ClaimBook` is the loop's
in-memory table (lost on restart on purpose: the cloud's tags are the truth,
see :mod:`provisioner.loop` for adoption).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from spotpack.cloud.base import Instance


class Phase(StrEnum):
    LAUNCHED = "launched"
    REGISTERED = "registered"
    READY = "ready"


class Verdict(StrEnum):
    KEEP = "keep"
    TIMED_OUT = "timed-out"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Claim:
    """An instance launched (or adopted) for some pods. Times are epoch seconds."""

    claim_id: str
    instance_id: str
    instance_type: str
    zone: str
    capacity: str
    launched_at: float
    price_per_hour: float = 0.0
    gpus: int = 0
    pods: frozenset[str] = frozenset()
    phase: Phase = Phase.LAUNCHED
    node_name: str | None = None
    registered_at: float | None = None
    ready_at: float | None = None
    adopted: bool = False
    reason: str = ""

    @property
    def in_flight(self) -> bool:
        """Launched but its node not ready yet: it holds its pods and its room."""
        return self.phase is not Phase.READY

    def holding(self, keys: Iterable[str]) -> Claim:
        return replace(self, pods=self.pods | frozenset(keys))

    @classmethod
    def from_instance(
        cls, instance: Instance, *, price_per_hour: float = 0.0, gpus: int = 0
    ) -> Claim:
        """A claim for an instance found in the cloud (a restart, another leader's launch)."""
        return cls(
            claim_id=instance.claim_id,
            instance_id=instance.instance_id,
            instance_type=instance.instance_type,
            zone=instance.zone,
            capacity=instance.capacity,
            launched_at=instance.launched_at.timestamp(),
            price_per_hour=price_per_hour,
            gpus=gpus,
            node_name=instance.node_name,
            adopted=True,
        )


@dataclass(frozen=True, slots=True)
class NodeSeen:
    """What the node informer shows of a claim's node."""

    name: str
    ready: bool


@dataclass(frozen=True, slots=True)
class Step:
    claim: Claim
    verdict: Verdict
    registered_now: bool = False
    """The node showed up in this step (the moment to say so in an Event)."""


def step(claim: Claim, seen: NodeSeen | None, now: float, timeout: float) -> Step:
    """The claim's next state given its node (or its absence) at ``now``.

    ======================  ==================  =========================================
    phase                   node                result
    ======================  ==================  =========================================
    launched                absent              keep; timed out after ``timeout``
    launched / registered   present, not Ready  registered; timed out after ``timeout``
    any                     present, Ready      ready (stays ready: kubelet's business now)
    registered / ready      absent              gone (the node was deleted)
    ======================  ==================  =========================================
    """
    if seen is None:
        if claim.phase is not Phase.LAUNCHED:
            return Step(claim, Verdict.GONE)
        if now - claim.launched_at >= timeout:
            return Step(claim, Verdict.TIMED_OUT)
        return Step(claim, Verdict.KEEP)
    first = claim.phase is Phase.LAUNCHED
    registered_at = claim.registered_at if claim.registered_at is not None else now
    if seen.ready or claim.phase is Phase.READY:
        ready_at = claim.ready_at if claim.ready_at is not None else now
        new = replace(
            claim,
            phase=Phase.READY,
            node_name=seen.name,
            registered_at=registered_at,
            ready_at=ready_at,
        )
        return Step(new, Verdict.KEEP, registered_now=first)
    new = replace(claim, phase=Phase.REGISTERED, node_name=seen.name, registered_at=registered_at)
    if now - claim.launched_at >= timeout:
        return Step(new, Verdict.TIMED_OUT, registered_now=first)
    return Step(new, Verdict.KEEP, registered_now=first)


class ClaimBook:
    """The claims this process knows, by id. Thread-safe: the loop writes, HTTP reads."""

    def __init__(self, claims: Iterable[Claim] = ()) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, Claim] = {c.claim_id: c for c in claims}

    def put(self, claim: Claim) -> None:
        with self._lock:
            self._claims[claim.claim_id] = claim

    def get(self, claim_id: str) -> Claim | None:
        with self._lock:
            return self._claims.get(claim_id)

    def remove(self, claim_id: str) -> Claim | None:
        with self._lock:
            return self._claims.pop(claim_id, None)

    def all(self) -> list[Claim]:
        with self._lock:
            return sorted(self._claims.values(), key=lambda c: c.claim_id)

    def ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._claims)

    def by_instance(self, instance_id: str) -> Claim | None:
        with self._lock:
            return next((c for c in self._claims.values() if c.instance_id == instance_id), None)

    def by_node(self, node_name: str) -> Claim | None:
        with self._lock:
            return next((c for c in self._claims.values() if c.node_name == node_name), None)

    def held(self) -> dict[str, str]:
        """Pod key -> claim id for the pods in-flight claims hold."""
        with self._lock:
            return {
                key: claim.claim_id
                for claim in sorted(self._claims.values(), key=lambda c: c.claim_id)
                if claim.in_flight
                for key in sorted(claim.pods)
            }

    def phases(self) -> dict[str, int]:
        counts = {phase.value: 0 for phase in Phase}
        with self._lock:
            for claim in self._claims.values():
                counts[claim.phase.value] += 1
        return counts

    def __len__(self) -> int:
        with self._lock:
            return len(self._claims)


__all__ = ["Claim", "ClaimBook", "NodeSeen", "Phase", "Step", "Verdict", "step"]
