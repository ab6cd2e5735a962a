"""Live refresh: fold live EC2 specs, spot prices and Spot Advisor figures into a catalog.

Pure: :func:`refresh` takes the catalog and what was read, and returns a new
catalog plus a report; the reading happens behind :class:`CatalogSource`
(``spotpack.cloud.aws_catalog.AwsCatalogSource`` for EC2), and writing the
result is :func:`spotpack.catalog.load.write_catalog`. Figures that were not
refreshed keep their value and their source tag, so a partial refresh never
makes an estimate look live.

Rules, per catalog type (types unknown to the catalog are not added: they would
have no on-demand price):

- specs: vCPU, memory, arch, GPUs and usage classes from DescribeInstanceTypes;
- zone figure: the latest DescribeSpotPriceHistory price per zone, ``live``;
  its bucket is the region's (the Advisor publishes risk per region only), and
  ``bucket_source`` says where that bucket came from;
- region figure: price = median of the live zone prices; without any, from the
  Advisor, ``on_demand * (1 - s/100)``; else unchanged. Bucket = the Advisor's
  ``r`` (``live``), else unchanged; a type that had no figure at all gets the
  worst bucket, tagged ``estimate``, rather than an optimistic guess.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Protocol

from spotpack.catalog.advisor import AdvisorFigure
from spotpack.catalog.model import (
    MAX_BUCKET,
    Arch,
    Catalog,
    GPUSpec,
    InstanceType,
    Source,
    SpotOffer,
)


@dataclass(frozen=True, slots=True)
class LiveSpec:
    """An instance type as DescribeInstanceTypes reports it."""

    name: str
    vcpu: int
    memory_mib: int
    arch: Arch
    gpu: GPUSpec | None
    usage_classes: frozenset[str]


@dataclass(frozen=True, slots=True)
class LivePrice:
    """One DescribeSpotPriceHistory record (Linux/UNIX)."""

    instance_type: str
    zone: str
    price: float
    timestamp: datetime


class CatalogSource(Protocol):
    """Where live figures come from: EC2 in production, a fake in tests."""

    region: str

    def instance_specs(self, instance_types: Sequence[str]) -> Sequence[LiveSpec]: ...

    def spot_prices(self, instance_types: Sequence[str]) -> Sequence[LivePrice]: ...


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh changed, for the command's summary and the provenance line."""

    region: str
    specs: int = 0
    zone_prices: int = 0
    region_prices: int = 0
    buckets: int = 0


def refresh_from(
    catalog: Catalog,
    source: CatalogSource,
    *,
    advisor: Mapping[str, AdvisorFigure] | None = None,
    advisor_where: str | None = None,
    now: datetime,
) -> tuple[Catalog, RefreshReport]:
    """Read ``source`` (specs of the catalog's types, then their spot prices) and refresh.

    Spot prices are asked for the types that were spot-capable before the
    spec refresh; a type that lost spot support simply drops its figures.
    """
    specs = source.instance_specs(catalog.names)
    spot_names = [t.name for t in catalog.all() if t.spot_capable]
    prices = source.spot_prices(spot_names) if spot_names else ()
    return refresh(
        catalog,
        region=source.region,
        specs=specs,
        prices=prices,
        advisor=advisor or {},
        advisor_where=advisor_where,
        now=now,
    )


def refresh(
    catalog: Catalog,
    *,
    region: str,
    specs: Iterable[LiveSpec] = (),
    prices: Iterable[LivePrice] = (),
    advisor: Mapping[str, AdvisorFigure] | None = None,
    advisor_where: str | None = None,
    now: datetime,
) -> tuple[Catalog, RefreshReport]:
    """A new catalog with the live figures of ``region`` folded in (rules: module docstring)."""
    advisor = advisor or {}
    spec_by_name = {s.name: s for s in specs}
    latest = _latest_by_type(prices, catalog, region)
    counts = {"specs": 0, "zone_prices": 0, "region_prices": 0, "buckets": 0}
    types = []
    for current in catalog.all():
        itype = current
        spec = spec_by_name.get(itype.name)
        if spec is not None:
            itype = _with_spec(itype, spec)
            counts["specs"] += 1
        if itype.spot_capable:
            itype = _with_spot(
                itype, region, latest.get(itype.name, {}), advisor.get(itype.name), counts
            )
        types.append(itype)
    zones = sorted({zone for by_zone in latest.values() for zone in by_zone})
    report = RefreshReport(region, **counts)
    provenance = [*catalog.provenance, _provenance_line(report, now, advisor_where)]
    return (
        Catalog(
            types,
            region=catalog.region,
            regions=_with_zones(catalog.regions, region, zones),
            cloud=catalog.cloud,
            currency=catalog.currency,
            provenance=provenance,
            notes=catalog.notes,
        ),
        report,
    )


