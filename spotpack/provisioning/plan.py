"""The provisioner's planner: pending pods in, a :class:`~.model.Plan` out. Pure and deterministic.

Steps:

1. **Existing and in-flight capacity first** (:mod:`.existing`), first-fit
   decreasing, per-card GPU fit through :mod:`spotpack.gpu`.
2. **Identical pods aggregated** into kinds (:mod:`.kinds`): the work grows
   with kinds, not pods.
3. **Families.** What is left is grouped by what a node must be for its pods:
   capacity type, GPU or not (GPU families also by card model filters).
   Spot-only pods go to spot, on-demand-only to on-demand; spot-preferred and
   any go to whichever costs less per pod risk-adjusted (price + interruption
   probability x re-run cost, :mod:`.risk`) packed with their own kind on its
   best type (ties: spot for spot-preferred, on-demand for any). Zones and
   arch are per candidate offering inside a family (:mod:`.search`), so pods
   pinned to a zone share nodes with free pods there.
4. **Packing**, on-demand families first: each family first fills the free
   room of nodes already planned that its pods may use (a flexible pod rides
   free on an on-demand driver's node), then the pattern search over the
   family's candidate offerings (:mod:`.catalogview`, :mod:`.search`); every
   node is then downsized to the cheapest type that still holds its pods
   (:mod:`.pack`). Pods without GPU requests never get GPU types.
5. **Limits**: nodes are kept in order of worth packed per dollar until a
   limit would be exceeded; the pods of the nodes left out are unplaceable,
   with the limit named.

Determinism: kinds are ordered by their first pod key, offerings by (price,
type, zone, capacity), families by a sort key, and every tie is broken by
position; no set or dict iteration order reaches the output. Pods of a kind
are handed out in (group, key) order, so an application's pods share nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from spotpack.provisioning.catalogview import OfferingIndex, prune
from spotpack.provisioning.existing import place_on_existing
from spotpack.provisioning.kinds import PodKind, aggregate
from spotpack.provisioning.model import (
    NO_LIMITS,
    ON_DEMAND,
    SPOT,
    CapacityNeed,
    CapacityType,
    Limits,
    NodeCapacity,
    Offering,
    Plan,
    PlannedNode,
    PodDemand,
    claim_id,
    frozen_map,
)
from spotpack.provisioning.pack import Bin, downsize, fill_leftovers
from spotpack.provisioning.risk import risk_cost
from spotpack.provisioning.search import PatternSearch

MAX_FALLBACKS = 5
"""Instance types offered to CreateFleet besides the chosen one."""


@dataclass(frozen=True, slots=True)
class Family:
    """A packing family: pods that may share nodes of one capacity type, GPU or not.

    Zones and arch are not part of it: a candidate offering's fill draws only
    on the kinds allowed there, so zone-pinned and free pods share a node
    whenever their constraints meet (memory-heavy pinned pods beside CPU-heavy
    free ones fill a node better than either alone).
    """

    capacity: CapacityType
    gpu: bool
    exact: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]

    @property
    def order(self) -> tuple[object, ...]:
        """On-demand first, so flexible pods can ride in the room it leaves; GPU first."""
        return (self.capacity, not self.gpu, self.exact, self.include, self.exclude)

    def label(self) -> str:
        return f"{self.capacity} {'gpu' if self.gpu else 'cpu'}"


def _family(kind: PodKind, capacity: CapacityType) -> Family:
    s = kind.sample
    return Family(
        capacity=capacity,
        gpu=kind.is_gpu,
        exact=kind.gpu_complex,
        include=s.gpu_include,
        exclude=s.gpu_exclude,
    )


class _Planner:
    """One planning run's state: kinds, counts and the caches built along the way."""

    def __init__(self, kinds: list[PodKind], counts: list[int], index: OfferingIndex) -> None:
        self.kinds = kinds
        self.counts = counts
        self.index = index
        self.packers: dict[Family, PatternSearch] = {}
        self.worth: dict[int, float] = {}

    def candidates(self, key: Family, kinds: Sequence[PodKind]) -> list[Offering]:
        """The family's offerings, pruned among those the same kinds may use."""
        prepared = kinds[0].prepared
        groups: dict[tuple[int, ...], list[Offering]] = {}
        accepted: dict[tuple[str, str, int], tuple[int, ...]] = {}
        for zone in self.index.zones:
            for o in self.index.group(key.capacity, zone, key.gpu):
                if prepared is not None and (
                    o.gpu is None or not prepared.model_ok(o.gpu.model.lower())
                ):
                    continue
                where = (o.zone, o.arch, o.cards)
                if where not in accepted:
                    accepted[where] = tuple(k.index for k in kinds if k.allows_offering(o))
                if accepted[where]:
                    groups.setdefault(accepted[where], []).append(o)
        found = [o for acc in sorted(groups) for o in prune(groups[acc])]
        return sorted(found, key=lambda o: o.sort_key)

    def packer(self, key: Family, kinds: Sequence[PodKind]) -> PatternSearch:
        packer = self.packers.get(key)
        if packer is None:
            packer = PatternSearch(kinds, self.candidates(key, kinds), key.exact)
            self.packers[key] = packer
        return packer

    def families(self) -> dict[Family, list[PodKind]]:
        """Resolve flexible kinds to a capacity type and group kinds into families."""
        options: dict[Family, list[PodKind]] = {}
        for kind in self.kinds:
            if self.counts[kind.index] <= 0:
                continue
            for capacity in (ON_DEMAND, SPOT):
                if kind.need.allows(capacity):
                    options.setdefault(_family(kind, capacity), []).append(kind)
        per_pod: dict[tuple[int, str], float] = {}
        for key in sorted(options, key=lambda k: k.order):
            packer = self.packer(key, options[key])
            for kind in options[key]:
                if kind.index in packer.worth:
                    per_pod[(kind.index, key.capacity)] = packer.worth[kind.index]
        chosen: dict[Family, list[PodKind]] = {}
        for kind in self.kinds:
            if self.counts[kind.index] <= 0:
                continue
            resolved = _resolve(kind, per_pod)
            if resolved is None:
                continue
            self.worth[kind.index] = per_pod[(kind.index, resolved)]
            chosen.setdefault(_family(kind, resolved), []).append(kind)
        return chosen

    def pack(self) -> list[Bin]:
        bins: list[Bin] = []
        families = self.families()
        for key in sorted(families, key=lambda k: k.order):
            kinds = families[key]
            for kind in sorted(kinds, key=lambda k: (-self.worth[k.index], k.index)):
                fill_leftovers(kind, self.counts, bins)
            bins.extend(self.packers[key].pack(kinds, self.counts, key.label()))
        return self._downsized(bins)

    def _downsized(self, bins: list[Bin]) -> list[Bin]:
        cache: dict[tuple[int, tuple[tuple[int, int], ...]], Bin | None] = {}
        out = []
        for b in bins:
            o = b.offering
            key = (self.index.pos(o), tuple(b.content))
            if key not in cache:
                group = self.index.group(o.capacity, o.zone, o.gpu is not None)
                smaller = downsize(b, self.kinds, group)
                cache[key] = smaller if smaller is not b else None
            template = cache[key]
            out.append(template.clone(b.copies) if template is not None else b)
        return out


