"""A proven lower bound on the planner's objective, from a MILP (scipy's HiGHS), and a baseline.

**Model.** Pods are aggregated into kinds (:mod:`.kinds`), ``n_k`` pods of
kind ``k``. ``y_ko`` (continuous) is the number of pods of kind ``k`` on
offering ``o``, only where the kind may use it (capacity type, zone, arch,
GPU or not, card model)::

    minimise   sum_o price_o * (nodes of o) + sum_ko (rate_o / 730) rerun_k y_ko
    subject to sum_o y_ko = n_k                                    every kind

and one of two descriptions of the nodes of each offering:

* **patterns** (integer ``z_op``, the nodes of ``o`` filled as pattern
  ``p``) where the maximal patterns are few (``pattern_cap``): a pattern is
  a multiset of kinds one node *may* hold, and ``y_ko <= sum_p a_kp z_op``.
  "May hold" is a necessary condition: CPU, memory and pods exactly; for
  GPUs, whole-card vGPUs take cards of their own and the others must fit the
  remaining cards' summed slots, memory and cores, with at most one vGPU
  above half a card per card. No room is pooled across nodes;
* **pooled** (integer ``x_o`` nodes) otherwise: ``sum_k r_k y_ko <= alloc_r
  x_o`` for CPU, memory and pods, ``y_ko <= kmax_ko x_o`` (a kind alone), and
  the cards as bins: continuous card patterns ``w_oq`` (maximal multisets of
  vGPU sizes one card holds), ``sum_q w_oq <= cards_o x_o`` and every vGPU of
  the pods on ``o`` held by some card pattern.

Every plan the planner can make is a feasible point with the same objective
(its nodes meet each necessary condition), so the optimum is a lower bound
on the planner's cost. HiGHS stops when its best solution is within
``mip_gap`` of its proven bound; the value returned is that proven (dual)
bound, never above the optimum, and only when HiGHS finished within
``time_limit``; otherwise None (with the partial dual bound beside it). The
bound assumes no existing capacity and no limits.

Reductions that keep the optimum: zones that every kind treats alike and
that have the same offerings and prices are merged (a node in one can move
to the other); duplicate and dominated offerings are dropped per (zone,
arch) (:func:`~.catalogview.prune`).

**Baseline** (:func:`on_demand_baseline`): what a cluster without spotpack
pays: every GPU pod alone on the cheapest on-demand type with as many whole
cards as it asks for vGPUs (no sharing), CPU pods packed by the planner onto
on-demand only. Only spot and vGPU sharing separate the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from spotpack.gpu.demand import prepare
from spotpack.gpu.inventory import FULL_CORES
from spotpack.provisioning.cards import Cards
from spotpack.provisioning.catalogview import prune
from spotpack.provisioning.kinds import PodKind, aggregate
from spotpack.provisioning.model import ON_DEMAND, CapacityNeed, Offering, PodDemand
from spotpack.provisioning.plan import plan
from spotpack.provisioning.risk import hourly_probability


@dataclass(frozen=True, slots=True)
class Bound:
    """The MILP's answer: ``value`` ($/h, risk-adjusted) or None, and why."""

    value: float | None
    status: str
    kinds: int
    offerings: int
    variables: int
    dual_bound: float | None = None
    """HiGHS's best proven bound even when it ran out of time (may be weak)."""
    patterned: int = 0
    """Offerings modelled node by node (patterns) rather than pooled."""


def _zone_classes(kinds: Sequence[PodKind], offerings: Sequence[Offering]) -> dict[str, str]:
    """Zone -> representative zone, merging zones nothing tells apart."""
    by_zone: dict[str, set[tuple[object, ...]]] = {}
    for o in offerings:
        by_zone.setdefault(o.zone, set()).add(
            (o.instance_type, o.capacity, o.price_per_hour, o.interruption_rate)
        )
    rep: dict[str, str] = {}
    signatures: dict[tuple[object, ...], str] = {}
    for zone in sorted(by_zone):
        allowed = tuple(k.zones is None or zone in k.zones for k in kinds)
        sig = (frozenset(by_zone[zone]), allowed)
        rep[zone] = signatures.setdefault(sig, zone)
    return rep


