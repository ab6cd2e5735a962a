"""The planner's inputs, computed from a snapshot and the claims: pure.

- **pending**: pods the scheduler called Unschedulable, minus those an
  in-flight claim holds (their node is on its way), as
  :class:`~spotpack.provisioning.model.PodDemand`;
- **existing capacity**: every Ready, schedulable node without a hard taint,
  with ``allocatable - sum(requests of the pods bound there)`` free and, on
  GPU nodes, the per-card usage rebuilt from the pods' assignments (what the
  extender will check);
- **in-flight capacity**: every claim whose node is not ready yet, as a node
  of its offering's allocatable minus the pods it holds (GPU pods reserved
  card by card), so new pods fill it before anything new is bought;
- **usage and headroom**: what our nodes and claims add up to against the
  configured :class:`~spotpack.provisioning.model.Limits`.

Nodes with a NoSchedule/NoExecute taint are not counted as room: the planner
does not model tolerations, and counting a tainted node would leave a pod
pending forever in front of room it cannot use. The price is an occasional
node bought where a tolerating pod could have squeezed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.lifecycle import Claim
from provisioner.views import NodeInfo, PodInfo, Snapshot
from spotpack.capacity import LabelScheme
from spotpack.catalog.model import Catalog
from spotpack.errors import InvalidInput
from spotpack.gpu.assignment import Assignment
from spotpack.gpu.demand import prepare
from spotpack.gpu.fit import fit_prepared
from spotpack.gpu.inventory import GPUSpec, GPUSpecLookup, inventory_from_node
from spotpack.gpu.usage import NodeUsage, assignment_of_pod
from spotpack.provisioning.demand import pod_demand
from spotpack.provisioning.model import Limits, NodeCapacity, Offering, PodDemand, Resources
from spotpack.provisioning.offerings import in_flight_node, offerings_from_catalog

log = logging.getLogger(__name__)

OfferingOf = Callable[[str, str, str], Offering | None]
"""(instance type, zone, capacity type) -> the catalog's offering, None when unknown."""


def _nonnegative(r: Resources) -> Resources:
    return Resources(max(r.cpu_m, 0), max(r.mem_mib, 0), max(r.pods, 0))


# --- pending pods --------------------------------------------------------------------------


def pending_pods(snapshot: Snapshot, held: Collection[str] = ()) -> list[PodInfo]:
    """Provisionable pods not held by an in-flight claim, by key."""
    return sorted(
        (p for p in snapshot.pods.values() if p.pending and p.key not in held),
        key=lambda p: p.key,
    )


@dataclass(frozen=True, slots=True)
class DemandReader:
    """Turns pods into planner demands with the cluster's label scheme and zones."""

    scheme: LabelScheme
    known_zones: tuple[str, ...] = ()
    rerun_hours: float = 1.0

    def one(self, pod: PodInfo) -> PodDemand:
        """Raises :class:`InvalidInput` for a pod whose requests or annotations are invalid."""
        return pod_demand(
            pod.raw,
            self.scheme,
            default_rerun_hours=self.rerun_hours,
            known_zones=self.known_zones,
        )

    def many(self, pods: Iterable[PodInfo]) -> tuple[list[PodDemand], dict[str, str]]:
        """Demands, and pod key -> problem for the pods that cannot be read."""
        demands: list[PodDemand] = []
        problems: dict[str, str] = {}
        for pod in pods:
            try:
                demands.append(self.one(pod))
            except InvalidInput as exc:
                problems[pod.key] = str(exc)
        return demands, problems


# --- existing nodes ------------------------------------------------------------------------


def usable(node: NodeInfo) -> bool:
    """Whether the node's free room may be planned onto."""
    return node.ready and not node.unschedulable and not node.hard_tainted


def node_capacity(
    node: NodeInfo,
    pods: Iterable[PodInfo],
    gpu_spec: GPUSpecLookup,
    price_per_hour: float = 0.0,
) -> NodeCapacity:
    """What is free on an existing node: allocatable minus the requests of its running pods."""
    running = [p for p in pods if p.runs]
    used = sum((p.resources for p in running), Resources())
    gpus = inventory_from_node(node.raw, gpu_spec).gpus
    usage = None
    if gpus is not None:
        assignments = []
        for pod in running:
            try:
                found = assignment_of_pod(pod.raw)
            except InvalidInput as exc:
                log.warning(
                    "ignoring a bad GPU assignment", extra={"pod": pod.key, "error": str(exc)}
                )
                continue
            if found is not None:
                assignments.append(found)
        usage, _ = NodeUsage.build(gpus, assignments)
    return NodeCapacity(
        name=node.name,
        instance_type=node.instance_type,
        zone=node.zone,
        capacity="spot" if node.capacity == "spot" else "on-demand",
        arch=node.arch,
        free=_nonnegative(node.allocatable - used),
        gpus=gpus,
        usage=usage,
        price_per_hour=price_per_hour,
    )


