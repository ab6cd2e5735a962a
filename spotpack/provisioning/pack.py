"""Bin-pack pod kinds into new nodes: a greedy search over repeated patterns.

For one class of pods (same capacity type, arch, zones, GPU or not), each
round tries every candidate offering (:mod:`.catalogview`): fill an empty
node greedily with the remaining pods, most valuable kinds first, and score
the fill by::

    score = risk_adjusted_cost(node) / sum(worth of the pods it holds)
    worth(kind) = min over offerings o of  cost_o(k_o pods) / k_o

where ``k_o`` is how many pods of that kind alone fill ``o``. ``worth`` is
what a pod costs when packed with its own kind on its best type, so a score
below 1 means the mix packs better than each kind would alone. The best
scoring fill (ties: cheaper node, then the candidate's order) becomes a
*pattern* and is repeated as many times as the remaining counts allow, so the
number of rounds grows with the number of kinds, not of pods. This compares
"one large versus several small" directly: a large type wins when its price
per packed pod is lower, a small one when the pods left are few.

Afterwards every node is *downsized*: the cheapest offering of the same
capacity type and zone that still holds its pods (in the same order, same
per-card fit) replaces it. That fixes the last, partly filled node of each
class. Pods of a later class first go into the free room of nodes already
planned when their constraints allow (:func:`fill_leftovers`).
"""

from __future__ import annotations

from collections.abc import Sequence

from spotpack.gpu.inventory import FULL_CORES
from spotpack.provisioning.cards import Cards, UsageCards
from spotpack.provisioning.kinds import PodKind
from spotpack.provisioning.model import Offering
from spotpack.provisioning.offerings import offering_gpus
from spotpack.provisioning.risk import hourly_probability

GPUState = Cards | UsageCards


def new_state(offering: Offering, exact: bool) -> GPUState | None:
    """An empty node's cards: the fast arithmetic, or :class:`UsageCards` when ``exact``."""
    gpu = offering.gpu
    if gpu is None or gpu.count <= 0:
        return None
    if exact:
        gpus = offering_gpus(offering)
        return UsageCards(gpus) if gpus is not None else None
    return Cards(gpu.count, gpu.mem_mib, max(offering.vgpu_slots_per_card, 1))


def place_gpu(state: GPUState, kind: PodKind, n: int) -> int:
    """Put up to ``n`` pods of ``kind`` on ``state``'s cards; how many went on."""
    if isinstance(state, Cards):
        return state.place(kind.step, n) if kind.step is not None else 0
    return state.place(kind.prepared, n) if kind.prepared is not None else 0


def node_cost(offering: Offering, rerun: float) -> float:
    """Risk-adjusted $/h of one node (:mod:`.risk`)."""
    return offering.price_per_hour + hourly_probability(offering.interruption_rate) * rerun


