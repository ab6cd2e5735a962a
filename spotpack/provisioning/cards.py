"""Per-card vGPU arithmetic for *new* nodes: how many pods of a kind the cards take.

The rules are :mod:`spotpack.gpu.fit`'s, specialised to what a new node is
(identical, healthy, initially empty cards of one model) and to the common
demand, one app container of ``count`` vGPUs. A card takes a vGPU when:

- it has a free slot (``used_slots < split``) and its compute is not
  exhausted (``used_cores < 100``);
- it has the memory free: ``mem_mib``, or ``percent`` of the card rounded
  down, or the whole card;
- an exclusive vGPU (``cores >= 100``) needs an unused card and then takes
  all of its cores; otherwise ``used_cores + cores <= 100``.

Cards are chosen as the extender's binpack policy does: the ones with the
least free memory first, ties to the lowest index, ``count`` distinct cards
per pod. For ``count == 1`` identical pods fill the least-free fitting card
until it is full, then the next, so a card's share is computed by division
instead of pod by pod. The planner's tests replay every planned GPU node
through :func:`spotpack.gpu.fit.fit_prepared` in the planned order to prove
the two agree. Demands outside this shape (several GPU containers, GPU init
containers) are placed with :mod:`spotpack.gpu.fit` itself (:class:`UsageCards`).
"""

from __future__ import annotations

from spotpack.gpu.assignment import Assignment
from spotpack.gpu.demand import PreparedDemand, Step
from spotpack.gpu.fit import fit_prepared
from spotpack.gpu.inventory import FULL_CORES, NodeGPUs
from spotpack.gpu.usage import NodeUsage

BIG = 1 << 30


class Cards:
    """Usage of a new node's identical cards, for single-container demands (see module doc)."""

    __slots__ = ("card_mem", "free_mem", "slots", "used_cores", "used_slots")

    def __init__(self, cards: int, card_mem: int, slots: int) -> None:
        self.card_mem = card_mem
        self.slots = slots
        self.free_mem = [card_mem] * cards
        self.used_slots = [0] * cards
        self.used_cores = [0] * cards

    def copy(self) -> Cards:
        other = Cards.__new__(Cards)
        other.card_mem = self.card_mem
        other.slots = self.slots
        other.free_mem = list(self.free_mem)
        other.used_slots = list(self.used_slots)
        other.used_cores = list(self.used_cores)
        return other

    def open_room(self) -> int:
        """The most free MiB on a card that can still take a vGPU; -1 when none can."""
        best = -1
        for i, free in enumerate(self.free_mem):
            if free > best and self.used_slots[i] < self.slots and self.used_cores[i] < FULL_CORES:
                best = free
        return best

    def need(self, step: Step) -> int:
        return step.mem_mib if step.mem_mib >= 0 else self.card_mem * step.percent // 100

    def room(self, i: int, step: Step, need: int) -> int:
        """How many more vGPUs of ``step`` card ``i`` takes."""
        used = self.used_slots[i]
        taken = self.used_cores[i]
        if used >= self.slots or taken >= FULL_CORES or self.free_mem[i] < need:
            return 0
        cores = step.cores
        if cores >= FULL_CORES:
            return 1 if used == 0 else 0
        n = self.slots - used
        if need > 0:
            n = min(n, self.free_mem[i] // need)
        if cores > 0:
            n = min(n, (FULL_CORES - taken) // cores)
        return n

    def _take(self, i: int, step: Step, need: int, n: int) -> None:
        self.used_slots[i] += n
        self.free_mem[i] -= need * n
        self.used_cores[i] += FULL_CORES if step.cores >= FULL_CORES else step.cores * n

    def place(self, step: Step, n: int) -> int:
        """Place up to ``n`` pods of ``step``; returns how many went on."""
        if n <= 0:
            return 0
        need = self.need(step)
        if step.count == 1:
            return self._place_single(step, need, n)
        placed = 0
        cards = range(len(self.free_mem))
        while placed < n:
            fitting = sorted((self.free_mem[i], i) for i in cards if self.room(i, step, need))
            if len(fitting) < step.count:
                break
            for _, i in fitting[: step.count]:
                self._take(i, step, need, 1)
            placed += 1
        return placed

    def _place_single(self, step: Step, need: int, n: int) -> int:
        if len(self.free_mem) == 1:
            take = min(self.room(0, step, need), n)
            if take > 0:
                self._take(0, step, need, take)
            return max(take, 0)
        placed = 0
        order = sorted(range(len(self.free_mem)), key=lambda i: (self.free_mem[i], i))
        for i in order:
            room = self.room(i, step, need)
            if room <= 0:
                continue
            take = min(room, n - placed)
            self._take(i, step, need, take)
            placed += take
            if placed >= n:
                break
        return placed

    def capacity_bound(self, step: Step) -> int:
        """An upper bound on the pods of ``step`` the empty cards take (for the MILP)."""
        need = self.need(step)
        if need > self.card_mem or step.count > len(self.free_mem):
            return 0
        per_card = self.slots
        if need > 0:
            per_card = min(per_card, self.card_mem // need)
        if step.cores >= FULL_CORES:
            per_card = min(per_card, 1)
        elif step.cores > 0:
            per_card = min(per_card, FULL_CORES // step.cores)
        return per_card * len(self.free_mem) // step.count


class UsageCards:
    """A new node's cards tracked by :class:`NodeUsage`, placing with :func:`fit_prepared`.

    Slower than :class:`Cards` but exact for any demand; used for the rare
    multi-container and init-container GPU pods.
    """

    __slots__ = ("gpus", "usage")

    def __init__(self, gpus: NodeGPUs, usage: NodeUsage | None = None) -> None:
        self.gpus = gpus
        self.usage = usage if usage is not None else NodeUsage(gpus)

    def copy(self) -> UsageCards:
        return UsageCards(self.gpus, self.usage.copy())

    def place(self, prepared: PreparedDemand, n: int, node: str = "new") -> int:
        placed = 0
        kinds = tuple(s.kind for s in prepared.steps)
        while placed < n:
            result = fit_prepared(prepared, self.gpus, self.usage)
            if not result.ok or result.assignment_devices is None:
                break
            self.usage.add(Assignment(node, result.assignment_devices, kinds=kinds))
            placed += 1
        return placed


__all__ = ["BIG", "Cards", "UsageCards"]
