"""The loop's decisions, as pure functions over values: the loop only applies them.

- :func:`launches`: which planned nodes need a launch (not already claimed);
- :func:`claim_actions`: what the lifecycle step means for each claim
  (terminate a timed-out instance, forget a gone one, announce a registration);
- :func:`scale_down`: which empty nodes of ours to remove, and why the others stay;
- :func:`unregistered`: owned instances without a claim that never became nodes;
- :func:`decide_notice`: what to do with an interruption notice.

Nothing here calls the cloud or the API server, reads a clock or logs; the
same inputs give the same decision, which is what the table-driven tests check.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from provisioner.lifecycle import Claim, NodeSeen, Step, Verdict, step
from provisioner.views import NodeInfo, PodInfo, Snapshot
from spotpack.cloud.base import Instance, InterruptionNotice
from spotpack.interruption import SPOTPACK_TAINT
from spotpack.provisioning.model import Plan, PlannedNode

# --- launches ------------------------------------------------------------------------------


def launches(plan: Plan, known: Collection[str]) -> list[PlannedNode]:
    """Planned nodes whose claim this process does not hold yet, in plan order."""
    return [node for node in plan.new_nodes if node.claim_id not in known]


def in_flight_targets(plan: Plan, claims: Mapping[str, Claim]) -> dict[str, list[str]]:
    """Claim id -> pod keys the plan put on that in-flight claim (the claim now holds them)."""
    out: dict[str, list[str]] = {}
    for key, target in plan.onto_existing.items():
        claim = claims.get(target)
        if claim is not None and claim.in_flight:
            out.setdefault(target, []).append(key)
    return out


# --- claims --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimAction:
    """What to do about one claim after its lifecycle step."""

    claim: Claim
    verdict: Verdict
    announce: bool = False
    """Its node just registered: tell the node (an Event) why it exists."""

    @property
    def terminate(self) -> bool:
        return self.verdict is not Verdict.KEEP

    @property
    def release_pods(self) -> frozenset[str]:
        """Pods to plan again: a claim that timed out leaves them pending."""
        return self.claim.pods if self.verdict is Verdict.TIMED_OUT else frozenset()


def seen_node(claim: Claim, snapshot: Snapshot) -> NodeSeen | None:
    node = snapshot.node_for(claim.instance_id, claim.claim_id, claim.node_name)
    return NodeSeen(node.name, node.ready) if node is not None else None


def claim_actions(
    claims: Iterable[Claim], snapshot: Snapshot, now: float, timeout: float
) -> list[ClaimAction]:
    """Step every claim; the loop stores the new claims and applies the verdicts."""
    actions = []
    for claim in claims:
        result: Step = step(claim, seen_node(claim, snapshot), now, timeout)
        actions.append(ClaimAction(result.claim, result.verdict, result.registered_now))
    return actions


# --- scale-down ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Removal:
    """An empty node of ours to cordon, delete and terminate."""

    node: str
    instance_id: str
    claim_id: str
    empty_for: float


@dataclass(frozen=True, slots=True)
class ScaleDown:
    remove: tuple[Removal, ...]
    empty_since: Mapping[str, float]
    """Node -> when it was first seen empty (the loop keeps it for the next round)."""
    kept: Mapping[str, str] = field(default_factory=dict)
    """Node -> why it stays (for logs and tests)."""


def busy(pods: Iterable[PodInfo]) -> str | None:
    """Why a node is not empty, or None: only DaemonSet and mirror pods may run on it.

    A Job pod, a Spark driver or executor, or a pod annotated do-not-disrupt is
    named first: those are never evicted for a scale-down, whatever else runs.
    """
    running = [p for p in pods if p.runs and not p.infrastructure]
    for pod in running:
        reason = pod.blocks_disruption
        if reason is not None:
            return reason
    if running:
        return f"runs {len(running)} pods"
    return None


def removal_blocker(
    node: NodeInfo,
    pods: Sequence[PodInfo],
    claim: Claim | None,
    snapshot: Snapshot,
    *,
    now: float,
    nomination_window: float,
) -> str | None:
    """Why this node of ours is not a scale-down candidate right now, or None."""
    reason = node.protected
    if reason is not None:
        return reason
    if node.interrupted:
        return "an interruption is being handled"
    if claim is not None and claim.in_flight:
        return f"claim {claim.claim_id} is {claim.phase.value}, not ready"
    reason = busy(pods)
    if reason is not None:
        return reason
    if (
        claim is not None
        and claim.ready_at is not None
        and now - claim.ready_at < nomination_window
    ):
        waiting = [k for k in sorted(claim.pods) if (p := snapshot.pods.get(k)) and p.pending]
        if waiting:
            return f"{len(waiting)} pods planned for it are not scheduled yet"
    return None


def scale_down(
    snapshot: Snapshot,
    claims: Sequence[Claim],
    empty_since: Mapping[str, float],
    now: float,
    *,
    delay: float,
    nomination_window: float,
) -> ScaleDown:
    """Empty nodes we launched that stayed empty for ``delay`` seconds are removed.

    Ours means our ``spotpack.io/managed`` label or a claim we hold; anything
    else is never touched. A node stops being a candidate the moment it is
    not empty (its timer restarts from zero).
    """
    by_node = {c.node_name: c for c in claims if c.node_name}
    by_instance = {c.instance_id: c for c in claims}
    remove: list[Removal] = []
    since: dict[str, float] = {}
    kept: dict[str, str] = {}
    for name, node in sorted(snapshot.nodes.items()):
        claim = by_instance.get(node.instance_id) or by_node.get(name)
        if not node.managed and claim is None:
            continue
        blocker = removal_blocker(
            node,
            snapshot.on_node(name),
            claim,
            snapshot,
            now=now,
            nomination_window=nomination_window,
        )
        if blocker is not None:
            kept[name] = blocker
            continue
        first = empty_since.get(name, now)
        since[name] = first
        if now - first >= delay:
            remove.append(
                Removal(
                    node=name,
                    instance_id=node.instance_id or (claim.instance_id if claim else ""),
                    claim_id=claim.claim_id if claim else node.claim_id,
                    empty_for=now - first,
                )
            )
        else:
            kept[name] = f"empty for {now - first:.0f}s of {delay:.0f}s"
    return ScaleDown(tuple(remove), since, kept)


# --- orphans -------------------------------------------------------------------------------


def unregistered(instances: Iterable[Instance], snapshot: Snapshot) -> list[Instance]:
    """Instances with no node: what the orphan collector may terminate.

    An owned instance that did register is a node of ours and goes the
    ordinary way (empty-node scale-down), never through the collector.
    """
    return [
        i for i in instances if snapshot.node_for(i.instance_id, i.claim_id, i.node_name) is None
    ]


def vanished(
    snapshot: Snapshot,
    live: Collection[str],
    ours: Collection[str],
    now: float,
    grace: float,
) -> list[NodeInfo]:
    """Nodes of ours whose instance the cloud no longer lists: delete them.

    The cloud terminated the instance (a spot interruption whose notice we
    missed, someone in the console); its node stays NotReady forever
    otherwise. ``ours`` are instance ids of our claims; a node younger than
    ``grace`` is left alone (the listing may lag behind a fresh launch).
    """
    found = []
    for _, node in sorted(snapshot.nodes.items()):
        if not node.instance_id or node.instance_id in live:
            continue
        if not (node.managed or node.instance_id in ours):
            continue
        if node.created is None or now - node.created < grace:
            continue
        found.append(node)
    return found


# --- interruption notices ------------------------------------------------------------------

REPLACE_KINDS = frozenset({"spot-interruption", "rebalance", "scheduled-change"})
"""Notices that leave time: taint, replace, drain."""
POOL_KINDS = frozenset({"spot-interruption", "rebalance"})
"""Notices that say the spot pool is short: avoid the offering for a while."""


@dataclass(frozen=True, slots=True)
class NoticePlan:
    """What to do with one interruption notice."""

    notice: InterruptionNotice
    node: str | None = None
    taint: Mapping[str, str] | None = None
    replace: tuple[str, ...] = ()
    """Pod keys to plan again right now (the replacement capacity)."""
    drain: tuple[str, ...] = ()
    """Pod keys to evict through the Eviction API (PodDisruptionBudgets honoured)."""
    deadline: float | None = None
    delete_node_now: bool = False
    """The instance is already stopping: nothing to drain, remove the node at once."""
    avoid: tuple[str, str, str] | None = None
    """(type, zone, capacity) of the interrupted node: never the replacement's offering."""
    block: tuple[str, str, str] | None = None
    """(type, zone, capacity) to keep out of every plan for a while (the spot pool is short)."""
    release_claim: str | None = None
    """An in-flight claim whose instance is going: forget it and plan its pods again."""
    reason: str = ""

    @property
    def ignored(self) -> bool:
        return self.node is None and self.release_claim is None


