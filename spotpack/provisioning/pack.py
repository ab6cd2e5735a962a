"""Planned nodes as the packer builds them, and what happens to them after the search.

A :class:`Bin` is ``copies`` identical new nodes of one offering with the
pods (by kind) each copy holds; the pattern search (:mod:`.search`) makes
them. Afterwards:

- pods of a later family first go into the free room of bins already made
  when their constraints allow (:func:`fill_leftovers`): a spot-preferred
  executor rides free on the on-demand node its driver leaves half empty;
- every bin is *downsized* (:func:`downsize`): the cheapest offering of the
  same capacity type and zone that still holds its pods, in the same order
  and with the same per-card fit, replaces it. That fixes the last, partly
  filled node of a family, and is where "one large versus several small"
  is settled for the few pods left at the end.

GPU bins track their cards with :class:`~.cards.Cards` (or
:class:`~.cards.UsageCards` for multi-container GPU pods).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "downsize",
    "fill_leftovers",
    "new_state",
    "node_cost",
    "place_gpu",
    "standalone_count",
]