def _resolve(kind: PodKind, per_pod: dict[tuple[int, str], float]) -> CapacityType | None:
    spot = per_pod.get((kind.index, SPOT))
    od = per_pod.get((kind.index, ON_DEMAND))
    if spot is None or od is None:
        return SPOT if spot is not None else (ON_DEMAND if od is not None else None)
    if spot < od or (spot == od and kind.need is CapacityNeed.SPOT_PREFERRED):
        return SPOT
    return ON_DEMAND


@dataclass(frozen=True, slots=True)
class _Emitted:
    node: PlannedNode
    worth: float
    gpus: int


class _Emitter:
    """Turns bins into planned nodes with pod keys, fallbacks and claim ids."""

    def __init__(
        self, kinds: list[PodKind], cursor: list[int], index: OfferingIndex, worth: dict[int, float]
    ) -> None:
        self.kinds = kinds
        self.cursor = cursor
        self.index = index
        self.worth = worth
        self.fallbacks: dict[tuple[int, tuple[int, ...]], tuple[str, ...]] = {}

    def emit(self, bins: Iterable[Bin]) -> list[_Emitted]:
        out = []
        for b in bins:
            o = b.offering
            types = self._types(b)
            worth = sum(self.worth.get(i, 0.0) * n for i, n in b.content)
            for _ in range(b.copies):
                pods = self._take(b.content)
                node = PlannedNode(
                    claim_id=claim_id(pods, o.instance_type, o.zone, o.capacity),
                    instance_types=types,
                    zone=o.zone,
                    capacity=o.capacity,
                    pods=pods,
                    price_per_hour=o.price_per_hour,
                    risk_cost_per_hour=risk_cost(o, b.rerun),
                    reason=b.reason,
                    arch=o.arch,
                )
                out.append(_Emitted(node, worth, o.cards))
        return out

    def _take(self, content: Sequence[tuple[int, int]]) -> tuple[str, ...]:
        pods: list[str] = []
        for i, n in content:
            start = self.cursor[i]
            pods.extend(self.kinds[i].keys[start : start + n])
            self.cursor[i] = start + n
        return tuple(pods)

    def _types(self, b: Bin) -> tuple[str, ...]:
        o = b.offering
        kinds = tuple(sorted({i for i, _ in b.content}))
        key = (self.index.pos(o), kinds)
        found = self.fallbacks.get(key)
        if found is None:
            found = (o.instance_type, *self._fallbacks(o, [self.kinds[i] for i in kinds]))
            self.fallbacks[key] = found
        return found

    def _fallbacks(self, chosen: Offering, kinds: Sequence[PodKind]) -> list[str]:
        """Types of the same capacity type, zone and arch with at least the chosen room."""
        names: list[str] = []
        for o in self.index.group(chosen.capacity, chosen.zone, chosen.gpu is not None):
            if len(names) >= MAX_FALLBACKS:
                break
            if o.instance_type == chosen.instance_type or o.instance_type in names:
                continue
            if o.arch != chosen.arch or not chosen.allocatable.fits(o.allocatable):
                continue
            if not _gpu_superset(o, chosen) or not all(k.allows_offering(o) for k in kinds):
                continue
            names.append(o.instance_type)
        return names