def existing_capacities(
    snapshot: Snapshot,
    gpu_spec: GPUSpecLookup,
    *,
    exclude: Collection[str] = (),
) -> list[NodeCapacity]:
    """Room on every usable node, by name; ``exclude`` names nodes going away."""
    return [
        node_capacity(node, snapshot.on_node(node.name), gpu_spec)
        for name, node in sorted(snapshot.nodes.items())
        if name not in exclude and usable(node)
    ]


# --- in-flight claims ----------------------------------------------------------------------


def held_pods(claim: Claim, snapshot: Snapshot, draining: Collection[str]) -> list[PodInfo]:
    """The claim's pods that still need its room: alive, and unbound or on a draining node."""
    found = []
    for key in sorted(claim.pods):
        pod = snapshot.pods.get(key)
        if pod is None or pod.terminated or pod.deleting:
            continue
        if pod.node_name and pod.node_name not in draining:
            continue
        found.append(pod)
    return found


def _reserve_gpu(usage: NodeUsage, cap: NodeCapacity, demand: PodDemand) -> None:
    if cap.gpus is None or not demand.is_gpu:
        return
    prepared = prepare(demand.gpu, include=demand.gpu_include, exclude=demand.gpu_exclude)
    result = fit_prepared(prepared, cap.gpus, usage)
    if result.ok and result.assignment_devices is not None:
        kinds = tuple(s.kind for s in prepared.steps)
        usage.add(Assignment(cap.name, result.assignment_devices, kinds=kinds))


def inflight_capacities(
    claims: Iterable[Claim],
    snapshot: Snapshot,
    offering_of: OfferingOf,
    reader: DemandReader,
    *,
    draining: Collection[str] = (),
) -> list[NodeCapacity]:
    """Each in-flight claim as a node named by its claim id, minus the pods it holds."""
    out = []
    for claim in claims:
        if not claim.in_flight:
            continue
        offering = offering_of(claim.instance_type, claim.zone, claim.capacity)
        if offering is None:
            continue
        cap = in_flight_node(claim.claim_id, offering)
        free = cap.free
        for pod in held_pods(claim, snapshot, draining):
            free = free - pod.resources
            if cap.usage is not None:
                try:
                    _reserve_gpu(cap.usage, cap, reader.one(pod))
                except InvalidInput:
                    continue
        out.append(
            NodeCapacity(
                name=cap.name,
                instance_type=cap.instance_type,
                zone=cap.zone,
                capacity=cap.capacity,
                arch=cap.arch,
                free=_nonnegative(free),
                gpus=cap.gpus,
                usage=cap.usage,
                in_flight=True,
                price_per_hour=claim.price_per_hour,
            )
        )
    return out


# --- limits --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """Our nodes and in-flight claims: how many, their GPU cards, what they cost per hour."""

    nodes: int = 0
    gpus: int = 0
    cost_per_hour: float = 0.0

    def plus(self, gpus: int, cost_per_hour: float) -> Usage:
        return Usage(self.nodes + 1, self.gpus + gpus, self.cost_per_hour + cost_per_hour)

    def describe(self) -> str:
        return f"{self.nodes} nodes, {self.gpus} GPUs, ${self.cost_per_hour:.4f}/h"


def describe_limits(limits: Limits) -> str:
    parts = [
        f"{name}={value:g}"
        for name, value in (
            ("max_nodes", limits.max_nodes),
            ("max_gpus", limits.max_gpus),
            ("max_cost_per_hour", limits.max_cost_per_hour),
        )
        if value is not None
    ]
    return ", ".join(parts) or "none"


def limited_reason(limits: Limits, usage: Usage) -> str:
    """Why the planner left pods out for the limits, in the operator's terms (not the headroom)."""
    return (
        f"would exceed the configured limits ({describe_limits(limits)}; "
        f"running and in flight: {usage.describe()})"
    )


