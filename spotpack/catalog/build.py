"""Build the packaged catalog from the shared public data, reproducibly.

Run ``python -m spotpack.catalog.build --shared ../shared/data/catalog
--out spotpack/data/catalog-aws.json``; the same input always gives the same
bytes, and a test checks that the committed file is what this script writes.

Specs and on-demand prices are copied (architecture renamed to Kubernetes'
``amd64``/``arm64``); the source's provenance line is kept verbatim. Spot
figures are **estimates**, because no public static source ships them (Karpenter
itself starts spot at the on-demand price until a live refresh). Each is
``price = on_demand * (1 - savings)`` with the savings fraction and Spot
Advisor bucket of :data:`CLASS_ESTIMATES` or :data:`FAMILY_ESTIMATES`, one
figure per region, which every zone of the region uses (zone names are
per-account aliases of AZ IDs, so a shipped per-zone table would be wrong for
most accounts; ``spotpack catalog refresh`` fills per-zone figures for yours).

How the table was chosen. The reference points are few: the one AWS seed
(g4dn.xlarge spot saves about 70%), two Alibaba seeds (gn7i A10: 6958.7 vs
2436.0 a month, 65% off; r6 memory: 1934.5 vs 406.6, 79% off) and AWS's own
"up to 90%" ceiling. Estimates stay well inside those: a provisioner that
believes spot is cheaper or safer than it is keeps choosing it and re-running
work, while one that is too cautious only leaves some savings unclaimed. So
savings are at or below the seeds and buckets are one step worse than "<5%".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spotpack.catalog.load import dumps, read_document, write_text_atomic
from spotpack.catalog.model import BUCKET_LABELS, Catalog, GPUSpec, InstanceType, SpotOffer
from spotpack.catalog.prices import PriceTableDoc
from spotpack.catalog.schema import CatalogDoc, to_catalog, to_document
from spotpack.errors import ConfigError

AWS_SOURCE = "aws-instance-types.json"
ALIBABA_SOURCE = "alibaba-on-demand-prices.json"

AWS_ZONES: Mapping[str, tuple[str, ...]] = {
    "us-east-1": tuple(f"us-east-1{letter}" for letter in "abcdef"),
}
"""Zone names of each region with prices; which types each zone offers is not known statically."""

ARCH = {"x86_64": "amd64", "arm64": "arm64"}
"""EC2 architecture names -> Kubernetes ``kubernetes.io/arch`` values."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated spot discount (fraction of on-demand saved) and interruption bucket."""

    savings: float
    bucket: int
    why: str


CLASS_ESTIMATES: Mapping[str, Estimate] = {
    "general": Estimate(
        0.55,
        1,
        "m families; assume a bit over half off (below the 70% g4dn seed: mid-size general "
        "purpose pools are the most requested) and 5-10% interruptions",
    ),
    "compute": Estimate(
        0.55,
        2,
        "c families; same discount as general purpose, one bucket worse (10-15%): batch and "
        "CI fleets crowd these pools",
    ),
    "memory": Estimate(
        0.60,
        1,
        "r families; the Alibaba r6 seed saves 79%; take far less for another cloud, a bit "
        "more than general purpose; 5-10%",
    ),
    "arm": Estimate(
        0.50,
        1,
        "Graviton (c6g, m6g); on-demand is already cheaper than x86, assume a smaller cut "
        "off that base; 5-10%",
    ),
    "gpu": Estimate(
        0.60,
        2,
        "GPU families; below both GPU seeds (g4dn 70%, Alibaba gn7i A10 65%) since GPU "
        "spot pools are small; 10-15%",
    ),
}
"""Estimates per family class; the class is ``gpu`` for GPU types, ``arm`` for arm64,
else by the family's first letter: c = compute, m = general, r = memory."""

FAMILY_ESTIMATES: Mapping[str, Estimate] = {
    "g4dn": Estimate(
        0.70,
        2,
        "README seed: g4dn.xlarge (T4) spot saves about 70%; bucket as other GPUs",
    ),
    "p4d": Estimate(
        0.45,
        4,
        "8x A100 training-class GPUs, scarce and reclaimed often; small discount, >20%",
    ),
    "p5": Estimate(
        0.45,
        4,
        "H100; as p4d, small discount and the worst bucket (>20%)",
    ),
}
"""Per-family estimates that replace the class estimate where we know more."""

CLASS_BY_LETTER = {"c": "compute", "m": "general", "r": "memory"}