def reduce_offerings(kinds: Sequence[PodKind], offerings: Iterable[Offering]) -> list[Offering]:
    """Offerings with merged zones and without duplicates or dominated ones (exact)."""
    offerings = list(offerings)
    rep = _zone_classes(kinds, offerings)
    groups: dict[tuple[str, str], list[Offering]] = {}
    for o in offerings:
        if rep[o.zone] == o.zone:
            groups.setdefault((o.zone, o.arch), []).append(o)
    out: list[Offering] = []
    for key in sorted(groups):
        out.extend(prune(groups[key]))
    out.sort(key=lambda o: o.sort_key)
    return out


def _kmax(kind: PodKind, o: Offering) -> int:
    k = kind.resources.count_in(o.allocatable)
    if kind.step is not None and o.gpu is not None:
        cards = Cards(o.gpu.count, o.gpu.mem_mib, max(o.vgpu_slots_per_card, 1))
        k = min(k, cards.capacity_bound(kind.step))
    return k


def _gpu_rows(kind: PodKind, o: Offering) -> tuple[int, int, int]:
    """(vGPUs, card MiB, cores) one pod of ``kind`` holds on ``o``'s cards, never overstated."""
    gpu = o.gpu
    if gpu is None or not kind.is_gpu:
        return (0, 0, 0)
    step = kind.step
    if step is None:
        demand = kind.sample.gpu
        return (demand.total_vgpus, demand.memory_on(gpu.mem_mib), 0)
    need = step.mem_mib if step.mem_mib >= 0 else gpu.mem_mib * step.percent // 100
    cores = FULL_CORES if step.cores >= FULL_CORES else step.cores
    return (step.count, step.count * need, step.count * cores)


class _Node:
    """One node's room during pattern enumeration (CPU, memory, pods, and per-card summaries)."""

    __slots__ = ("big", "cards", "cores", "cpu", "excl", "gmem", "mem", "pods", "slots")

    def __init__(self, o: Offering) -> None:
        a = o.allocatable
        self.cpu, self.mem, self.pods = a.cpu_m, a.mem_mib, a.pods
        self.cards = o.gpu.count if o.gpu is not None else 0
        self.excl = 0  # cards taken whole
        self.slots = self.gmem = self.cores = self.big = 0  # used on the shared cards


@dataclass(frozen=True, slots=True)
class _Shape:
    """What one pod of a kind takes on one offering, for the per-node necessary conditions."""

    cpu: int
    mem: int
    pods: int
    vgpus: int
    gmem: int
    cores: int
    exclusive: bool
    big: int
    """vGPUs larger than half a card: no two share a card."""
    spread: int
    """Distinct cards one container needs."""