def _gpu_superset(o: Offering, chosen: Offering) -> bool:
    if chosen.gpu is None or o.gpu is None:
        return chosen.gpu is None and o.gpu is None
    return (
        o.gpu.count >= chosen.gpu.count
        and o.gpu.mem_mib >= chosen.gpu.mem_mib
        and o.vgpu_slots_per_card >= chosen.vgpu_slots_per_card
    )


def _limited(emitted: list[_Emitted], limits: Limits) -> tuple[list[PlannedNode], dict[str, str]]:
    """Keep nodes by value per dollar while within ``limits``; the rest's pods get a reason."""
    if limits == NO_LIMITS:
        return [e.node for e in emitted], {}
    ranked = sorted(
        range(len(emitted)),
        key=lambda i: (-emitted[i].worth / max(emitted[i].node.risk_adjusted_cost, 1e-9), i),
    )
    keep: set[int] = set()
    dropped: dict[str, str] = {}
    nodes = gpus = 0
    cost = 0.0
    for i in ranked:
        e = emitted[i]
        reason = _over(limits, nodes, gpus, cost, e)
        if reason:
            for key in e.node.pods:
                dropped[key] = f"would exceed the limit {reason}"
            continue
        keep.add(i)
        nodes += 1
        gpus += e.gpus
        cost += e.node.price_per_hour
    return [e.node for i, e in enumerate(emitted) if i in keep], dropped


def _over(limits: Limits, nodes: int, gpus: int, cost: float, e: _Emitted) -> str:
    if limits.max_nodes is not None and nodes + 1 > limits.max_nodes:
        return f"max_nodes={limits.max_nodes}"
    if limits.max_gpus is not None and gpus + e.gpus > limits.max_gpus:
        return f"max_gpus={limits.max_gpus}"
    total = cost + e.node.price_per_hour
    if limits.max_cost_per_hour is not None and total > limits.max_cost_per_hour + 1e-9:
        return f"max_cost_per_hour={limits.max_cost_per_hour:g}"
    return ""


def _no_fit_reason(kind: PodKind) -> str:
    s = kind.sample
    arch = "/".join(sorted(s.arch)) if s.arch is not None else "any arch"
    zones = "/".join(sorted(s.zones)) if s.zones is not None else "any zone"
    return (
        f"no instance type fits {kind.describe()} with capacity {s.capacity.value}, "
        f"{arch}, {zones}" + ("" if kind.is_gpu else " (GPU types are not used for CPU pods)")
    )


def plan(
    pending: Iterable[PodDemand],
    existing: Sequence[NodeCapacity] = (),
    offerings: Iterable[Offering] = (),
    limits: Limits = NO_LIMITS,
) -> Plan:
    """Place ``pending`` on ``existing`` capacity, then on new nodes from ``offerings``."""
    kinds, _ = aggregate(pending)  # a key seen twice is planned once
    counts = [len(k.keys) for k in kinds]
    cursor = [0] * len(kinds)
    onto: list[tuple[str, str]] = []
    for i, node, n in place_on_existing(kinds, counts, existing):
        start = cursor[i]
        onto.extend((key, node) for key in kinds[i].keys[start : start + n])
        cursor[i] = start + n
    index = OfferingIndex(offerings)
    planner = _Planner(kinds, counts, index)
    bins = planner.pack()
    emitted = _Emitter(kinds, cursor, index, planner.worth).emit(bins)
    nodes, unplaceable = _limited(emitted, limits)
    for kind in kinds:
        reason = _no_fit_reason(kind)
        unplaceable.update((key, reason) for key in kind.keys[cursor[kind.index] :])
    return Plan(
        onto_existing=MappingProxyType(dict(onto)),
        new_nodes=tuple(nodes),
        unplaceable=frozen_map(unplaceable.items()),
        cost_per_hour=round(sum(n.price_per_hour for n in nodes), 9),
        risk_cost_per_hour=round(sum(n.risk_cost_per_hour for n in nodes), 9),
    )


__all__ = ["MAX_FALLBACKS", "Family", "plan"]
