"""The instance catalog as values: instance types, their GPUs, prices and spot risk.

Everything here is pure and immutable; :mod:`spotpack.catalog.load` builds a
:class:`Catalog` from the packaged JSON (plus an optional override file) and the
extender and the provisioner only read it.

Every spot figure says where it came from (:data:`Source`), because most of
them are not measurements: no public static source ships spot prices or
interruption rates, so the packaged catalog carries documented estimates until
a live refresh (DescribeSpotPriceHistory, the Spot Advisor feed) replaces them.

Spot figures are kept per *location*: a region (``us-east-1``) or a zone
(``us-east-1a``). A zone without its own figure uses its region's figure, which
is what the packaged data relies on (one estimate per region, the same for
every zone). The interruption bucket is the Spot Advisor's (per region, monthly):

==========  =======  ===================================
bucket      label    representative rate (see below)
==========  =======  ===================================
0           <5%      0.025
1           5-10%    0.075
2           10-15%   0.125
3           15-20%   0.175
4           >20%     0.30
==========  =======  ===================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

Source = Literal["live", "snapshot", "estimate"]
"""Where a spot figure came from: a live API read, a dated snapshot, or our estimate."""

SOURCES: tuple[Source, ...] = get_args(Source)

Arch = Literal["amd64", "arm64"]
"""CPU architecture by its Kubernetes name (``kubernetes.io/arch``)."""

BUCKET_LABELS: tuple[str, ...] = ("<5%", "5-10%", "10-15%", "15-20%", ">20%")
"""Spot Advisor interruption-frequency ranges, indexed by bucket (its ``r``)."""

BUCKET_RATES: tuple[float, ...] = (0.025, 0.075, 0.125, 0.175, 0.30)
"""A representative monthly interruption rate per bucket, for risk-adjusted cost.

The midpoint of each closed range; the open-ended ``>20%`` counts as 30%, on
the cautious side, so that a scorer never treats the riskiest bucket as 20%.
"""

MAX_BUCKET = len(BUCKET_LABELS) - 1

_ZONE = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)[a-z]$")


def zone_region(zone: str) -> str | None:
    """The region of an availability-zone name (``us-east-1a`` -> ``us-east-1``), else None.

    Only plain AZ names are understood; Local Zones (``us-east-1-bos-1a``) must
    be listed in the catalog's ``regions`` to be found.
    """
    match = _ZONE.match(zone)
    return match.group("region") if match else None


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """The GPUs of an instance type: ``count`` cards of ``model``, ``mem_mib`` each."""

    count: int
    model: str
    mem_mib: int
    manufacturer: str = "NVIDIA"

    @property
    def total_mem_mib(self) -> int:
        return self.count * self.mem_mib


@dataclass(frozen=True, slots=True)
class SpotOffer:
    """One spot figure: price per instance-hour and interruption bucket, with sources.

    ``source`` says where the price came from. The bucket can come from
    elsewhere (a live zone price keeps its region's estimated bucket, because
    the Spot Advisor publishes risk per region only), so ``bucket_source``
    says that when it differs; :attr:`risk_source` is the effective value.
    ``as_of`` is the ISO-8601 time of a live or snapshot figure, when known.
    """

    price: float
    bucket: int
    source: Source
    bucket_source: Source | None = None
    as_of: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.bucket <= MAX_BUCKET:
            raise ValueError(f"bucket must be 0..{MAX_BUCKET}, got {self.bucket}")
        if not self.price > 0:
            raise ValueError(f"price must be positive, got {self.price}")

    @property
    def risk_source(self) -> Source:
        return self.bucket_source or self.source

    @property
    def bucket_label(self) -> str:
        return BUCKET_LABELS[self.bucket]

    @property
    def interruption_rate(self) -> float:
        """The bucket's representative monthly rate (:data:`BUCKET_RATES`)."""
        return BUCKET_RATES[self.bucket]


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One instance type: specs, on-demand price per region, spot figures per location."""

    name: str
    family: str
    vcpu: int
    memory_mib: int
    arch: Arch
    gpu: GPUSpec | None
    usage_classes: frozenset[str]
    on_demand: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    spot: Mapping[str, SpotOffer] = field(default_factory=lambda: MappingProxyType({}))
    note: str | None = None

    @property
    def spot_capable(self) -> bool:
        return "spot" in self.usage_classes


class Catalog:
    """Instance types of one cloud with O(1) lookups by name, region and zone.

    Lookups return None for what the catalog does not know (an unknown type, a
    region without a price): callers decide how to degrade, nothing here raises
    on a name that came from a node label.
    """

    def __init__(
        self,
        types: Iterable[InstanceType],
        *,
        region: str,
        regions: Mapping[str, Iterable[str]],
        cloud: str = "aws",
        currency: str = "USD",
        provenance: Iterable[str] = (),
        notes: Iterable[str] = (),
    ) -> None:
        self._types: Mapping[str, InstanceType] = MappingProxyType({t.name: t for t in types})
        self.region = region  # the default region of lookups
        self.regions: Mapping[str, tuple[str, ...]] = MappingProxyType(
            {r: tuple(zones) for r, zones in regions.items()}
        )
        self.cloud = cloud
        self.currency = currency
        self.provenance: tuple[str, ...] = tuple(provenance)
        self.notes: tuple[str, ...] = tuple(notes)
        self._zone_region = {z: r for r, zones in self.regions.items() for z in zones}

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __len__(self) -> int:
        return len(self._types)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._types)

    def all(self) -> tuple[InstanceType, ...]:
        return tuple(self._types.values())

    def instance(self, name: str) -> InstanceType | None:
        return self._types.get(name)

    def gpu_spec(self, name: str) -> GPUSpec | None:
        """The GPUs of ``name``, None for a type without GPUs or unknown to the catalog."""
        itype = self._types.get(name)
        return itype.gpu if itype else None

    def on_demand_price(self, name: str, region: str | None = None) -> float | None:
        itype = self._types.get(name)
        return itype.on_demand.get(region or self.region) if itype else None

    def region_of(self, location: str) -> str | None:
        """The region a region or zone name belongs to (listed zones first, then by name)."""
        if location in self.regions:
            return location
        return self._zone_region.get(location) or zone_region(location)

    def spot_offer(self, name: str, location: str | None = None) -> SpotOffer | None:
        """The spot figure of ``name`` in a zone (falling back to its region) or a region."""
        itype = self._types.get(name)
        if itype is None or not itype.spot_capable:
            return None
        location = location or self.region
        offer = itype.spot.get(location)
        if offer is not None:
            return offer
        region = self.region_of(location)
        return itype.spot.get(region) if region else None

    def interruption_bucket(self, name: str, location: str | None = None) -> int | None:
        offer = self.spot_offer(name, location)
        return offer.bucket if offer else None

    def types(
        self, region: str | None = None, arch: Arch | None = None, gpu: bool | None = None
    ) -> tuple[InstanceType, ...]:
        """Types offered in ``region`` (an on-demand price or a spot figure there), cheapest first.

        ``arch`` keeps one architecture; ``gpu`` True keeps GPU types, False the
        others, None both. Ties on price are broken by name, so the order is stable.
        """
        region = region or self.region
        found = [
            t
            for t in self._types.values()
            if (region in t.on_demand or self.spot_offer(t.name, region) is not None)
            and (arch is None or t.arch == arch)
            and (gpu is None or (t.gpu is not None) == gpu)
        ]
        return tuple(sorted(found, key=lambda t: (t.on_demand.get(region, float("inf")), t.name)))
