"""The extender's view of the cluster: nodes, GPU usage per card, reservations.

Fed by watch-based informers (nodes, pods); read by filter/prioritize/bind.

GPU usage is rebuilt from pod annotations alone (ours, versioned JSON, or
HAMi's), so a restarted extender reaches the same per-card usage as the one
before it. A bind *reserves* its cards in memory before the Binding is sent
and holds them until the pod is seen bound (the informer delivers the pod with
its annotation) or gone; a reservation whose pod never shows up expires after
``reservation_ttl`` seconds. There is no node lock: concurrent binds are
serialized only around the few microseconds of fit-and-reserve, never around
an API call, so one slow bind never blocks the others (HAMi's node lock
allows one GPU pod per node in flight).

Per-node fit results are memoized inside each node's usage, per (usage
version, prepared demand): a burst of identical pods (replicas, executors)
costs one fit per node changed since the last pod, not one per node per pod.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from extender.columns import NodeColumns
from extender.schema import host_priority_fragments
from spotpack.capacity import LabelScheme
from spotpack.errors import InvalidInput
from spotpack.gpu import (
    Assignment,
    FitResult,
    NodeUsage,
    PreparedDemand,
    assignment_of_pod,
    build_assignment,
    fit_prepared,
)
from spotpack.nodeview import NodeFacts, NodeView, node_view
from spotpack.scoring.risk import interruption_risk, risk_score

log = logging.getLogger(__name__)
DONE_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass
class Holder:
    """Cards held by one pod: confirmed (seen bound) or reserved at bind."""

    pod_key: str
    node: str
    assignment: Assignment
    expires: float | None
    """Monotonic deadline of a reservation; None once the pod is seen bound."""


@dataclass(slots=True)
class NodeEntry:
    view: NodeView
    usage: NodeUsage | None
    """Per-card usage; None on nodes without GPUs."""
    risk: float = 100.0
    """Interruption-risk score 0..100 (100 = safest), kept current by the state."""
    price: float | None = None
    """``view.price``, one attribute hop closer: prioritize reads it for every candidate."""
    priorities: tuple[bytes, ...] = ()
    """The node's ``{"Host", "Score"}`` JSON for each score 0..10, encoded once per node."""

    @classmethod
    def of(cls, view: NodeView, usage: NodeUsage | None, risk: float) -> NodeEntry:
        return cls(view, usage, risk, view.price, host_priority_fragments(view.name))


NO_GPUS = FitResult(ok=False, reason="node has no GPUs", unresolvable=True)