def interruption_taint(kind: str) -> dict[str, str]:
    """Our NoSchedule taint, its value the notice kind (the extender avoids such nodes)."""
    return {"key": SPOTPACK_TAINT, "value": kind, "effect": "NoSchedule"}


def with_taint(
    taints: Iterable[Mapping[str, object]], taint: Mapping[str, str]
) -> list[dict[str, object]] | None:
    """``taints`` plus ``taint`` (replacing one of the same key and effect); None if present."""
    current = [dict(t) for t in taints]
    for t in current:
        if t.get("key") == taint["key"] and t.get("effect") == taint["effect"]:
            if t.get("value") == taint.get("value"):
                return None
            t["value"] = taint.get("value")
            return current
    return [*current, dict(taint)]


def decide_notice(
    notice: InterruptionNotice,
    node: NodeInfo | None,
    pods: Sequence[PodInfo],
    claim: Claim | None,
    *,
    now: float,
    window: float,
) -> NoticePlan:
    """The decision table for a notice about ``node`` (None: no node is known for it).

    ==================================  ===========================================
    notice                              decision
    ==================================  ===========================================
    spot warning / rebalance /          taint the node, plan its pods again now
    scheduled change, node known        (never on the node's own offering), drain
                                        them until the deadline (or ``now + window``
                                        when the notice has none); spot kinds also
                                        block the offering for every plan a while
    state change (stopping, gone)       taint, plan its pods again, delete the
                                        node at once: there is nothing to drain
    any, no node, in-flight claim       forget the claim, plan its pods again
    any, nothing known                  ignore (not ours, or already gone)
    ==================================  ===========================================
    """
    deadline = notice.deadline.timestamp() if notice.deadline is not None else now + window
    if node is None:
        if claim is not None and claim.in_flight:
            return NoticePlan(
                notice,
                release_claim=claim.claim_id,
                block=_pool(notice, claim.instance_type, claim.zone, claim.capacity),
                reason=f"{notice.kind} for in-flight claim {claim.claim_id}",
            )
        return NoticePlan(notice, reason=f"no node or claim for instance {notice.instance_id}")
    movable = tuple(p.key for p in pods if p.runs and not p.infrastructure)
    block = _pool(notice, node.instance_type, node.zone, node.capacity)
    avoid = (node.instance_type, node.zone, node.capacity) if node.instance_type else None
    if notice.kind in REPLACE_KINDS:
        return NoticePlan(
            notice,
            node=node.name,
            taint=interruption_taint(notice.kind),
            replace=movable,
            drain=movable,
            deadline=deadline,
            avoid=avoid,
            block=block,
            reason=f"{notice.kind} notice for instance {notice.instance_id}",
        )
    return NoticePlan(
        notice,
        node=node.name,
        taint=interruption_taint(notice.kind),
        replace=movable,
        delete_node_now=True,
        deadline=now,
        avoid=avoid,
        block=block,
        reason=f"instance {notice.instance_id} is {notice.detail or 'stopping'}",
    )


def _pool(
    notice: InterruptionNotice, itype: str, zone: str, capacity: str
) -> tuple[str, str, str] | None:
    if notice.kind not in POOL_KINDS or not itype or not zone:
        return None
    return (itype, zone, capacity)


__all__ = [
    "POOL_KINDS",
    "REPLACE_KINDS",
    "ClaimAction",
    "NoticePlan",
    "Removal",
    "ScaleDown",
    "busy",
    "claim_actions",
    "decide_notice",
    "in_flight_targets",
    "interruption_taint",
    "launches",
    "removal_blocker",
    "scale_down",
    "seen_node",
    "unregistered",
    "vanished",
    "with_taint",
]
