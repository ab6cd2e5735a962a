"""``spotpack catalog``: show the instance catalog, refresh it live, export NodeOverlays.

- ``show [TYPE]``: a table of the catalog (cheapest first), or one type in detail;
  every spot figure with its source, so estimates are never mistaken for quotes.
- ``refresh --region R --out FILE [--advisor FILE|URL] [--endpoint-url URL]``:
  read EC2 (standard AWS credential chain) and optionally the Spot Advisor feed,
  and write a new catalog atomically; mount it and point the services at it.
- ``nodeoverlay [--split N] [--types T ...]``: Karpenter NodeOverlay YAML with
  the vGPU capacity HAMi will advertise, for ``kubectl apply -f -``.

Every command takes ``--catalog FILE`` (default: the packaged AWS catalog) and
``--override FILE`` (a partial JSON/YAML merged over it).
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from spotpack.catalog.load import load_catalog, write_catalog
from spotpack.catalog.model import Catalog, InstanceType
from spotpack.catalog.nodeoverlay import MAX_WEIGHT, render_overlays, to_yaml
from spotpack.catalog.schema import type_document
from spotpack.catalog.vgpu import DEFAULT_SPLIT, MAX_SPLIT
from spotpack.errors import InvalidInput


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``catalog`` and its three actions on the main parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--catalog",
        type=Path,
        metavar="FILE",
        help="catalog file (default: the packaged AWS catalog)",
    )
    common.add_argument(
        "--override",
        type=Path,
        metavar="FILE",
        help="partial catalog (JSON or YAML) merged over it",
    )
    parser = subparsers.add_parser(
        "catalog",
        help="show, refresh or export the instance catalog",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show", parents=[common], help="print the catalog or one instance type"
    )
    show.add_argument("type", nargs="?", metavar="TYPE", help="an instance type, e.g. g4dn.xlarge")
    show.add_argument("--region", help="region for prices (default: the catalog's)")
    show.add_argument("--json", action="store_true", help="print TYPE as JSON")

    refresh = actions.add_parser(
        "refresh",
        parents=[common],
        help="read live specs, spot prices and risk; write a new catalog",
    )
    refresh.add_argument("--region", required=True, help="AWS region to read, e.g. us-east-1")
    refresh.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="where to write it"
    )
    refresh.add_argument(
        "--advisor",
        metavar="FILE|URL",
        help="Spot Advisor feed (spot-advisor-data.json), file or URL",
    )
    refresh.add_argument("--endpoint-url", help="EC2 endpoint (e.g. a moto server); default AWS's")

    overlay = actions.add_parser(
        "nodeoverlay",
        parents=[common],
        help="print Karpenter NodeOverlays with vGPU capacity (YAML)",
    )
    overlay.add_argument(
        "--split",
        type=_int_between(1, MAX_SPLIT),
        default=DEFAULT_SPLIT,
        help=f"vGPUs per card, HAMi's deviceSplitCount (default {DEFAULT_SPLIT})",
    )
    overlay.add_argument(
        "--memory-scaling",
        type=float,
        default=1.0,
        help="HAMi's deviceMemoryScaling (default 1)",
    )
    overlay.add_argument("--types", nargs="+", metavar="TYPE", help="only these instance types")
    overlay.add_argument(
        "--weight", type=_int_between(1, MAX_WEIGHT), help="NodeOverlay spec.weight"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out ``spotpack catalog ACTION``; a SpotpackError becomes one line and exit 2."""
    catalog = load_catalog(args.catalog, override=args.override)
    if args.action == "show":
        print(_show(catalog, args.type, args.region, as_json=args.json))
    elif args.action == "refresh":
        print(_refresh(catalog, args))
    else:
        print(
            to_yaml(
                render_overlays(
                    catalog,
                    split=args.split,
                    memory_scaling=args.memory_scaling,
                    types=args.types,
                    weight=args.weight,
                )
            ),
            end="",
        )
    return 0