def _shape(kind: PodKind, o: Offering) -> _Shape:
    r = kind.resources
    vgpus, gmem, cores = _gpu_rows(kind, o)
    step, gpu = kind.step, o.gpu
    exclusive = step is not None and step.cores >= FULL_CORES
    big = 0
    if step is not None and gpu is not None and 2 * (gmem // max(step.count, 1)) > gpu.mem_mib:
        big = step.count
    spread = kind.sample.gpu.min_cards if kind.is_gpu else 0
    return _Shape(r.cpu_m, r.mem_mib, r.pods, vgpus, gmem, cores, exclusive, big, spread)


def _fits(node: _Node, s: _Shape, o: Offering, n: int) -> bool:
    """Necessary conditions for ``n`` more pods of shape ``s`` on ``node`` (:func:`_patterns`)."""
    if node.cpu < n * s.cpu or node.mem < n * s.mem or node.pods < n * s.pods:
        return False
    if not s.vgpus:
        return True
    gpu = o.gpu
    if gpu is None:
        return False
    if s.exclusive:
        return node.excl + n * s.vgpus <= node.cards and _shared_ok(
            node, o, node.excl + n * s.vgpus
        )
    shared = node.cards - node.excl
    slots = max(o.vgpu_slots_per_card, 1)
    return (
        s.spread <= shared
        and node.slots + n * s.vgpus <= shared * slots
        and node.gmem + n * s.gmem <= shared * gpu.mem_mib
        and node.cores + n * s.cores <= shared * FULL_CORES
        and node.big + n * s.big <= shared
    )


def _shared_ok(node: _Node, o: Offering, excl: int) -> bool:
    gpu = o.gpu
    shared = node.cards - excl
    if gpu is None:
        return False
    slots = max(o.vgpu_slots_per_card, 1)
    return (
        node.slots <= shared * slots
        and node.gmem <= shared * gpu.mem_mib
        and node.cores <= shared * FULL_CORES
        and node.big <= shared
    )


def _take(node: _Node, s: _Shape, n: int) -> None:
    node.cpu -= n * s.cpu
    node.mem -= n * s.mem
    node.pods -= n * s.pods
    if s.exclusive:
        node.excl += n * s.vgpus
    else:
        node.slots += n * s.vgpus
        node.gmem += n * s.gmem
        node.cores += n * s.cores
        node.big += n * s.big


def _patterns(
    o: Offering, shapes: Sequence[tuple[int, _Shape, int]], cap: int
) -> list[tuple[int, ...]] | None:
    """Every maximal multiset of kinds one node of ``o`` may hold; None beyond ``cap`` patterns.

    "May hold" is a *necessary* condition, so no real node is missed: CPU,
    memory and pods exactly; for GPUs, whole-card vGPUs take cards of their
    own and the vGPUs on the remaining (shared) cards must fit those cards'
    summed slots, memory and cores, with at most one vGPU larger than half a
    card per card, and a container's vGPUs need as many distinct cards. On a
    one-card node this is exact. ``shapes`` are (position, shape, kmax).
    """
    found: list[tuple[int, ...]] = []
    counts = [0] * len(shapes)
    node = _Node(o)

    def maximal() -> bool:
        return not any(
            counts[i] < kmax and _fits(node, s, o, 1) for i, (_, s, kmax) in enumerate(shapes)
        )

    def walk(i: int) -> bool:
        if i == len(shapes):
            if maximal() and any(counts):
                found.append(tuple(counts))
            return len(found) <= cap
        _, s, kmax = shapes[i]
        most = 0
        while most < kmax and _fits(node, s, o, most + 1):
            most += 1
        for n in range(most, -1, -1):
            if n:
                _take(node, s, n)
            counts[i] = n
            ok = walk(i + 1)
            if n:
                _take(node, s, -n)
            counts[i] = 0
            if not ok:
                return False
        return True

    return found if walk(0) else None


CARD_PATTERN_CAP = 5000


def card_patterns(
    card_mib: int, slots: int, classes: Sequence[tuple[int, int]], cap: int
) -> list[tuple[int, ...]] | None:
    """Maximal multisets of vGPU classes (MiB, cores) one card holds; None beyond ``cap``.

    A card holds at most ``slots`` vGPUs, ``card_mib`` MiB and 100 cores; a
    vGPU of 100 cores is exclusive and holds the card alone.
    """
    found: list[tuple[int, ...]] = []
    counts = [0] * len(classes)

    def fits(i: int, used: tuple[int, int, int]) -> bool:
        mib, cores = classes[i]
        n, m, c = used
        if cores >= FULL_CORES:
            return n == 0 and mib <= card_mib
        if c >= FULL_CORES:
            return False
        return n + 1 <= slots and m + mib <= card_mib and c + cores <= FULL_CORES

    def walk(i: int, used: tuple[int, int, int]) -> bool:
        if i == len(classes):
            if any(counts) and not any(fits(j, used) for j in range(len(classes))):
                found.append(tuple(counts))
            return len(found) <= cap
        mib, cores = classes[i]
        n, m, c = used
        most = 0
        while fits(i, (n + most, m + most * mib, c + most * cores)):
            most += 1
            if cores >= FULL_CORES:
                break
        for k in range(most, -1, -1):
            counts[i] = k
            ok = walk(
                i + 1,
                (n + k, m + k * mib, c + (FULL_CORES if cores >= FULL_CORES and k else k * cores)),
            )
            counts[i] = 0
            if not ok:
                return False
        return True

    return found if walk(0, (0, 0, 0)) else None


def lower_bound(
    pending: Iterable[PodDemand],
    offerings: Iterable[Offering],
    *,
    time_limit: float = 30.0,
    pattern_cap: int = 400,
    pattern_budget: int = 40_000,
    mip_gap: float = 1e-4,
) -> Bound:
    """The MILP bound of the module docstring; ``value`` None when not proven in time.

    Offerings whose maximal patterns number at most ``pattern_cap`` (and while
    the total stays within ``pattern_budget``) get one integer per pattern,
    which rules out pooling room across nodes; the others are pooled.
    """
    kinds, _ = aggregate(pending)
    if not kinds:
        return Bound(0.0, "optimal", 0, 0, 0, 0.0)
    reduced = reduce_offerings(kinds, offerings)
    builder = _Builder(kinds, reduced)
    for kind in kinds:
        if kind.index not in builder.by_kind:
            reason = f"infeasible: {kind.describe()} fits no offering"
            return Bound(None, reason, len(kinds), len(reduced), 0)
    builder.add_nodes(pattern_cap, pattern_budget)
    builder.add_demand()
    cost, integrality, constraint = builder.model()
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(0, np.inf),
        constraints=constraint,
        options={"time_limit": time_limit, "disp": False, "mip_rel_gap": mip_gap},
    )
    dual = getattr(result, "mip_dual_bound", None)
    dual_value = float(dual) if dual is not None and np.isfinite(dual) else None
    size = (len(kinds), len(reduced), len(cost))
    if result.status == 0:
        # Without a reported dual bound, the best solution less the gap is still proven.
        value = dual_value if dual_value is not None else float(result.fun) * (1 - mip_gap)
        return Bound(value, "optimal", *size, dual_value, builder.patterned)
    return Bound(None, str(result.message), *size, dual_value, builder.patterned)