class Bin:
    """``copies`` identical planned nodes: an offering, what is left on it, the pods per copy."""

    __slots__ = ("content", "copies", "cpu", "mem", "offering", "pods", "reason", "rerun", "state")

    def __init__(self, offering: Offering, copies: int, state: GPUState | None) -> None:
        a = offering.allocatable
        self.offering = offering
        self.copies = copies
        self.cpu, self.mem, self.pods = a.cpu_m, a.mem_mib, a.pods
        self.state = state
        self.content: list[tuple[int, int]] = []
        """(kind index, pods per copy) in placement order."""
        self.rerun = 0.0
        self.reason = ""

    @property
    def exact(self) -> bool:
        return isinstance(self.state, UsageCards)

    def clone(self, copies: int) -> Bin:
        other = Bin(self.offering, copies, self.state.copy() if self.state is not None else None)
        other.cpu, other.mem, other.pods = self.cpu, self.mem, self.pods
        other.content = list(self.content)
        other.rerun = self.rerun
        other.reason = self.reason
        return other

    def record(self, kind: PodKind, n: int) -> None:
        r = kind.resources
        self.cpu -= n * r.cpu_m
        self.mem -= n * r.mem_mib
        self.pods -= n * r.pods
        self.rerun += n * kind.rerun
        if self.content and self.content[-1][0] == kind.index:
            self.content[-1] = (kind.index, self.content[-1][1] + n)
        else:
            self.content.append((kind.index, n))

    def room_for(self, kind: PodKind, n: int) -> int:
        """How many of ``kind`` fit per copy by CPU, memory and pods (not GPUs)."""
        r = kind.resources
        n = min(n, self.pods // max(r.pods, 1))
        if r.cpu_m > 0:
            n = min(n, self.cpu // r.cpu_m)
        if r.mem_mib > 0:
            n = min(n, self.mem // r.mem_mib)
        return max(n, 0)

    def accepts(self, kind: PodKind) -> bool:
        o = self.offering
        if not kind.allows_offering(o):
            return False
        return not (kind.gpu_complex and not self.exact)


def standalone_count(kind: PodKind, offering: Offering, exact: bool) -> int:
    """Pods of ``kind`` alone on an empty node of ``offering``."""
    k = kind.resources.count_in(offering.allocatable)
    if k > 0 and kind.is_gpu:
        state = new_state(offering, exact)
        k = place_gpu(state, kind, k) if state is not None else 0
    return k


SHORTLIST = 4
GPU_SHORTLIST = 4
"""Candidates per round whose fill is refined by the perturbation search."""
PERTURB_KINDS = 3
PERTURB_STEPS = 3


def footprint(kind: PodKind, offering: Offering) -> float:
    """The largest share of an empty node of ``offering`` one pod of ``kind`` takes."""
    r, a = kind.resources, offering.allocatable
    share = max(r.cpu_m / max(a.cpu_m, 1), r.mem_mib / max(a.mem_mib, 1), r.pods / max(a.pods, 1))
    gpu, step = offering.gpu, kind.step
    if gpu is not None and step is not None and gpu.count > 0:
        need = step.mem_mib if step.mem_mib >= 0 else gpu.mem_mib * step.percent // 100
        slots = gpu.count * max(offering.vgpu_slots_per_card, 1)
        cores = min(step.cores, FULL_CORES)
        share = max(
            share,
            step.count * need / (gpu.count * gpu.mem_mib),
            step.count / slots,
            step.count * cores / (gpu.count * FULL_CORES),
        )
    return share


class ClassPacker:
    """Greedy pattern packing of one class of kinds into its candidate offerings.

    ``worth`` (per kind) is the standalone cost per pod: what the planner uses
    to choose spot or on-demand and to rank nodes under limits. Inside
    :meth:`pack` CPU classes score fills with the fluid LP's resource prices
    (:mod:`.prices`), recomputed every round for what is left; GPU classes,
    whose cards the LP cannot see, keep the standalone worth.
    """

    def __init__(
        self, kinds: Sequence[PodKind], candidates: Sequence[Offering], exact: bool
    ) -> None:
        self.exact = exact
        self.kmax: list[dict[int, int]] = []
        self.candidates: list[Offering] = []
        self.shares: list[dict[int, float]] = []
        worth: dict[int, float] = {}
        for o in candidates:
            row = {}
            share = {}
            ph = hourly_probability(o.interruption_rate)
            for kind in kinds:
                if not kind.allows_offering(o):
                    continue
                k = standalone_count(kind, o, exact)
                if k > 0:
                    row[kind.index] = k
                    share[kind.index] = footprint(kind, o)
                    per_pod = (o.price_per_hour + ph * k * kind.rerun) / k
                    if per_pod < worth.get(kind.index, float("inf")):
                        worth[kind.index] = per_pod
            if row:
                self.candidates.append(o)
                self.kmax.append(row)
                self.shares.append(share)
        self.worth = worth
        self.round_worth: dict[int, float] = worth
        self.gpu = any(o.gpu is not None for o in self.candidates)
        self.memo: dict[tuple[int, tuple[tuple[int, int], ...]], tuple[Bin, float]] = {}
        self.floor = (0, 0, 0)

    def pack(self, kinds: Sequence[PodKind], counts: list[int], label: str) -> list[Bin]:
        """Pack ``counts`` of ``kinds`` (decremented in place); kinds that fit nowhere stay."""
        placeable = [k for k in kinds if k.index in self.worth]
        by_index = {k.index: k for k in placeable}
        bins: list[Bin] = []
        while True:
            live = [k for k in placeable if counts[k.index] > 0]
            if not live:
                return bins
            self._set_floor(live)
            worth = self.round_worth
            active = sorted(live, key=lambda k: (-worth[k.index], k.index))
            found = self._best_fill(active, by_index, counts)
            if found is None:
                return bins
            (score, _, _), found_bin = found
            b = found_bin.clone(1)  # the memo keeps the original
            per_copy: dict[int, int] = {}
            for i, n in b.content:
                per_copy[i] = per_copy.get(i, 0) + n
            repeat = min(counts[i] // n for i, n in per_copy.items())
            b.copies = max(repeat, 1)
            for i, n in per_copy.items():
                counts[i] -= n * b.copies
            b.reason = (
                f"{sum(per_copy.values())} pods of {label} at {score:.3f}x their fluid cost; "
                f"best of {len(self.candidates)} candidate types"
            )
            bins.append(b)

    def _fill(
        self,
        position: int,
        order: Sequence[PodKind],
        counts: list[int],
        caps: dict[int, int] | None = None,
        base: dict[int, int] | None = None,
    ) -> tuple[Bin, float]:
        """Greedy fill of an empty node of candidate ``position``; (bin, value).

        ``base`` pods go on first (the proportional share, see
        :meth:`_proportional`), then ``order`` tops the node up, each kind
        capped by ``caps``. Stops as soon as not even the smallest pod left
        would fit (:attr:`floor`).
        """
        o = self.candidates[position]
        kmax = self.kmax[position]
        worth = self.round_worth
        b = Bin(o, 1, new_state(o, self.exact))
        cards = b.state if isinstance(b.state, Cards) else None
        min_cpu, min_mem, min_gpu = self.floor
        value = 0.0
        taken: dict[int, int] = {}
        room_mib = cards.open_room() if cards is not None else 0
        for limits in (base, None) if base is not None else (None,):
            for kind in order:
                i = kind.index
                step = kind.step
                if cards is not None and step is not None and step.mem_mib > room_mib:
                    continue
                cap = min(kmax.get(i, 0), counts[i])
                if caps is not None and i in caps:
                    cap = min(cap, caps[i])
                if limits is not None:
                    cap = min(cap, limits.get(i, 0))
                cap -= taken.get(i, 0)
                if cap <= 0:
                    continue
                n = b.room_for(kind, cap)
                if n > 0 and b.state is not None:
                    n = place_gpu(b.state, kind, n)
                if n <= 0:
                    continue
                b.record(kind, n)
                taken[i] = taken.get(i, 0) + n
                value += n * worth[i]
                if cards is not None:
                    room_mib = cards.open_room()
                if b.pods <= 0 or b.cpu < min_cpu or b.mem < min_mem or room_mib < min_gpu:
                    return b, value
        return b, value

    def _set_floor(self, live: Sequence[PodKind]) -> None:
        """The smallest CPU, memory and vGPU MiB any pod left asks for (for early stops)."""
        gpu = [k.step.mem_mib for k in live if k.step is not None]
        self.floor = (
            min(k.resources.cpu_m for k in live),
            min(k.resources.mem_mib for k in live),
            max(min(gpu), 0) if gpu and len(gpu) == len(live) else 0,
        )

    def _greedy(
        self, position: int, active: Sequence[PodKind], counts: list[int]
    ) -> tuple[Bin, float]:
        """:meth:`_fill` in worth order, memoized: it depends on the counts only up to kmax."""
        kmax = self.kmax[position]
        key = (
            position,
            tuple(
                (k.index, min(counts[k.index], kmax[k.index])) for k in active if k.index in kmax
            ),
        )
        hit = self.memo.get(key)
        if hit is None:
            hit = self._fill(position, active, counts)
            self.memo[key] = hit
        return hit

    def _proportional(
        self, position: int, active: Sequence[PodKind], counts: list[int]
    ) -> dict[int, int]:
        """Each kind's share of one node when the node takes the remaining mix in proportion."""
        a = self.candidates[position].allocatable
        kmax = self.kmax[position]
        active = [k for k in active if k.index in kmax]
        demand = [0, 0, 0]
        for k in active:
            r, n = k.resources, counts[k.index]
            demand[0] += n * r.cpu_m
            demand[1] += n * r.mem_mib
            demand[2] += n * r.pods
        room = (a.cpu_m, a.mem_mib, a.pods)
        t = min((room[i] / demand[i] for i in range(3) if demand[i] > 0), default=1.0)
        if t >= 1.0:
            return {k.index: counts[k.index] for k in active}
        return {k.index: int(t * counts[k.index]) for k in active}

    def _score(self, position: int, b: Bin, value: float) -> tuple[float, float, int]:
        cost = node_cost(self.candidates[position], b.rerun)
        return (cost / value if value > 0 else float("inf"), cost, position)

    def _best_fill(
        self, active: Sequence[PodKind], by_index: dict[int, PodKind], counts: list[int]
    ) -> tuple[tuple[float, float, int], Bin] | None:
        """Greedy fills of every candidate, then the best few refined (:meth:`_refine`)."""
        scored: list[tuple[tuple[float, float, int], Bin]] = []
        for position in range(len(self.candidates)):
            b, value = self._greedy(position, active, counts)
            if value > 0:
                scored.append((self._score(position, b, value), b))
            if self.gpu:
                continue  # cards, not the CPU/memory mix, decide how GPU nodes fill
            share = self._proportional(position, active, counts)
            b, value = self._fill(position, active, counts, base=share)
            if value > 0:
                scored.append((self._score(position, b, value), b))
        if not scored:
            return None
        scored.sort(key=lambda item: item[0])
        best = scored[0]
        for key, b in scored[: GPU_SHORTLIST if self.gpu else SHORTLIST]:
            refined = self._refine(key[2], b, active, counts)
            if refined[0] < best[0]:
                best = refined
        return best

    def _refine(
        self, position: int, start: Bin, active: Sequence[PodKind], counts: list[int]
    ) -> tuple[tuple[float, float, int], Bin]:
        """Try the density order, and fewer of the first kinds so that others fill the gaps."""
        share, worth = self.shares[position], self.round_worth
        density = sorted(
            (k for k in active if k.index in share),
            key=lambda k: (-worth[k.index] / max(share[k.index], 1e-12), k.index),
        )
        best_b, best_v = start, self._value(start)
        best_order: Sequence[PodKind] = active
        b, v = self._fill(position, density, counts)
        if v > best_v + 1e-12:
            best_b, best_v, best_order = b, v, density
        for kind_index, n in list(best_b.content)[:PERTURB_KINDS]:
            for r in range(1, min(PERTURB_STEPS, n) + 1):
                b, v = self._fill(position, best_order, counts, {kind_index: n - r})
                if v > best_v + 1e-12:
                    best_b, best_v = b, v
        return self._score(position, best_b, best_v), best_b

    def _value(self, b: Bin) -> float:
        return sum(n * self.round_worth[i] for i, n in b.content)


def fill_leftovers(kind: PodKind, counts: list[int], bins: list[Bin]) -> None:
    """Put pods of ``kind`` into the free room of planned nodes that accept it.

    A bin of several copies takes the same number on each copy; when the pods
    run out part-way it is split, so every copy stays identical.
    """
    i = 0
    while i < len(bins) and counts[kind.index] > 0:
        b = bins[i]
        i += 1
        if not b.accepts(kind):
            continue
        left = counts[kind.index]
        per_copy = _trial(b, kind, left)
        if per_copy <= 0:
            continue
        full = min(left // per_copy, b.copies)  # >= 1 since per_copy <= left
        if full < b.copies:
            # The first ``full`` copies take ``per_copy`` each; the rest, visited next,
            # take what remains.
            bins.insert(i, b.clone(b.copies - full))
            b.copies = full
        _apply(b, kind, per_copy)
        counts[kind.index] -= per_copy * full


def _trial(b: Bin, kind: PodKind, n: int) -> int:
    room = b.room_for(kind, n)
    if room <= 0 or b.state is None:
        return room
    return place_gpu(b.state.copy(), kind, room)


def _apply(b: Bin, kind: PodKind, n: int) -> None:
    if b.state is not None:
        placed = place_gpu(b.state, kind, n)
        if placed != n:  # pragma: no cover - _trial said it fits
            raise AssertionError("leftover placement changed between trial and apply")
    b.record(kind, n)


def downsize(b: Bin, kinds: Sequence[PodKind], group: Sequence[Offering]) -> Bin:
    """``b`` moved to the cheapest offering of ``group`` (same capacity and zone) that holds it."""
    used = [(kinds[i], n) for i, n in b.content]
    best = b
    best_cost = node_cost(b.offering, b.rerun)
    for o in group:
        if o.price_per_hour >= best_cost:
            break
        if o is b.offering or node_cost(o, b.rerun) >= best_cost:
            continue
        trial = _refill(o, used, b.exact)
        if trial is not None:
            trial.copies = b.copies
            trial.reason = f"{b.reason}; downsized from {b.offering.instance_type}"
            best, best_cost = trial, node_cost(o, trial.rerun)
    return best


def _refill(o: Offering, used: Sequence[tuple[PodKind, int]], exact: bool) -> Bin | None:
    b = Bin(o, 1, new_state(o, exact))
    for kind, n in used:
        if not b.accepts(kind) or b.room_for(kind, n) < n:
            return None
        if b.state is not None and place_gpu(b.state, kind, n) < n:
            return None
        b.record(kind, n)
    return b


__all__ = [
    "Bin",
    "ClassPacker",
    "downsize",
    "fill_leftovers",
    "new_state",
    "node_cost",
    "place_gpu",
    "standalone_count",
]
