"""The offerings as the packer searches them: grouped, deduplicated, dominated ones dropped.

A family of pods (one capacity type, GPU or not) sees only the offerings it
may use. Among offerings that exactly the same pods may use (same zone and
arch acceptance), two kinds can never be the better choice and are dropped
from the search (they stay available as CreateFleet fallbacks):

- *duplicates*: the same allocatable, GPUs, price and risk as an earlier one
  (m5 and m6i at the same price; the same type in another zone when prices
  are per region and no pod tells the zones apart): the first in (zone,
  name) order represents them;
- *dominated*: another offering has at least the allocatable in every
  dimension, the same card model and size with at least as many cards, and
  no higher price nor interruption rate. Any node of the dominated offering
  can be swapped for the dominating one without breaking a fit or raising
  the risk-adjusted cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spotpack.provisioning.model import CapacityType, Offering


def _signature(o: Offering) -> tuple[object, ...]:
    return (
        o.capacity,
        o.arch,
        o.allocatable,
        o.gpu,
        o.vgpu_slots_per_card,
        o.price_per_hour,
        o.interruption_rate,
    )


def _dominates(a: Offering, b: Offering) -> bool:
    """Whether ``a`` is at least as good as ``b`` for any pod that accepts both."""
    if a.capacity != b.capacity:
        return False
    if a.price_per_hour > b.price_per_hour or a.interruption_rate > b.interruption_rate:
        return False
    if not b.allocatable.fits(a.allocatable):
        return False
    if a.gpu is None or b.gpu is None:
        return a.gpu is None and b.gpu is None
    return (
        a.gpu.model == b.gpu.model
        and a.gpu.mem_mib == b.gpu.mem_mib
        and a.vgpu_slots_per_card == b.vgpu_slots_per_card
        and a.gpu.count >= b.gpu.count
    )


def prune(offerings: Iterable[Offering]) -> list[Offering]:
    """``offerings`` without duplicates and dominated ones (see the module docstring), by price."""
    ordered = sorted(offerings, key=lambda o: (o.zone, o.instance_type, o.capacity))
    seen: set[tuple[object, ...]] = set()
    unique: list[Offering] = []
    for o in ordered:
        sig = _signature(o)
        if sig not in seen:
            seen.add(sig)
            unique.append(o)
    unique.sort(key=lambda o: o.sort_key)
    kept: list[Offering] = []
    for i, o in enumerate(unique):
        dominated = any(
            _dominates(other, o) and (other.sort_key < o.sort_key or not _dominates(o, other))
            for j, other in enumerate(unique)
            if j != i and other.price_per_hour <= o.price_per_hour
        )
        if not dominated:
            kept.append(o)
    return kept


class OfferingIndex:
    """Offerings by (capacity type, zone, GPU or not), cheapest first, with positions."""

    def __init__(self, offerings: Iterable[Offering]) -> None:
        self.all: tuple[Offering, ...] = tuple(sorted(offerings, key=lambda o: o.sort_key))
        self.position: dict[int, int] = {id(o): i for i, o in enumerate(self.all)}
        groups: dict[tuple[str, str, bool], list[Offering]] = {}
        for o in self.all:
            groups.setdefault((o.capacity, o.zone, o.gpu is not None), []).append(o)
        self.groups = groups
        self.zones: tuple[str, ...] = tuple(sorted({o.zone for o in self.all}))

    def group(self, capacity: CapacityType, zone: str, gpu: bool) -> Sequence[Offering]:
        return self.groups.get((capacity, zone, gpu), ())

    def pos(self, offering: Offering) -> int:
        return self.position[id(offering)]


__all__ = ["OfferingIndex", "prune"]
