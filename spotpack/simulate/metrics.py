"""The run's figures, from its samples and records: pure functions, formulas beside them.

Time weighting: samples are taken every tick; each holds until the next, the
last until the end of the run. For a per-sample value ``v_i`` at ``t_i``::

    dt_i     = t_{i+1} - t_i          (the last: end - t_last, at least 0)
    total    = sum(v_i * dt_i)        (e.g. $/h x s / 3600 = $)
    share    = sum(a_i * dt_i) / sum(b_i * dt_i)   (ratios of integrals, not means of ratios)

Prices (:func:`node_price`): a spot node costs the catalog's spot figure of
its type in its zone (falling back to the region's), an on-demand node its
type's on-demand price in the region. An unknown price raises
:class:`PriceError`: a run is never reported cheaper than it was.

Pending time of a pod: from its creation to the first sample that saw it
bound, in simulated seconds (so resolution is one tick); a pod never bound
counts until the end of the run (and is counted apart). Percentiles are by
nearest rank: ``p(q) = sorted[ceil(q * n) - 1]``.

An interruption **hit** workloads when the node had pods of theirs at the
time of the notice; it is **survived** when every such workload is later
seen, before the run ends, with no pod on that node and at least as many
bound pods as it wanted at that sample (:func:`recovered`); a workload whose
end came meanwhile needs only to be off the node. An interruption of a node
without workload pods is neither: it is counted apart ("on empty nodes"),
so that it cannot pass for resilience.

Spot prices are the catalog's figures, and most of those are estimates, not
market quotes: :attr:`Figures.spot_price_sources` says, per instance type run
on spot, where its figure came from (``live``, ``snapshot``, ``estimate``;
the least trustworthy when zones differ). GPU utilization is None when no pod
of the run asked for GPUs (a 0% there would read as waste).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from spotpack.catalog.model import Catalog
from spotpack.errors import SpotpackError
from spotpack.simulate.baseline import BaselinePoint
from spotpack.simulate.observe import NodeSample, Sample

SECONDS_PER_HOUR = 3600.0


class PriceError(SpotpackError):
    """A node whose price the catalog does not know."""


def node_price(node: NodeSample, catalog: Catalog, region: str) -> float:
    """$/h of one node (see the module docstring)."""
    if node.spot:
        offer = catalog.spot_offer(node.instance_type, node.zone or region)
        if offer is not None:
            return offer.price
    else:
        price = catalog.on_demand_price(node.instance_type, region)
        if price is not None:
            return price
    raise PriceError(
        f"node {node.name}: no {node.capacity} price for {node.instance_type!r} in "
        f"{node.zone or region}; add it to the catalog (--catalog/--override)"
    )


def cost_per_hour(sample: Sample, catalog: Catalog, region: str) -> float:
    """$/h of every node of the sample."""
    return round(sum(node_price(n, catalog, region) for n in sample.nodes), 9)


def weights(times: Sequence[float], end: float) -> list[float]:
    """``dt_i`` of each sample: until the next, the last until ``end`` (never negative)."""
    out = [b - a for a, b in pairwise(times)]
    if times:
        out.append(max(end - times[-1], 0.0))
    return out


def integral(values: Sequence[float], dts: Sequence[float]) -> float:
    """``sum(v_i * dt_i)``: a per-sample value accumulated over the run (module docstring)."""
    return sum(v * d for v, d in zip(values, dts, strict=True))


def ratio(
    numerators: Sequence[float], denominators: Sequence[float], dts: Sequence[float]
) -> float:
    """Ratio of time integrals; 0 when the denominator is 0 (e.g. no GPU node ever)."""
    below = integral(denominators, dts)
    return integral(numerators, dts) / below if below > 0 else 0.0


def gpu_alloc(sample: Sample) -> tuple[int, int, int, int]:
    """(MiB allocated, MiB on cards, core % allocated, core % on cards) over GPU nodes."""
    gpu_nodes = {n.name: n for n in sample.nodes if n.cards > 0}
    mem = sum(p.gpu_mem_mib for p in sample.pods if p.node in gpu_nodes)
    cores = sum(p.gpu_cores for p in sample.pods if p.node in gpu_nodes)
    total_mem = sum(n.gpu_mem_mib for n in gpu_nodes.values())
    total_cores = sum(n.gpu_cores for n in gpu_nodes.values())
    return mem, total_mem, cores, total_cores


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(q * len(ordered)), 1)
    return float(ordered[rank - 1])


@dataclass(frozen=True, slots=True)
class PendingStats:
    """Pod pending times in simulated seconds."""

    pods: int
    never_bound: int
    p50: float
    p95: float
    max: float


def pending_stats(
    created: Mapping[str, float], bound: Mapping[str, float], end: float
) -> PendingStats:
    """Creation -> first seen bound, per pod; pods never bound count until ``end``."""
    waits = [max(bound.get(k, end) - t, 0.0) for k, t in created.items()]
    never = sum(1 for k in created if k not in bound)
    return PendingStats(
        len(waits), never, percentile(waits, 0.5), percentile(waits, 0.95), max(waits, default=0.0)
    )


@dataclass
class Interruption:
    """One injected interruption: when, which node, whose pods were on it, when they recovered."""

    t: float
    node: str
    instance_type: str
    reason: str
    affected: tuple[str, ...]
    recovered_at: float | None = None

    @property
    def hit(self) -> bool:
        """Whether workload pods were on the node (an empty node's loss costs nothing)."""
        return bool(self.affected)

    @property
    def survived(self) -> bool:
        """Whether it hit workloads and they all recovered (:func:`recovered`) before the end."""
        return self.hit and self.recovered_at is not None


def affected_workloads(sample: Sample, node: str) -> tuple[str, ...]:
    """The workloads with a pod on ``node`` in ``sample``, sorted: those an interruption hits."""
    return tuple(sorted({p.workload for p in sample.pods if p.node == node}))


def recovered(event: Interruption, sample: Sample) -> bool:
    """Whether every affected workload runs again without the node (module docstring).

    An interruption that hit no workload never recovers: it is not survived, it is apart.
    """
    if sample.t <= event.t or not event.hit:
        return False
    for workload in event.affected:
        mine = [p for p in sample.pods if p.workload == workload]
        if any(p.node == event.node for p in mine):
            return False
        if sum(1 for p in mine if p.bound) < sample.desired.get(workload, 0):
            return False
    return True


@dataclass(frozen=True)
class Series:
    """Per-sample values, for the charts."""

    t: tuple[float, ...]
    cost: tuple[float, ...]
    baseline_cost: tuple[float, ...]
    spot_share: tuple[float | None, ...]
    """None where there are no nodes (a share of nothing is not 0%, and charts leave a gap)."""
    gpu_mem: tuple[float | None, ...]
    gpu_cores: tuple[float | None, ...]
    """GPU shares: None where there are no cards at all (no GPU node, no GPU pod)."""
    baseline_gpu_mem: tuple[float | None, ...]
    baseline_gpu_cores: tuple[float | None, ...]
    pending: tuple[int, ...]
    nodes: tuple[int, ...]
    baseline_nodes: tuple[int, ...]


@dataclass(frozen=True)
class Figures:
    """Everything the report shows, spotpack's side and the baseline's."""

    scenario: str
    duration: float
    total_cost: float
    baseline_total_cost: float
    mean_cost_per_hour: float
    baseline_mean_cost_per_hour: float
    spot_node_share: float
    spot_cost_share: float
    spot_pod_share: float
    gpu_mem_util: float | None
    gpu_core_util: float | None
    baseline_gpu_mem_util: float | None
    baseline_gpu_core_util: float | None
    pending: PendingStats
    baseline_pending_seconds: float
    interruptions: tuple[Interruption, ...]
    nodes_seen: int
    peak_nodes: int
    baseline_peak_nodes: int
    series: Series
    notes: tuple[str, ...] = field(default=())
    spot_price_sources: Mapping[str, str] = field(default_factory=dict)
    """Instance type run on spot -> where its catalog price came from (module docstring)."""

    @property
    def gpu_requested(self) -> bool:
        """Whether any pod of the run asked for GPUs (else GPU figures are None)."""
        return self.gpu_mem_util is not None

    @property
    def savings(self) -> float:
        """Share of the baseline's cost saved (negative: spotpack cost more)."""
        if self.baseline_total_cost <= 0:
            return 0.0
        return 1.0 - self.total_cost / self.baseline_total_cost

    @property
    def survived(self) -> int:
        """Interruptions whose workloads all recovered (:attr:`Interruption.survived`)."""
        return sum(1 for i in self.interruptions if i.survived)

    @property
    def hit(self) -> int:
        """Interruptions of nodes that had workload pods."""
        return sum(1 for i in self.interruptions if i.hit)

    @property
    def on_empty_nodes(self) -> int:
        """Interruptions of nodes without workload pods: counted apart, never as survived."""
        return len(self.interruptions) - self.hit


@dataclass(frozen=True)
class RunRecord:
    """What the engine observed: samples, pod lifecycle times, interruptions."""

    scenario: str
    duration: float
    samples: tuple[Sample, ...]
    baseline: tuple[BaselinePoint, ...]
    created: Mapping[str, float]
    bound: Mapping[str, float]
    interruptions: tuple[Interruption, ...]
    node_startup_seconds: float
    notes: tuple[str, ...] = ()


def figures(record: RunRecord, catalog: Catalog, region: str) -> Figures:
    """Every figure of the report from one run's record."""
    samples = record.samples
    dts = weights([s.t for s in samples], record.duration)
    cost = [cost_per_hour(s, catalog, region) for s in samples]
    spot_cost = [sum(node_price(n, catalog, region) for n in s.nodes if n.spot) for s in samples]
    base_cost = [b.cost_per_hour for b in record.baseline]
    allocs = [gpu_alloc(s) for s in samples]
    node_count = [float(len(s.nodes)) for s in samples]
    spot_nodes = [float(sum(1 for n in s.nodes if n.spot)) for s in samples]
    bound = [[p for p in s.pods if p.bound] for s in samples]
    spot_names = [{n.name for n in s.nodes if n.spot} for s in samples]
    pods_on_spot = [
        float(sum(1 for p in b if p.node in names))
        for b, names in zip(bound, spot_names, strict=True)
    ]
    pods_bound = [float(len(b)) for b in bound]
    gpus = any(p.vgpus > 0 for s in samples for p in s.pods)
    hours = SECONDS_PER_HOUR
    series = _series(record, cost, spot_nodes, node_count, allocs)
    span = sum(dts)
    total = integral(cost, dts) / hours
    base_total = integral(base_cost, dts) / hours
    return Figures(
        scenario=record.scenario,
        duration=record.duration,
        total_cost=total,
        baseline_total_cost=base_total,
        mean_cost_per_hour=total * hours / span if span else 0.0,
        baseline_mean_cost_per_hour=base_total * hours / span if span else 0.0,
        spot_node_share=ratio(spot_nodes, node_count, dts),
        spot_cost_share=ratio(spot_cost, cost, dts),
        spot_pod_share=ratio(pods_on_spot, pods_bound, dts),
        gpu_mem_util=ratio([a[0] for a in allocs], [a[1] for a in allocs], dts) if gpus else None,
        gpu_core_util=ratio([a[2] for a in allocs], [a[3] for a in allocs], dts) if gpus else None,
        baseline_gpu_mem_util=ratio(
            [b.gpu_mem_alloc for b in record.baseline],
            [b.gpu_mem_total for b in record.baseline],
            dts,
        )
        if gpus
        else None,
        baseline_gpu_core_util=ratio(
            [b.gpu_cores_alloc for b in record.baseline],
            [b.gpu_cores_total for b in record.baseline],
            dts,
        )
        if gpus
        else None,
        pending=pending_stats(record.created, record.bound, record.duration),
        baseline_pending_seconds=record.node_startup_seconds,
        interruptions=record.interruptions,
        nodes_seen=len({n.name for s in samples for n in s.nodes}),
        peak_nodes=max((len(s.nodes) for s in samples), default=0),
        baseline_peak_nodes=max((b.nodes for b in record.baseline), default=0),
        series=series,
        notes=record.notes,
        spot_price_sources=spot_price_sources(samples, catalog, region),
    )


def _series(
    record: RunRecord,
    cost: Sequence[float],
    spot_nodes: Sequence[float],
    node_count: Sequence[float],
    allocs: Sequence[tuple[int, int, int, int]],
) -> Series:
    """The per-sample values the charts draw, from what :func:`figures` already computed."""
    return Series(
        t=tuple(s.t for s in record.samples),
        cost=tuple(cost),
        baseline_cost=tuple(b.cost_per_hour for b in record.baseline),
        spot_share=tuple(a / b if b else None for a, b in zip(spot_nodes, node_count, strict=True)),
        gpu_mem=tuple(a[0] / a[1] if a[1] else None for a in allocs),
        gpu_cores=tuple(a[2] / a[3] if a[3] else None for a in allocs),
        baseline_gpu_mem=tuple(
            b.gpu_mem_alloc / b.gpu_mem_total if b.gpu_mem_total else None for b in record.baseline
        ),
        baseline_gpu_cores=tuple(
            b.gpu_cores_alloc / b.gpu_cores_total if b.gpu_cores_total else None
            for b in record.baseline
        ),
        pending=tuple(sum(1 for p in s.pods if not p.bound) for s in record.samples),
        nodes=tuple(len(s.nodes) for s in record.samples),
        baseline_nodes=tuple(b.nodes for b in record.baseline),
    )


TRUST_ORDER = ("live", "snapshot", "estimate")
"""Price sources from most to least trustworthy; a type keeps its least trustworthy one."""


def spot_price_sources(samples: Iterable[Sample], catalog: Catalog, region: str) -> dict[str, str]:
    """Instance type -> source of the catalog's spot price, over every spot node seen."""
    out: dict[str, str] = {}
    for node in {n for s in samples for n in s.nodes if n.spot}:
        offer = catalog.spot_offer(node.instance_type, node.zone or region)
        if offer is None:
            continue
        have = out.get(node.instance_type)
        if have is None or TRUST_ORDER.index(offer.source) > TRUST_ORDER.index(have):
            out[node.instance_type] = offer.source
    return dict(sorted(out.items()))


__all__ = [
    "Figures",
    "Interruption",
    "PendingStats",
    "PriceError",
    "RunRecord",
    "Series",
    "affected_workloads",
    "cost_per_hour",
    "figures",
    "gpu_alloc",
    "integral",
    "node_price",
    "pending_stats",
    "percentile",
    "ratio",
    "recovered",
    "spot_price_sources",
    "weights",
]
