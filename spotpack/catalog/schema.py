"""The catalog file format (JSON or YAML), validated with pydantic, and its conversions.

One format serves three files: the packaged ``spotpack/data/catalog-aws.json``,
a refreshed catalog written by ``spotpack catalog refresh``, and an override
file (a ConfigMap-mounted JSON or YAML) that names only the types and figures
it changes. :class:`CatalogDoc` is the complete form, :class:`OverrideDoc` the
partial one; both forbid unknown keys, so ``vpcu: 8`` in an override is an
error rather than a silently ignored line. Numbers are strict: ``"8"`` is not 8.

Layout (key order is the order written)::

    schema_version: 1
    cloud, currency, region          # region: the default region of lookups
    provenance: [str]                # where the data came from, verbatim
    notes: [str]                     # how estimates were made, what is missing
    regions: {region: [zone]}
    instance_types:
      <name>:
        family, vcpu, memory_mib, arch (amd64|arm64)
        gpu: {count, manufacturer, model, mem_mib} | null
        usage_classes: [on-demand, spot, ...]
        on_demand: {region: price per hour}
        spot: {region-or-zone: {price, bucket, source, bucket_source?, as_of?}}
        note?: str
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from spotpack.catalog.model import (
    MAX_BUCKET,
    Arch,
    Catalog,
    GPUSpec,
    InstanceType,
    Source,
    SpotOffer,
)

SCHEMA_VERSION = 1

Name = Annotated[str, Field(min_length=1, max_length=128)]
Price = Annotated[float, Field(gt=0, le=1_000_000)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
MiB = Annotated[int, Field(ge=1, le=1 << 40)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class GPUDoc(_Strict):
    count: Annotated[int, Field(ge=1, le=64)]
    manufacturer: Name
    model: Name
    mem_mib: MiB


class SpotDoc(_Strict):
    price: Price
    bucket: Annotated[int, Field(ge=0, le=MAX_BUCKET)]
    source: Source
    bucket_source: Source | None = None
    as_of: Annotated[str, Field(max_length=64)] | None = None


class InstanceTypeDoc(_Strict):
    family: Name
    vcpu: Count
    memory_mib: MiB
    arch: Arch
    gpu: GPUDoc | None
    usage_classes: Annotated[list[Name], Field(max_length=16)]
    on_demand: dict[Name, Price] = {}
    spot: dict[Name, SpotDoc] = {}
    note: Annotated[str, Field(max_length=1000)] | None = None


class InstanceTypeOverride(_Strict):
    """A partial type: every field optional; a type the override adds must give all specs."""

    family: Name | None = None
    vcpu: Count | None = None
    memory_mib: MiB | None = None
    arch: Arch | None = None
    gpu: GPUDoc | None = None
    usage_classes: Annotated[list[Name], Field(max_length=16)] = []
    on_demand: dict[Name, Price] = {}
    spot: dict[Name, SpotDoc] = {}
    note: Annotated[str, Field(max_length=1000)] | None = None


Lines = Annotated[list[Annotated[str, Field(max_length=4000)]], Field(max_length=200)]
Regions = dict[Name, Annotated[list[Name], Field(max_length=64)]]


class CatalogDoc(_Strict):
    schema_version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]
    cloud: Name
    currency: Name
    region: Name
    provenance: Lines
    notes: Lines = []
    regions: Regions
    instance_types: dict[Name, InstanceTypeDoc]


class OverrideDoc(_Strict):
    schema_version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)] | None = None
    region: Name | None = None
    provenance: Lines = []
    notes: Lines = []
    regions: Regions = {}
    instance_types: dict[Name, InstanceTypeOverride] = {}


FIELD_NAMES: frozenset[str] = frozenset(
    name for model in (GPUDoc, SpotDoc, InstanceTypeDoc, CatalogDoc) for name in model.model_fields
)
"""Every key the format knows, for "did you mean" hints on a typo."""


def to_catalog(doc: CatalogDoc) -> Catalog:
    """The :class:`Catalog` value of a validated document."""
    types = [_to_type(name, t) for name, t in doc.instance_types.items()]
    return Catalog(
        types,
        region=doc.region,
        regions=doc.regions,
        cloud=doc.cloud,
        currency=doc.currency,
        provenance=doc.provenance,
        notes=doc.notes,
    )


def _to_type(name: str, t: InstanceTypeDoc) -> InstanceType:
    gpu = None
    if t.gpu is not None:
        gpu = GPUSpec(t.gpu.count, t.gpu.model, t.gpu.mem_mib, t.gpu.manufacturer)
    spot = {
        loc: SpotOffer(
            s.price,
            s.bucket,
            s.source,
            s.bucket_source if s.bucket_source != s.source else None,
            s.as_of,
        )
        for loc, s in t.spot.items()
    }
    return InstanceType(
        name=name,
        family=t.family,
        vcpu=t.vcpu,
        memory_mib=t.memory_mib,
        arch=t.arch,
        gpu=gpu,
        usage_classes=frozenset(t.usage_classes),
        on_demand=MappingProxyType(dict(t.on_demand)),
        spot=MappingProxyType(spot),
        note=t.note,
    )


def to_document(catalog: Catalog) -> dict[str, Any]:
    """The plain JSON-ready document of a catalog, keys in the written order.

    Usage classes are sorted and optional keys left out when empty, so that
    building, loading and writing the same data gives the same bytes.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "cloud": catalog.cloud,
        "currency": catalog.currency,
        "region": catalog.region,
        "provenance": list(catalog.provenance),
        "notes": list(catalog.notes),
        "regions": {r: list(zones) for r, zones in catalog.regions.items()},
        "instance_types": {t.name: type_document(t) for t in catalog.all()},
    }


def type_document(t: InstanceType) -> dict[str, Any]:
    gpu = None
    if t.gpu is not None:
        gpu = {
            "count": t.gpu.count,
            "manufacturer": t.gpu.manufacturer,
            "model": t.gpu.model,
            "mem_mib": t.gpu.mem_mib,
        }
    out: dict[str, Any] = {
        "family": t.family,
        "vcpu": t.vcpu,
        "memory_mib": t.memory_mib,
        "arch": t.arch,
        "gpu": gpu,
        "usage_classes": sorted(t.usage_classes),
        "on_demand": dict(t.on_demand),
        "spot": {loc: _offer_document(o) for loc, o in t.spot.items()},
    }
    if t.note is not None:
        out["note"] = t.note
    return out


def _offer_document(o: SpotOffer) -> dict[str, Any]:
    out: dict[str, Any] = {"price": o.price, "bucket": o.bucket, "source": o.source}
    if o.bucket_source is not None and o.bucket_source != o.source:
        out["bucket_source"] = o.bucket_source
    if o.as_of is not None:
        out["as_of"] = o.as_of
    return out