_M = TypeVar("_M", bound=BaseModel)


# -- the shared input format -----------------------------------------------------


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SharedGPU(_Input):
    count: int
    manufacturer: str
    model: str
    memory_mib: int
    total_memory_mib: int


class SharedType(_Input):
    name: str
    family: str
    vcpu: int
    memory_mib: int
    arch: Literal["x86_64", "arm64"]
    gpu: SharedGPU | None
    usage_classes: list[str]
    on_demand_usd_per_hour: dict[str, float]
    note: str | None = None


class SharedAWS(_Input):
    source: str
    regions: list[str]
    regions_requested_but_absent: list[str] = []
    instance_types: list[SharedType]


class SharedAlibaba(_Input):
    source: str
    currency: str
    on_demand_per_hour: dict[str, dict[str, Annotated[float, Field(ge=0)]]]


# -- AWS ---------------------------------------------------------------------------


def estimate_for(family: str, arch: str, has_gpu: bool) -> Estimate:
    """The estimate of a family: a family entry, else its class (see :data:`CLASS_ESTIMATES`)."""
    if family in FAMILY_ESTIMATES:
        return FAMILY_ESTIMATES[family]
    if has_gpu:
        return CLASS_ESTIMATES["gpu"]
    if arch == "arm64":
        return CLASS_ESTIMATES["arm"]
    try:
        return CLASS_ESTIMATES[CLASS_BY_LETTER[family[0]]]
    except KeyError:
        raise ConfigError(
            f"family {family!r} has no estimate class; fix: add it to FAMILY_ESTIMATES in "
            "spotpack/catalog/build.py with the reasoning"
        ) from None


def build_aws(source: Mapping[str, Any]) -> Catalog:
    """The AWS catalog from the parsed shared ``aws-instance-types.json``."""
    data = _validated(SharedAWS, source, AWS_SOURCE)
    types = [_aws_type(t) for t in data.instance_types]
    missing = [r for r in data.regions if r not in AWS_ZONES]
    if missing:
        raise ConfigError(f"{AWS_SOURCE}: no zone list for {missing}; fix: add them to AWS_ZONES")
    return Catalog(
        types,
        region=data.regions[0],
        regions={r: AWS_ZONES[r] for r in data.regions},
        cloud="aws",
        currency="USD",
        provenance=[data.source],
        notes=_aws_notes(data),
    )


def _aws_type(t: SharedType) -> InstanceType:
    gpu = None
    if t.gpu is not None:
        gpu = GPUSpec(t.gpu.count, t.gpu.model, t.gpu.memory_mib, t.gpu.manufacturer)
    spot: dict[str, SpotOffer] = {}
    if "spot" in t.usage_classes:
        est = estimate_for(t.family, ARCH[t.arch], gpu is not None)
        for region, price in t.on_demand_usd_per_hour.items():
            spot[region] = SpotOffer(round(price * (1 - est.savings), 6), est.bucket, "estimate")
    return InstanceType(
        name=t.name,
        family=t.family,
        vcpu=t.vcpu,
        memory_mib=t.memory_mib,
        arch="amd64" if t.arch == "x86_64" else "arm64",
        gpu=gpu,
        usage_classes=frozenset(t.usage_classes),
        on_demand=dict(t.on_demand_usd_per_hour),
        spot=spot,
        note=t.note,
    )


def _aws_notes(data: SharedAWS) -> list[str]:
    notes = [
        "Specs and on-demand prices are copied from the source above; arch is renamed to "
        "Kubernetes names (x86_64 -> amd64).",
        "Every spot figure with source 'estimate' is ours, not AWS's: price = on-demand x "
        "(1 - savings), bucket = Spot Advisor interruption range "
        + ", ".join(f"{i} {label}" for i, label in enumerate(BUCKET_LABELS))
        + ". Refresh with 'spotpack catalog refresh' to replace them with live figures.",
        "Seeds behind the estimates: g4dn.xlarge spot saves about 70% (project README); "
        "Alibaba gn7i A10 65% and r6 79% off (monthly figures). Estimates stay below them.",
        "Zone figures: none shipped; a zone uses its region's figure. Zone names are "
        "per-account aliases of AZ IDs, so per-zone availability is left to the live refresh.",
    ]
    notes += [
        f"Estimate {name}: {e.savings:.0%} off, bucket {e.bucket}. {e.why}."
        for name, e in CLASS_ESTIMATES.items()
    ]
    notes += [
        f"Estimate {name}: {e.savings:.0%} off, bucket {e.bucket}. {e.why}."
        for name, e in FAMILY_ESTIMATES.items()
    ]
    if data.regions_requested_but_absent:
        notes.append(
            "No on-demand prices in the source for "
            + ", ".join(data.regions_requested_but_absent)
            + "; none were invented."
        )
    return notes