def _refresh(catalog: Catalog, args: argparse.Namespace) -> str:
    """Read the cloud (imported here: ``show`` never pays for boto3) and write atomically."""
    from spotpack.catalog.advisor import parse_advisor
    from spotpack.catalog.refresh import refresh_from
    from spotpack.cloud.aws_catalog import AwsCatalogSource, read_advisor

    advisor = None
    if args.advisor:
        advisor = parse_advisor(read_advisor(args.advisor), args.region, where=args.advisor)
    with AwsCatalogSource(args.region, endpoint_url=args.endpoint_url) as source:
        fresh, report = refresh_from(
            catalog, source, advisor=advisor, advisor_where=args.advisor, now=datetime.now(UTC)
        )
    write_catalog(fresh, args.out)
    return (
        f"wrote {args.out}: {report.specs} specs, {report.zone_prices} zone prices, "
        f"{report.region_prices} region prices and {report.buckets} buckets refreshed in "
        f"{report.region}; other figures keep their source"
    )


def _show(catalog: Catalog, name: str | None, region: str | None, *, as_json: bool) -> str:
    region = region or catalog.region
    if name is None:
        if as_json:
            raise InvalidInput("--json needs a TYPE; the whole catalog is the file itself")
        return _table(catalog, region)
    itype = catalog.instance(name)
    if itype is None:
        close = difflib.get_close_matches(name, catalog.names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidInput(f"instance type {name!r} is not in the catalog{hint}")
    if as_json:
        return json.dumps({itype.name: type_document(itype)}, indent=1)
    return _detail(catalog, itype, region)


def _table(catalog: Catalog, region: str) -> str:
    header = (
        f"{'TYPE':<16}{'VCPU':>5}{'MEM GiB':>9}  {'ARCH':<6}{'GPU':<16}"
        f"{'ON-DEMAND':>10}{'SPOT':>10}  RISK    SOURCE"
    )
    lines = [header]
    for t in catalog.types(region):
        offer = catalog.spot_offer(t.name, region)
        gpu = f"{t.gpu.count}x {t.gpu.model}" if t.gpu else "-"
        od = t.on_demand.get(region)
        lines.append(
            f"{t.name:<16}{t.vcpu:>5}{t.memory_mib / 1024:>9g}  {t.arch:<6}{gpu:<16}"
            f"{_money(od):>10}{_money(offer.price if offer else None):>10}  "
            f"{(offer.bucket_label if offer else '-'):<8}{offer.source if offer else '-'}"
        )
    lines.append(
        f"{len(lines) - 1} types in {region}, {catalog.currency} per hour; "
        "risk = monthly interruption range"
    )
    return "\n".join(lines)


def _detail(catalog: Catalog, t: InstanceType, region: str) -> str:
    gpu = "none"
    if t.gpu:
        gpu = f"{t.gpu.count}x {t.gpu.manufacturer} {t.gpu.model}, {t.gpu.mem_mib} MiB each"
    lines = [
        f"{t.name}  family {t.family}, {t.vcpu} vCPU, {t.memory_mib} MiB, {t.arch}",
        f"gpu        {gpu}",
        f"usage      {', '.join(sorted(t.usage_classes))}",
    ]
    lines += [f"on-demand  {r}: {p:.6g} {catalog.currency}/h" for r, p in t.on_demand.items()]
    for loc, o in t.spot.items():
        risk = f"{o.bucket} ({o.bucket_label}, {o.risk_source})"
        when = f", as of {o.as_of}" if o.as_of else ""
        lines.append(f"spot       {loc}: {o.price:.6g} ({o.source}{when}), risk {risk}")
    zones = [z for z in catalog.regions.get(region, ()) if z not in t.spot]
    if zones and region in t.spot:
        lines.append(f"           {', '.join(zones)}: the {region} figure")
    if t.note:
        lines.append(f"note       {t.note}")
    return "\n".join(lines)


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {value}")
        return value

    return parse