class _Builder:
    """Columns and rows of the bound's MILP (see :func:`lower_bound`)."""

    def __init__(self, kinds: Sequence[PodKind], offerings: Sequence[Offering]) -> None:
        self.kinds = kinds
        self.offerings = offerings
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.card_patterns: dict[tuple[object, ...], list[tuple[int, ...]] | None] = {}
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.patterned = 0
        # y columns first: one per (kind, offering) the kind may use.
        self.pairs: list[tuple[int, int, int]] = []
        self.by_kind: dict[int, list[int]] = {}
        self.by_offering: dict[int, list[int]] = {}
        for j, o in enumerate(offerings):
            for kind in kinds:
                if kind.allows_offering(o):
                    k = _kmax(kind, o)
                    if k > 0:
                        column = self.column(hourly_probability(o.interruption_rate) * kind.rerun)
                        self.pairs.append((kind.index, j, k))
                        self.by_kind.setdefault(kind.index, []).append(column)
                        self.by_offering.setdefault(j, []).append(column)

    def column(self, cost: float, integer: bool = False) -> int:
        self.cost.append(cost)
        self.integer.append(integer)
        return len(self.cost) - 1

    def row(self, entries: Iterable[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(self.lower)
        for c, v in entries:
            if v:
                self.rows.append(r)
                self.cols.append(c)
                self.vals.append(v)
        self.lower.append(lo)
        self.upper.append(hi)

    def add_demand(self) -> None:
        for kind in self.kinds:
            n = float(len(kind.keys))
            self.row(((c, 1.0) for c in self.by_kind.get(kind.index, [])), n, n)

    def add_nodes(self, cap: int, budget: int) -> None:
        cache: dict[tuple[object, ...], list[tuple[int, ...]] | None] = {}
        for j, o in enumerate(self.offerings):
            members = self.by_offering.get(j, [])
            if not members:
                continue
            shapes = [
                (c, _shape(self.kinds[self.pairs[c][0]], o), self.pairs[c][2]) for c in members
            ]
            key = (o.instance_type, tuple((s, k) for _, s, k in shapes))
            if key not in cache:
                cache[key] = _patterns(o, shapes, min(cap, budget)) if budget > 0 else None
                budget -= len(cache[key] or ())
            patterns = cache[key]
            if patterns is None:
                self.pooled(j, o, members)
            else:
                self.patterned += 1
                self.by_pattern(o, members, patterns)

    def by_pattern(self, o: Offering, members: list[int], patterns: list[tuple[int, ...]]) -> None:
        """y_ko <= sum_p a_kp z_op: pods of a kind on ``o`` fit the patterns bought."""
        z = [self.column(o.price_per_hour, integer=True) for _ in patterns]
        for i, c in enumerate(members):
            self.row(
                [(c, 1.0), *((z[p], -float(a[i])) for p, a in enumerate(patterns))], -np.inf, 0
            )

    def pooled(self, j: int, o: Offering, members: list[int]) -> None:
        """Summed room of x_o nodes, and y_ko <= kmax_ko x_o."""
        x = self.column(o.price_per_hour, integer=True)
        a = o.allocatable
        kinds = [self.kinds[self.pairs[c][0]] for c in members]
        for c in members:
            self.row([(c, 1.0), (x, -float(self.pairs[c][2]))], -np.inf, 0.0)
        for attr, cap in (("cpu_m", a.cpu_m), ("mem_mib", a.mem_mib), ("pods", a.pods)):
            entries = [
                (c, float(getattr(k.resources, attr))) for c, k in zip(members, kinds, strict=True)
            ]
            self.row([*entries, (x, -float(cap))], -np.inf, 0.0)
        gpu = o.gpu
        if gpu is None:
            return
        if not self.by_card(o, x, members, kinds):
            self.summed_cards(o, x, members, kinds)

    def summed_cards(self, o: Offering, x: int, members: list[int], kinds: list[PodKind]) -> None:
        """Slots, memory and cores of all cards summed (when card patterns are too many)."""
        gpu = o.gpu
        if gpu is None:
            return
        demand = [(c, _gpu_rows(k, o)) for c, k in zip(members, kinds, strict=True)]
        caps = (
            gpu.count * max(o.vgpu_slots_per_card, 1),
            gpu.count * gpu.mem_mib,
            gpu.count * FULL_CORES,
        )
        for dim, cap in enumerate(caps):
            self.row([*((c, float(d[dim])) for c, d in demand), (x, -float(cap))], -np.inf, 0.0)

    def by_card(self, o: Offering, x: int, members: list[int], kinds: list[PodKind]) -> bool:
        """Cards as bins: w_q cards filled by card pattern q, at most ``cards * x_o`` of them.

        A vGPU class is (MiB, cores) of one vGPU; every vGPU of the pods on
        ``o`` must sit in some card's pattern. Patterns are continuous (the
        classic cutting-stock LP, itself a relaxation); pods with several GPU
        containers count their vGPUs with no memory (an underestimate).
        """
        gpu = o.gpu
        if gpu is None:
            return True
        vgpus: list[tuple[int, tuple[int, int], int]] = []
        for c, kind in zip(members, kinds, strict=True):
            step = kind.step
            if step is None:
                vgpus.append((c, (0, 0), kind.sample.gpu.total_vgpus))
                continue
            need = step.mem_mib if step.mem_mib >= 0 else gpu.mem_mib * step.percent // 100
            vgpus.append((c, (need, min(step.cores, FULL_CORES)), step.count))
        classes = sorted({cls for _, cls, _ in vgpus})
        slots = max(o.vgpu_slots_per_card, 1)
        key = (gpu.mem_mib, slots, tuple(classes))
        if key not in self.card_patterns:
            self.card_patterns[key] = card_patterns(gpu.mem_mib, slots, classes, CARD_PATTERN_CAP)
        patterns = self.card_patterns[key]
        if patterns is None:
            return False
        w = [self.column(0.0) for _ in patterns]
        self.row([*((col, 1.0) for col in w), (x, -float(gpu.count))], -np.inf, 0.0)
        for i, cls in enumerate(classes):
            used = [(c, float(n)) for c, k, n in vgpus if k == cls]
            held = [(w[q], -float(p[i])) for q, p in enumerate(patterns) if p[i]]
            self.row([*used, *held], -np.inf, 0.0)
        return True

    def model(self) -> tuple[np.ndarray, np.ndarray, LinearConstraint]:
        n = len(self.cost)
        matrix = coo_array((self.vals, (self.rows, self.cols)), shape=(len(self.lower), n)).tocsr()
        constraint = LinearConstraint(matrix, np.array(self.lower), np.array(self.upper))
        return np.array(self.cost), np.array(self.integer, dtype=float), constraint


@dataclass(frozen=True, slots=True)
class Baseline:
    """All on-demand, whole GPUs, no GPU sharing: $/h, split into GPU and CPU pods."""

    cost_per_hour: float
    gpu_cost_per_hour: float
    cpu_cost_per_hour: float
    unplaceable: int


def on_demand_baseline(pending: Iterable[PodDemand], offerings: Iterable[Offering]) -> Baseline:
    """The baseline of the module docstring."""
    pending = list(pending)
    on_demand = [o for o in offerings if o.capacity == ON_DEMAND]
    gpu_cost = 0.0
    missing = 0
    for pod in sorted((p for p in pending if p.is_gpu), key=lambda p: p.key):
        best = _whole_card_offering(pod, on_demand)
        if best is None:
            missing += 1
        else:
            gpu_cost += best.price_per_hour
    cpu_pods = [replace(p, capacity=CapacityNeed.ON_DEMAND_ONLY) for p in pending if not p.is_gpu]
    cpu_plan = plan(cpu_pods, (), on_demand)
    missing += len(cpu_plan.unplaceable)
    total = gpu_cost + cpu_plan.cost_per_hour
    return Baseline(total, gpu_cost, cpu_plan.cost_per_hour, missing)


def _whole_card_offering(pod: PodDemand, offerings: Sequence[Offering]) -> Offering | None:
    """The cheapest on-demand type with a whole card per vGPU, each big enough, room for the pod."""
    cards_needed = pod.gpu.total_vgpus
    prepared = prepare(pod.gpu, include=pod.gpu_include, exclude=pod.gpu_exclude)
    for o in sorted(offerings, key=lambda o: o.sort_key):
        gpu = o.gpu
        if gpu is None or gpu.count < cards_needed or not pod.resources.fits(o.allocatable):
            continue
        if not prepared.model_ok(gpu.model.lower()):
            continue
        if pod.arch is not None and o.arch not in pod.arch:
            continue
        if pod.zones is not None and o.zone not in pod.zones:
            continue
        if all(c.request.memory_on(gpu.mem_mib) <= gpu.mem_mib for c in pod.gpu.containers):
            return o
    return None


__all__ = [
    "Baseline",
    "Bound",
    "card_patterns",
    "lower_bound",
    "on_demand_baseline",
    "reduce_offerings",
]