def build_aws_document(source: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog document, checked by the same validation the loader applies."""
    document = to_document(build_aws(source))
    to_catalog(CatalogDoc.model_validate(document))
    return document


def _validated(model: type[_M], raw: Any, where: str) -> _M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: the shared data changed shape: {exc}") from exc


# -- Alibaba: a price table -----------------------------------------------------------

HOURS_PER_MONTH = 730
"""The seeds are monthly; 730 h is what turns the table's hourly prices into them."""

ALIBABA_SEED_REGION = "cn-hangzhou"
ALIBABA_SEEDS: tuple[tuple[str, float, float], ...] = (
    ("ecs.gn7i-c8g1.2xlarge", 6958.7, 2436.0),
    ("ecs.r6.2xlarge", 1934.5, 406.6),
)
"""(type, on-demand per month, spot per month) from the shared data README.

The README does not say which region; the on-demand figures equal 730 x the
table's hourly price in cn-hangzhou (and in the other mainland regions that
charge the same), so the spot seeds are filed there, and the build checks it.
"""


def build_alibaba_document(source: Mapping[str, Any]) -> dict[str, Any]:
    """The Alibaba price table from the parsed shared ``alibaba-on-demand-prices.json``."""
    data = _validated(SharedAlibaba, source, ALIBABA_SOURCE)
    on_demand: dict[str, dict[str, float]] = {}
    dropped = 0
    for region, prices in data.on_demand_per_hour.items():
        on_demand[region] = {t: p for t, p in prices.items() if p > 0}
        dropped += len(prices) - len(on_demand[region])
    document = {
        "schema_version": 1,
        "kind": "price-table",
        "cloud": "alibaba",
        "currency": None,
        "currency_note": data.currency,
        "provenance": [data.source],
        "notes": [
            f"{dropped} zero prices in the source (no price, not free) were left out.",
            "On-demand prices are copied as given; their currency is unknown (see currency_note).",
            "Spot: only the two README seeds, as snapshots: monthly figures / "
            f"{HOURS_PER_MONTH} h, filed under {ALIBABA_SEED_REGION} (the region is not stated; "
            "its hourly on-demand x 730 matches the seeds' on-demand). No interruption data.",
        ],
        "on_demand": on_demand,
        "spot": {ALIBABA_SEED_REGION: _alibaba_seeds(on_demand[ALIBABA_SEED_REGION])},
    }
    PriceTableDoc.model_validate(document)
    return document


def _alibaba_seeds(hourly: Mapping[str, float]) -> dict[str, Any]:
    quotes = {}
    for name, od_month, spot_month in ALIBABA_SEEDS:
        if abs(hourly[name] * HOURS_PER_MONTH - od_month) > 0.2:
            raise ConfigError(
                f"{ALIBABA_SOURCE}: {name} in {ALIBABA_SEED_REGION} costs {hourly[name]}/h, "
                f"which does not match the seed's {od_month}/month; fix: recheck the seed region"
            )
        quotes[name] = {
            "price": round(spot_month / HOURS_PER_MONTH, 6),
            "source": "snapshot",
            "note": f"seed: {spot_month} spot vs {od_month} on-demand per month "
            f"({1 - spot_month / od_month:.0%} off); divided by {HOURS_PER_MONTH} h",
        }
    return quotes


# -- command line ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spotpack.catalog.build", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--shared", type=Path, required=True, help="the shared catalog data directory"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write catalog-aws.json")
    parser.add_argument("--alibaba-out", type=Path, help="also write the Alibaba price table there")
    args = parser.parse_args(argv)
    try:
        document = build_aws_document(read_document(args.shared / AWS_SOURCE))
        write_text_atomic(args.out, dumps(document))
        if args.alibaba_out is not None:
            alibaba = build_alibaba_document(read_document(args.shared / ALIBABA_SOURCE))
            write_text_atomic(args.alibaba_out, dumps(alibaba))
    except ConfigError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(document['instance_types'])} instance types)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