def _latest_by_type(
    prices: Iterable[LivePrice], catalog: Catalog, region: str
) -> dict[str, dict[str, LivePrice]]:
    """The newest positive price per (type, zone) in ``region``, for types in the catalog."""
    latest: dict[str, dict[str, LivePrice]] = {}
    for p in prices:
        if p.instance_type not in catalog or not p.price > 0 or catalog.region_of(p.zone) != region:
            continue
        by_zone = latest.setdefault(p.instance_type, {})
        seen = by_zone.get(p.zone)
        if seen is None or p.timestamp > seen.timestamp:
            by_zone[p.zone] = p
    return latest


def _with_spec(itype: InstanceType, spec: LiveSpec) -> InstanceType:
    return replace(
        itype,
        vcpu=spec.vcpu,
        memory_mib=spec.memory_mib,
        arch=spec.arch,
        gpu=spec.gpu,
        usage_classes=spec.usage_classes,
    )


def _with_spot(
    itype: InstanceType,
    region: str,
    zone_prices: Mapping[str, LivePrice],
    figure: AdvisorFigure | None,
    counts: dict[str, int],
) -> InstanceType:
    old = itype.spot.get(region)
    bucket, bucket_source = _region_bucket(old, figure)
    if figure is not None:
        counts["buckets"] += 1
    price = _region_price(old, zone_prices, figure, itype.on_demand.get(region))
    spot = dict(itype.spot)
    if price is not None:
        value, source, as_of = price
        spot[region] = SpotOffer(value, bucket, source, _differs(bucket_source, source), as_of)
        if source == "live":
            counts["region_prices"] += 1
    for zone, p in sorted(zone_prices.items()):
        spot[zone] = SpotOffer(
            p.price, bucket, "live", _differs(bucket_source, "live"), _iso(p.timestamp)
        )
        counts["zone_prices"] += 1
    return replace(itype, spot=MappingProxyType(spot))


def _region_bucket(old: SpotOffer | None, figure: AdvisorFigure | None) -> tuple[int, Source]:
    if figure is not None:
        return figure.bucket, "live"
    if old is not None:
        return old.bucket, old.risk_source
    return MAX_BUCKET, "estimate"


def _region_price(
    old: SpotOffer | None,
    zone_prices: Mapping[str, LivePrice],
    figure: AdvisorFigure | None,
    on_demand: float | None,
) -> tuple[float, Source, str | None] | None:
    if zone_prices:
        median = statistics.median(p.price for p in zone_prices.values())
        newest = max(p.timestamp for p in zone_prices.values())
        return round(median, 6), "live", _iso(newest)
    if figure is not None and on_demand is not None and figure.savings_percent < 100:
        return round(on_demand * (1 - figure.savings_percent / 100), 6), "live", None
    if old is not None:
        return old.price, old.source, old.as_of
    return None


def _differs(bucket_source: Source, source: Source) -> Source | None:
    return bucket_source if bucket_source != source else None


def _with_zones(
    regions: Mapping[str, tuple[str, ...]], region: str, zones: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    out = dict(regions)
    known = list(out.get(region, ()))
    out[region] = tuple(known + [z for z in zones if z not in known])
    return out


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _provenance_line(report: RefreshReport, now: datetime, advisor_where: str | None) -> str:
    parts = [
        f"Live refresh {_iso(now)} in {report.region}:",
        f"{report.specs} types' specs from EC2 DescribeInstanceTypes;",
        f"{report.zone_prices} zone spot prices from DescribeSpotPriceHistory "
        "(Linux/UNIX, latest per type and zone);",
    ]
    if advisor_where:
        parts.append(
            f"{report.buckets} interruption buckets from the Spot Advisor feed {advisor_where}."
        )
    else:
        parts.append("no Spot Advisor feed (buckets unchanged).")
    return " ".join(parts)
