"""The provisioner's values: what pods need, what the cloud offers, what the plan decides.

Everything here is frozen and pure. The planner (:mod:`.plan`) reads
:class:`PodDemand`, :class:`Offering` and :class:`NodeCapacity` and returns a
:class:`Plan`; only the provisioner loop turns the plan into cloud calls.

Units are plain integers so that sums are exact and comparisons never suffer
from float rounding: CPU in millicores, memory in MiB (requests rounded *up*,
capacities rounded *down*), pods as a count. Prices are USD per hour.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from spotpack.catalog.model import GPUSpec
from spotpack.gpu.inventory import NodeGPUs
from spotpack.gpu.usage import NodeUsage
from spotpack.vgpu.model import PodGPUDemand

CapacityType = Literal["spot", "on-demand"]
"""How an instance is bought: interruptible spot or on-demand."""

SPOT: CapacityType = "spot"
ON_DEMAND: CapacityType = "on-demand"


@dataclass(frozen=True, slots=True, order=True)
class Resources:
    """CPU (millicores), memory (MiB) and pod slots: what a pod asks or a node has free."""

    cpu_m: int = 0
    mem_mib: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m + other.cpu_m, self.mem_mib + other.mem_mib, self.pods + other.pods
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m - other.cpu_m, self.mem_mib - other.mem_mib, self.pods - other.pods
        )

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_m * n, self.mem_mib * n, self.pods * n)

    def fits(self, room: Resources) -> bool:
        """Whether this demand fits into ``room`` in every dimension."""
        return self.cpu_m <= room.cpu_m and self.mem_mib <= room.mem_mib and self.pods <= room.pods

    def count_in(self, room: Resources) -> int:
        """How many of this demand fit into ``room`` (a large number for an all-zero demand)."""
        n = 1 << 30
        if self.cpu_m > 0:
            n = min(n, room.cpu_m // self.cpu_m)
        if self.mem_mib > 0:
            n = min(n, room.mem_mib // self.mem_mib)
        if self.pods > 0:
            n = min(n, room.pods // self.pods)
        return max(n, 0)

    @property
    def nonnegative(self) -> bool:
        return self.cpu_m >= 0 and self.mem_mib >= 0 and self.pods >= 0

    def describe(self) -> str:
        return f"cpu={self.cpu_m}m memory={self.mem_mib}Mi pods={self.pods}"


ZERO = Resources()


class CapacityNeed(StrEnum):
    """Which capacity types a pod may run on, as the planner sees it.

    ``SPOT_PREFERRED`` and ``ANY`` both go to whichever is cheaper risk-adjusted;
    on a tie spot wins for ``SPOT_PREFERRED`` (the user asked for it) and
    on-demand for ``ANY`` (no reason to take interruption risk for nothing).
    Both may fill free room on nodes of either type.
    """

    SPOT_ONLY = "spot-only"
    ON_DEMAND_ONLY = "on-demand-only"
    SPOT_PREFERRED = "spot-preferred"
    ANY = "any"

    def allows(self, capacity: CapacityType) -> bool:
        if self is CapacityNeed.SPOT_ONLY:
            return capacity == SPOT
        if self is CapacityNeed.ON_DEMAND_ONLY:
            return capacity == ON_DEMAND
        return True

    @property
    def flexible(self) -> bool:
        return self in (CapacityNeed.SPOT_PREFERRED, CapacityNeed.ANY)


@dataclass(frozen=True, slots=True)
class PodDemand:
    """One pending pod as the planner needs it (built by :func:`~.demand.pod_demand`).

    ``key`` is ``namespace/name``; ``group`` the application it belongs to
    (a Spark app, an owner), used to keep an application's pods together.
    ``arch`` and ``zones`` are the allowed values, None for unconstrained.
    ``rerun_cost`` is the USD lost if the pod's node is interrupted (see
    :func:`~.demand.estimate_rerun_cost` for the default).
    ``gpu_include``/``gpu_exclude`` restrict card models (substring match, as
    HAMi does).
    """

    key: str
    uid: str
    group: str
    resources: Resources
    gpu: PodGPUDemand = field(default_factory=PodGPUDemand)
    capacity: CapacityNeed = CapacityNeed.ANY
    arch: frozenset[str] | None = None
    zones: frozenset[str] | None = None
    rerun_cost: float = 0.0
    gpu_include: tuple[str, ...] = ()
    gpu_exclude: tuple[str, ...] = ()

    @property
    def is_gpu(self) -> bool:
        return self.gpu.is_gpu_pod


@dataclass(frozen=True, slots=True)
class Offering:
    """One way to buy a node: an instance type in a zone as spot or on-demand.

    ``interruption_rate`` is the monthly interruption probability of the
    catalog's Spot Advisor bucket (0 for on-demand); ``allocatable`` is what
    pods can request once kubelet's reserve and the daemonsets are taken out
    (see :mod:`.offerings`); ``vgpu_slots_per_card`` is HAMi's split count (0
    without GPUs). ``source`` says where the price came from: the catalog's
    spot source (``live``/``snapshot``/``estimate``) or ``list`` for the
    on-demand list price.
    """

    instance_type: str
    zone: str
    capacity: CapacityType
    price_per_hour: float
    interruption_rate: float
    vcpu: int
    mem_mib: int
    arch: str
    gpu: GPUSpec | None
    allocatable: Resources
    vgpu_slots_per_card: int = 0
    source: str = "list"
    bucket: int | None = None

    @property
    def cards(self) -> int:
        return self.gpu.count if self.gpu else 0

    @property
    def sort_key(self) -> tuple[float, str, str, str]:
        return (self.price_per_hour, self.instance_type, self.zone, self.capacity)


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """An existing or in-flight node with what is still free on it.

    ``usage`` is the node's per-card GPU usage; the planner works on a copy and
    never changes it. An in-flight node (a claim launched but not registered)
    is built with :func:`in_flight_node`.
    """

    name: str
    instance_type: str
    zone: str
    capacity: CapacityType
    arch: str
    free: Resources
    gpus: NodeGPUs | None = None
    usage: NodeUsage | None = None
    in_flight: bool = False
    price_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class PlannedNode:
    """A new instance to launch, with the pods it is for.

    ``instance_types`` is what CreateFleet is given: the chosen type first,
    then compatible fallbacks that hold the same pods, cheapest first.
    ``claim_id`` is a short hash of the sorted pod keys, the type, the zone and
    the capacity type: the same input re-plans the same id after a restart, so
    the launch's client token stays idempotent. ``risk_cost_per_hour`` is the
    expected interruption loss (see :mod:`.risk`), on top of the price.
    """

    claim_id: str
    instance_types: tuple[str, ...]
    zone: str
    capacity: CapacityType
    pods: tuple[str, ...]
    price_per_hour: float
    risk_cost_per_hour: float
    reason: str
    arch: str = "amd64"

    @property
    def instance_type(self) -> str:
        return self.instance_types[0]

    @property
    def risk_adjusted_cost(self) -> float:
        return self.price_per_hour + self.risk_cost_per_hour


@dataclass(frozen=True, slots=True)
class Limits:
    """Headroom for the new nodes of one plan; None means unlimited.

    The loop passes the configured limits minus what is already running and in
    flight, so the planner only needs to respect them for what it adds.
    """

    max_nodes: int | None = None
    max_gpus: int | None = None
    max_cost_per_hour: float | None = None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's decision: pods onto existing nodes, new nodes, and what cannot be placed.

    ``onto_existing`` is in placement order (the order the per-card GPU fits
    were made in); ``unplaceable`` is sorted by pod key. ``cost_per_hour``
    sums the new nodes' prices, ``risk_cost_per_hour`` their expected
    interruption losses; existing capacity costs nothing extra.
    """

    onto_existing: Mapping[str, str]
    new_nodes: tuple[PlannedNode, ...]
    unplaceable: Mapping[str, str]
    cost_per_hour: float
    risk_cost_per_hour: float

    @property
    def risk_adjusted_cost(self) -> float:
        return self.cost_per_hour + self.risk_cost_per_hour

    def node_of(self) -> dict[str, str]:
        """Pod key -> node name or claim id, for every placed pod."""
        out = dict(self.onto_existing)
        for node in self.new_nodes:
            for key in node.pods:
                out[key] = node.claim_id
        return out


def frozen_map(items: Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """A read-only mapping with keys in sorted order (stable repr and iteration)."""
    return MappingProxyType(dict(sorted(items)))


def claim_id(pods: Iterable[str], instance_type: str, zone: str, capacity: str) -> str:
    """A short, stable id for a planned node (see :class:`PlannedNode`)."""
    digest = hashlib.sha256()
    for part in (*sorted(pods), instance_type, zone, capacity):
        digest.update(part.encode())
        digest.update(b"\0")
    return "c-" + digest.hexdigest()[:16]


__all__ = [
    "NO_LIMITS",
    "ON_DEMAND",
    "SPOT",
    "ZERO",
    "CapacityNeed",
    "CapacityType",
    "Limits",
    "NodeCapacity",
    "Offering",
    "Plan",
    "PlannedNode",
    "PodDemand",
    "Resources",
    "claim_id",
    "frozen_map",
]