class ClusterState:
    """Thread-safe cluster state; informer handlers write, request threads read."""

    def __init__(
        self,
        scheme: LabelScheme,
        facts: NodeFacts,
        *,
        reservation_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheme = scheme
        self.facts = facts
        self.reservation_ttl = reservation_ttl
        self.clock = clock
        self.lock = threading.RLock()
        self.nodes: dict[str, NodeEntry] = {}
        self.holders: dict[str, Holder] = {}
        self.reserved: set[str] = set()
        """Uids whose cards are held by a bind not yet seen bound."""
        self.by_node: dict[str, set[str]] = {}
        """Node name -> uids of the pods holding cards there (also before the node is seen)."""
        self.interruptions: dict[tuple[str, str], int] = {}
        self.drift = 0
        self._next_sweep = 0.0
        self.columns = NodeColumns()
        """Prioritize's numbers per node as arrays, marked here whenever they change."""

    # --- nodes ------------------------------------------------------------------------

    def upsert_node(self, node: Mapping[str, Any]) -> None:
        view = node_view(node, self.scheme, self.facts)
        if view.gpu_problem:
            log.warning(
                "node GPU inventory ignored", extra={"node": view.name, "problem": view.gpu_problem}
            )
        with self.lock:
            entry = self.nodes.get(view.name)
            self.columns.mark(view.name)
            if entry is None:
                self.nodes[view.name] = NodeEntry.of(view, self._usage(view), self._risk(view))
                return
            if view.interrupted and not entry.view.interrupted:
                self._count_interruption(view)
            if view.gpus != entry.view.gpus:
                entry.usage = self._usage(view)
            entry.view = view
            entry.price = view.price
            entry.risk = self._risk(view)

    def _risk(self, view: NodeView) -> float:
        """The node's risk score: the catalog's prior raised by interruptions seen here."""
        events = self.interruptions.get((view.instance_type or "", view.zone or ""), 0)
        return risk_score(interruption_risk(spot=view.spot, prior=view.base_risk, events=events))

    def _usage(self, view: NodeView) -> NodeUsage | None:
        """Usage of a node rebuilt from the pods holding cards on it (caller holds the lock)."""
        if view.gpus is None:
            return None
        mine = [self.holders[uid].assignment for uid in self.by_node.get(view.name, ())]
        usage, problems = NodeUsage.build(view.gpus, mine)
        for problem in problems:
            log.warning(
                "GPU assignment does not match the node",
                extra={"node": view.name, "problem": problem},
            )
        return usage

    def delete_node(self, node: Mapping[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        with self.lock:
            self.nodes.pop(name, None)
            self.columns.mark(name)
            for uid in list(self.by_node.get(name, ())):
                if uid in self.reserved:
                    self._drop(uid)

    def _count_interruption(self, view: NodeView) -> None:
        """An interruption seen raises the risk of every node of that (type, zone)."""
        if not (view.spot and view.instance_type):
            return
        key = (view.instance_type, view.zone or "")
        self.interruptions[key] = self.interruptions.get(key, 0) + 1
        for entry in self.nodes.values():
            if (entry.view.instance_type, entry.view.zone or "") == key:
                entry.risk = self._risk(entry.view)
                self.columns.mark(entry.view.name)

    # --- pods ---------------------------------------------------------------------------

    def upsert_pod(self, pod: Mapping[str, Any]) -> None:
        metadata = pod.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        phase = (pod.get("status") or {}).get("phase")
        node = (pod.get("spec") or {}).get("nodeName")
        if phase in DONE_PHASES:
            self.release(uid)
            return
        try:
            assignment = assignment_of_pod(pod)
        except InvalidInput as exc:  # a bad annotation must not stop the informer
            log.warning("pod GPU annotation ignored", extra={"pod": uid, "problem": str(exc)})
            assignment = None
        if not node or assignment is None:
            return
        key = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        with self.lock:
            current = self.holders.get(uid)
            if current is not None and current.node == node and current.assignment == assignment:
                current.expires = None
                self.reserved.discard(uid)
                return
            if current is not None:
                self.drift += 1
                self._drop(uid)
            self._hold(uid, Holder(key, node, assignment, None))

    def delete_pod(self, pod: Mapping[str, Any]) -> None:
        self.release(str((pod.get("metadata") or {}).get("uid", "")))

    def release(self, uid: str) -> None:
        with self.lock:
            self._drop(uid)

    def _hold(self, uid: str, holder: Holder) -> None:
        self.holders[uid] = holder
        if holder.expires is not None:
            self.reserved.add(uid)
        self.by_node.setdefault(holder.node, set()).add(uid)
        entry = self.nodes.get(holder.node)
        if entry is not None and entry.usage is not None:
            entry.usage.add(holder.assignment)
            self.columns.mark(holder.node)

    def _drop(self, uid: str) -> None:
        holder = self.holders.pop(uid, None)
        if holder is None:
            return
        self.reserved.discard(uid)
        uids = self.by_node.get(holder.node)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self.by_node[holder.node]
        entry = self.nodes.get(holder.node)
        if entry is not None and entry.usage is not None:
            entry.usage.remove(holder.assignment)
            self.columns.mark(holder.node)

    # --- reservations -------------------------------------------------------------------

    def sweep(self) -> int:
        """Release reservations whose pods never showed up bound; returns how many."""
        now = self.clock()
        if now < self._next_sweep:
            return 0
        with self.lock:
            self._next_sweep = now + 1.0
            stale = [uid for uid in self.reserved if (self.holders[uid].expires or now) < now]
            for uid in stale:
                log.info("reservation expired", extra={"pod": self.holders[uid].pod_key})
                self._drop(uid)
        return len(stale)

    def reserve(self, claim: Claim, node: str) -> Assignment | str:
        """Fit the pod on ``node`` against current usage and hold its cards.

        Returns the assignment, or why the pod no longer fits (another bind took
        the cards since filter ran). Binding the same pod twice to the same node
        returns the cards already held (the scheduler retries binds).
        """
        with self.lock:
            entry = self.nodes.get(node)
            if entry is None:
                return f"node {node} is not in the extender's cache"
            existing = self.holders.get(claim.uid)
            if existing is not None:
                if existing.node == node:
                    return existing.assignment
                self._drop(claim.uid)
            result = self.fit_on(entry, claim.prepared)
            if not result.ok or result.assignment_devices is None:
                return result.reason
            assignment = build_assignment(
                node, claim.layout, claim.demand, result.assignment_devices
            )
            deadline = self.clock() + self.reservation_ttl
            self._hold(claim.uid, Holder(claim.key, node, assignment, deadline))
            return assignment

    # --- decisions ----------------------------------------------------------------------

    @staticmethod
    def fit_on(entry: NodeEntry, prepared: PreparedDemand) -> FitResult:
        """Per-node fit, memoized in the node's usage (caller holds the lock)."""
        if entry.view.gpus is None or entry.usage is None:
            return NO_GPUS
        return fit_prepared(prepared, entry.view.gpus, entry.usage)

    def counts(self) -> tuple[int, int, int]:
        """(nodes, pods holding GPUs, reservations) for metrics."""
        with self.lock:
            return len(self.nodes), len(self.holders), len(self.reserved)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a bind needs to know about the pod to reserve its cards."""

    uid: str
    key: str
    demand: Any
    prepared: PreparedDemand
    layout: Any
