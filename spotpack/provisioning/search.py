"""The pattern search: which offering, filled with which pods, to buy next.

For one family of pods (:class:`~.plan.Family`: a capacity type, GPU or
not) and its candidate offerings (:mod:`.catalogview`), each round fills an
empty node of candidates with the pods still pending and scores the fill::

    score = risk_adjusted_cost(node) / sum(worth of the pods it holds)
    worth(kind) = min over candidates o of  cost_o(k_o pods) / k_o

where ``k_o`` is how many pods of that kind alone fill ``o``: what a pod
costs packed with its own kind on its best type. A score below 1 means the
mix packs better than each kind alone. Only kinds allowed on a candidate
(zone, arch, card model) take part in its fill, so zone-pinned and free pods
share a node where their constraints meet.

Fills tried per candidate:

- *greedy*: most valuable kinds first, each as many as fit;
- *proportional* (nodes without GPUs): every kind first gets its share of
  the node if the node took the remaining mix in proportion
  (``t = min over cpu, memory, pods of room / demand``), then the greedy
  pass tops it up. A balanced fill keeps complementary pods together; a
  greedy one tends to fill nodes with one resource-heavy kind and strand the
  rest;
- *refined* (the best few candidates each round): the kinds in order of
  worth per share of the node, and one to three fewer of each of the first
  kinds so that others fill the gaps.

The best fill becomes a *pattern* and is repeated as many times as the
remaining counts allow, so the rounds grow with the number of kinds, not of
pods. Comparing candidates by score is the "one large versus several small"
choice: a large type wins when it packs more worth per dollar.

To keep 10,000 pods under a second the candidates wait in a heap under
their last score (fills only get worse as pods run out, so a stale score
nearly bounds the fresh one); a round re-evaluates from the top until a
fresh score still beats the next stale one, and every ``FULL_EVERY`` rounds
everything is re-evaluated (a proportional fill can improve as the mix
changes). Ties go to the cheaper node, then the candidate's position: the
search is deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from spotpack.gpu.inventory import FULL_CORES
from spotpack.provisioning.cards import Cards
from spotpack.provisioning.kinds import PodKind
from spotpack.provisioning.model import Offering
from spotpack.provisioning.pack import Bin, new_state, node_cost, place_gpu, standalone_count
from spotpack.provisioning.risk import hourly_probability

SHORTLIST = 4
"""Candidates evaluated fresh and refined per round, the lazily found best among them."""
FULL_EVERY = 2
"""Every this many rounds all candidates are re-evaluated (lazily in between)."""
PERTURB_KINDS = 3
PERTURB_STEPS = 3

Score = tuple[float, float, int]
"""(cost / worth, cost, candidate position): lower is better, and a total order."""
Row = tuple[int, int, int, int, int, float, float]
"""(kind index, cpu, memory, pods, kmax, worth, rerun) of one kind on one candidate."""


def footprint(kind: PodKind, offering: Offering) -> float:
    """The largest share of an empty node of ``offering`` one pod of ``kind`` takes."""
    r, a = kind.resources, offering.allocatable
    share = max(r.cpu_m / max(a.cpu_m, 1), r.mem_mib / max(a.mem_mib, 1), r.pods / max(a.pods, 1))
    gpu, step = offering.gpu, kind.step
    if gpu is not None and step is not None and gpu.count > 0:
        need = step.mem_mib if step.mem_mib >= 0 else gpu.mem_mib * step.percent // 100
        slots = gpu.count * max(offering.vgpu_slots_per_card, 1)
        share = max(
            share,
            step.count * need / (gpu.count * gpu.mem_mib),
            step.count / slots,
            step.count * min(step.cores, FULL_CORES) / (gpu.count * FULL_CORES),
        )
    return share


class PatternSearch:
    """The pattern search over one family's candidates (see the module docstring).

    Built once per family for every kind that may use it (so that ``worth``
    can decide spot versus on-demand for flexible kinds); :meth:`pack` then
    packs the kinds that chose this family.
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
            row: dict[int, int] = {}
            share: dict[int, float] = {}
            ph = hourly_probability(o.interruption_rate)
            for kind in kinds:
                k = standalone_count(kind, o, exact) if kind.allows_offering(o) else 0
                if k > 0:
                    row[kind.index] = k
                    share[kind.index] = footprint(kind, o)
                    per_pod = (o.price_per_hour + ph * k * kind.rerun) / k
                    worth[kind.index] = min(per_pod, worth.get(kind.index, per_pod))
            if row:
                self.candidates.append(o)
                self.kmax.append(row)
                self.shares.append(share)
        self.worth = worth
        """Per kind, the standalone cost per pod ($/h, risk-adjusted)."""
        self.gpu = any(o.gpu is not None for o in self.candidates)
        by_index = {k.index: k for k in kinds}
        self.rows: list[list[Row]] = [
            [
                (i, r.cpu_m, r.mem_mib, r.pods, k, worth[i], by_index[i].rerun)
                for i, k in sorted(row.items(), key=lambda item: (-worth[item[0]], item[0]))
                for r in (by_index[i].resources,)
            ]
            for row in self.kmax
        ]
        """Per candidate, its kinds as plain numbers in worth order, for :meth:`_fill_cpu`."""
        self.memo: dict[tuple[int, tuple[tuple[int, int], ...]], tuple[Bin, float]] = {}
        self.floor = (0, 0, 0)
        self.heap: list[tuple[Score, tuple[int, int]]] | None = None
        self.rounds = 0

    def pack(self, kinds: Sequence[PodKind], counts: list[int], label: str) -> list[Bin]:
        """Pack ``counts`` of ``kinds`` (decremented in place); kinds that fit nowhere stay."""
        placeable = [k for k in kinds if k.index in self.worth]
        chosen = {k.index for k in placeable}
        self.rows = [[r for r in row if r[0] in chosen] for row in self.rows]
        worth = self.worth
        bins: list[Bin] = []
        while True:
            live = [k for k in placeable if counts[k.index] > 0]
            if not live:
                return bins
            self._set_floor(live)
            active = sorted(live, key=lambda k: (-worth[k.index], k.index))
            found = self._best_fill(active, counts)
            if found is None:
                return bins
            (score, _, _), found_bin = found
            b = found_bin.clone(1)  # the memo keeps the original
            per_copy: dict[int, int] = {}
            for i, n in b.content:
                per_copy[i] = per_copy.get(i, 0) + n
            b.copies = max(min(counts[i] // n for i, n in per_copy.items()), 1)
            for i, n in per_copy.items():
                counts[i] -= n * b.copies
            b.reason = (
                f"{sum(per_copy.values())} pods of {label} at {score:.3f}x their cost packed "
                f"alone; best of {len(self.candidates)} candidate types"
            )
            bins.append(b)

    # -- fills ---------------------------------------------------------------------------

    def _fill(
        self,
        position: int,
        order: Sequence[PodKind],
        counts: list[int],
        caps: dict[int, int] | None = None,
    ) -> tuple[Bin, float]:
        """Greedy fill of an empty node of candidate ``position`` in ``order``; (bin, worth).

        Each kind is capped by ``caps``; stops as soon as not even the
        smallest pod left would fit (:meth:`_set_floor`).
        """
        o = self.candidates[position]
        kmax = self.kmax[position]
        worth = self.worth
        b = Bin(o, 1, new_state(o, self.exact))
        cards = b.state if isinstance(b.state, Cards) else None
        min_cpu, min_mem, min_gpu = self.floor
        room_mib = cards.open_room() if cards is not None else 0
        value = 0.0
        for kind in order:
            i, step = kind.index, kind.step
            if cards is not None and step is not None and step.mem_mib > room_mib:
                continue
            cap = min(kmax.get(i, 0), counts[i])
            if caps is not None and i in caps:
                cap = min(cap, caps[i])
            n = b.room_for(kind, cap) if cap > 0 else 0
            if n > 0 and b.state is not None:
                n = place_gpu(b.state, kind, n)
            if n <= 0:
                continue
            b.record(kind, n)
            value += n * worth[i]
            if cards is not None:
                room_mib = cards.open_room()
            if b.pods <= 0 or b.cpu < min_cpu or b.mem < min_mem or room_mib < min_gpu:
                break
        return b, value

    def _fill_cpu(self, position: int, counts: list[int], proportional: bool) -> tuple[Bin, float]:
        """The greedy or proportional fill of a node without GPUs, on plain integers.

        This is the hot loop at 10,000 pods: no objects, one tuple per kind.
        """
        o = self.candidates[position]
        a = o.allocatable
        rows = self.rows[position]
        cpu, mem, pods = a.cpu_m, a.mem_mib, a.pods
        min_cpu, min_mem, _ = self.floor
        share = 1.0
        if proportional:
            dc = dm = dp = 0
            for i, c, m, p, _k, _w, _r in rows:
                n = counts[i]
                dc += n * c
                dm += n * m
                dp += n * p
            share = min(cpu / dc if dc else 1.0, mem / dm if dm else 1.0, pods / dp if dp else 1.0)
        taken: dict[int, int] = {}
        content: list[tuple[int, int]] = []
        value = rerun = 0.0
        for first in (True, False) if share < 1.0 else (False,):
            for i, c, m, p, k, w, r in rows:
                n = counts[i]
                if not n:
                    continue
                n = min(int(share * n) if first else n, k) - taken.get(i, 0)
                if c and cpu // c < n:
                    n = cpu // c
                if m and mem // m < n:
                    n = mem // m
                if p and pods // p < n:
                    n = pods // p
                if n <= 0:
                    continue
                cpu -= n * c
                mem -= n * m
                pods -= n * p
                taken[i] = taken.get(i, 0) + n
                content.append((i, n))
                value += n * w
                rerun += n * r
                if pods <= 0 or cpu < min_cpu or mem < min_mem:
                    break
        b = Bin(o, 1, None)
        b.cpu, b.mem, b.pods = cpu, mem, pods
        b.content = content
        b.rerun = rerun
        return b, value

    def _greedy(
        self, position: int, active: Sequence[PodKind], counts: list[int]
    ) -> tuple[Bin, float]:
        """:meth:`_fill` in worth order, memoized: it depends on the counts only up to kmax."""
        kmax = self.kmax[position]
        clipped = tuple(
            (k.index, min(counts[k.index], kmax[k.index])) for k in active if k.index in kmax
        )
        key = (position, clipped)
        hit = self.memo.get(key)
        if hit is None:
            hit = self._fill(position, active, counts)
            self.memo[key] = hit
        return hit

    def _set_floor(self, live: Sequence[PodKind]) -> None:
        """The smallest CPU, memory and vGPU MiB any pod left asks for (for early stops)."""
        gpu = [k.step.mem_mib for k in live if k.step is not None]
        self.floor = (
            min(k.resources.cpu_m for k in live),
            min(k.resources.mem_mib for k in live),
            max(min(gpu), 0) if gpu and len(gpu) == len(live) else 0,
        )

    # -- search --------------------------------------------------------------------------

    def _score(self, position: int, b: Bin, value: float) -> Score:
        cost = node_cost(self.candidates[position], b.rerun)
        return (cost / value if value > 0 else float("inf"), cost, position)

    def _evaluate(
        self, entry: tuple[int, int], active: Sequence[PodKind], counts: list[int]
    ) -> tuple[Score, Bin] | None:
        """The fill of (candidate position, variant 0 greedy / 1 proportional); None if empty."""
        position, variant = entry
        if self.gpu:
            b, value = self._greedy(position, active, counts)
        else:
            b, value = self._fill_cpu(position, counts, proportional=variant == 1)
        return (self._score(position, b, value), b) if value > 0 else None

    def _best_fill(self, active: Sequence[PodKind], counts: list[int]) -> tuple[Score, Bin] | None:
        """The best fill this round: lazily found, then the best few refined."""
        heap = self.heap
        if heap is None:
            variants = (0,) if self.gpu else (0, 1)  # cards, not the mix, fill GPU nodes
            heap = [
                ((0.0, 0.0, position), (position, variant))
                for position in range(len(self.candidates))
                for variant in variants
            ]
            self.heap = heap
        self.rounds += 1
        if self.rounds % FULL_EVERY == 0:
            heap[:] = [((0.0, 0.0, entry[0]), entry) for _, entry in heap]
            heapq.heapify(heap)
        fresh: list[tuple[Score, Bin, tuple[int, int]]] = []
        while heap and len(fresh) < SHORTLIST:
            _, entry = heapq.heappop(heap)
            found = self._evaluate(entry, active, counts)
            if found is None:
                continue  # nothing left fits this candidate, and never will: counts only fall
            if fresh or not heap or found[0] <= heap[0][0]:
                fresh.append((found[0], found[1], entry))
            else:
                heapq.heappush(heap, (found[0], entry))
        if not fresh:
            return None
        best = (fresh[0][0], fresh[0][1])
        for key, b, entry in fresh:
            heapq.heappush(heap, (key, entry))
            best = min(best, (key, b), self._refine(key[2], b, active, counts), key=lambda x: x[0])
        return best

    def _refine(
        self, position: int, start: Bin, active: Sequence[PodKind], counts: list[int]
    ) -> tuple[Score, Bin]:
        """Try the density order, and fewer of the first kinds so that others fill the gaps."""
        share, worth = self.shares[position], self.worth
        density = sorted(
            (k for k in active if k.index in share),
            key=lambda k: (-worth[k.index] / max(share[k.index], 1e-12), k.index),
        )
        best_b = start
        best_v = sum(n * worth[i] for i, n in start.content)
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


__all__ = ["FULL_EVERY", "SHORTLIST", "PatternSearch", "footprint"]