def current_usage(
    snapshot: Snapshot,
    claims: Sequence[Claim],
    *,
    cost_of: Callable[[str, str, str], float],
    cards_of: Callable[[str], int],
) -> Usage:
    """Managed nodes (at a claim's price when we know it) plus claims without a node yet."""
    by_instance = {c.instance_id: c for c in claims}
    by_claim = {c.claim_id: c for c in claims}
    counted: set[str] = set()
    usage = Usage()
    for node in snapshot.nodes.values():
        claim = by_instance.get(node.instance_id) or by_claim.get(node.claim_id)
        if not node.managed and claim is None:
            continue
        if claim is not None:
            counted.add(claim.claim_id)
            usage = usage.plus(claim.gpus, claim.price_per_hour)
        else:
            usage = usage.plus(
                cards_of(node.instance_type),
                cost_of(node.instance_type, node.zone, node.capacity),
            )
    for claim in claims:
        if claim.claim_id not in counted:
            usage = usage.plus(claim.gpus, claim.price_per_hour)
    return usage


def headroom(limits: Limits, usage: Usage) -> Limits:
    """What the next plan may add: the limits minus the usage, never below zero."""
    return Limits(
        max_nodes=None if limits.max_nodes is None else max(limits.max_nodes - usage.nodes, 0),
        max_gpus=None if limits.max_gpus is None else max(limits.max_gpus - usage.gpus, 0),
        max_cost_per_hour=None
        if limits.max_cost_per_hour is None
        else max(limits.max_cost_per_hour - usage.cost_per_hour, 0.0),
    )


def over_limit(limits: Limits, usage: Usage, gpus: int, cost_per_hour: float) -> str | None:
    """Why one more node of ``gpus`` cards at ``cost_per_hour`` may not be launched, or None."""
    after = usage.plus(gpus, cost_per_hour)
    if limits.max_nodes is not None and after.nodes > limits.max_nodes:
        return f"max_nodes={limits.max_nodes} (running and in flight: {usage.nodes})"
    if limits.max_gpus is not None and after.gpus > limits.max_gpus:
        return f"max_gpus={limits.max_gpus} (running and in flight: {usage.gpus})"
    if (
        limits.max_cost_per_hour is not None
        and after.cost_per_hour > limits.max_cost_per_hour + 1e-9
    ):
        return (
            f"max_cost_per_hour={limits.max_cost_per_hour:g} "
            f"(running and in flight: ${usage.cost_per_hour:.4f}/h)"
        )
    return None


class Facts:
    """What the catalog says about instance types, as the loop needs it: offerings, prices, GPUs."""

    def __init__(self, offerings: Iterable[Offering], gpu_spec: GPUSpecLookup) -> None:
        self.offerings: tuple[Offering, ...] = tuple(offerings)
        self.gpu_spec = gpu_spec
        self._index: Mapping[tuple[str, str, str], Offering] = {
            (o.instance_type, o.zone, o.capacity): o for o in self.offerings
        }

    @classmethod
    def from_catalog(
        cls, catalog: Catalog, region: str, zones: Iterable[str], **options: Any
    ) -> Facts:
        """Offerings of ``zones`` (see :func:`offerings_from_catalog` for ``options``)."""
        cards: dict[str, GPUSpec | None] = {}

        def gpu_spec(name: str) -> GPUSpec | None:
            if name not in cards:
                spec = catalog.gpu_spec(name)
                cards[name] = GPUSpec(spec.count, spec.model, spec.mem_mib) if spec else None
            return cards[name]

        return cls(offerings_from_catalog(catalog, region, list(zones), **options), gpu_spec)

    def offering(self, instance_type: str, zone: str, capacity: str) -> Offering | None:
        return self._index.get((instance_type, zone, capacity))

    def price(self, instance_type: str, zone: str, capacity: str) -> float | None:
        found = self.offering(instance_type, zone, capacity)
        return found.price_per_hour if found is not None else None

    def cost(self, instance_type: str, zone: str, capacity: str) -> float:
        """The hourly price, 0 for an offering the catalog does not know."""
        return self.price(instance_type, zone, capacity) or 0.0

    def cards(self, instance_type: str) -> int:
        spec = self.gpu_spec(instance_type) if instance_type else None
        return spec.count if spec is not None else 0


__all__ = [
    "DemandReader",
    "Facts",
    "OfferingOf",
    "Usage",
    "current_usage",
    "describe_limits",
    "existing_capacities",
    "headroom",
    "held_pods",
    "inflight_capacities",
    "limited_reason",
    "node_capacity",
    "over_limit",
    "pending_pods",
    "usable",
]
