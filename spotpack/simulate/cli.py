"""``spotpack simulate SCENARIO``: run a scenario on a local stack and report cost vs baseline.

Order matters for bad input: the scenario file, the output paths and the
catalog are checked before anything starts, so a mistake costs a one-line
error and nothing is left running. Then the stack (an empty embedded
cluster, the three services on free loopback ports, their timings scaled to
the scenario's compression) starts, the engine runs, the stack stops --
whatever happened in between.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spotpack.errors import InvalidInput
from spotpack.logs import configure_logging
from spotpack.simulate.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from spotpack.catalog.model import Catalog
    from spotpack.simulate.metrics import Figures

log = logging.getLogger(__name__)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        help="replay a workload scenario and report cost vs baseline",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario YAML file")
    parser.add_argument("--report", type=Path, metavar="PATH.html", help="write the HTML report")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the raw figures as JSON")
    parser.add_argument("--catalog", type=Path, metavar="FILE", help="catalog override file")
    parser.add_argument(
        "--compression",
        type=float,
        help="simulated seconds per real second (overrides the scenario's)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".run/simulate"),
        help="kubeconfig and service logs (default .run/simulate)",
    )
    parser.add_argument(
        "--certs-dir",
        type=Path,
        default=Path("certs/out"),
        help="TLS certificates (made if absent)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", action="store_true", default=None, help="progress bar even without a TTY"
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress output"
    )
    parser.add_argument("--verbose", action="store_true", help="log the simulator's steps")
    return parser


def _check_output(path: Path | None, flag: str, suffixes: tuple[str, ...]) -> None:
    if path is None:
        return
    if path.suffix.lower() not in suffixes:
        raise InvalidInput(
            f"{flag} {path}: unsupported file type; fix: end the name with {' or '.join(suffixes)}"
        )
    parent = path.parent if str(path.parent) else Path()
    if parent.exists() and not parent.is_dir():
        raise InvalidInput(f"{flag} {path}: {parent} is not a directory; fix: choose another path")


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run(args: argparse.Namespace) -> int:
    """Check everything, start the stack, run, report; a SpotpackError is one line, exit 2."""
    configure_logging("text", "INFO" if args.verbose else "WARNING")
    scenario, catalog = _checked_inputs(args)
    live = sys.stderr.isatty() if args.progress is None else bool(args.progress)
    show = args.progress is not False
    from spotpack.simulate.engine import Engine, service_env
    from spotpack.simulate.metrics import figures
    from spotpack.simulate.progress import ProgressBar
    from spotpack.stack import Stack, StackSettings

    webhook, extender, provisioner = _free_ports(3)
    settings = StackSettings(
        host="127.0.0.1",
        webhook_port=webhook,
        extender_port=extender,
        provisioner_port=provisioner,
        seed=(),
        certs_dir=args.certs_dir,
        workdir=args.workdir,
        cloud="local",
        extra_env=service_env(scenario),
    )
    bar = ProgressBar(sys.stderr, live=live, label=scenario.name) if show else None
    print(
        f"spotpack simulate: {scenario.name}, {scenario.duration:g} simulated s at "
        f"{scenario.compression:g}x (~{scenario.real_seconds(scenario.duration):.0f} s)",
        file=sys.stderr,
    )
    with Stack(settings) as stack:
        engine = Engine(scenario, stack.endpoints, catalog, progress=bar)
        try:
            record = engine.run()
        finally:
            engine.cleanup()
    result = figures(record, catalog, scenario.region)
    _write_outputs(result, args, scenario.description)
    return 0


def _checked_inputs(args: argparse.Namespace) -> tuple[Scenario, Catalog]:
    """The scenario (with ``--compression`` applied) and the catalog, checked against each
    other and the output paths: every mistake found here costs nothing to undo."""
    scenario = load_scenario(args.scenario)
    if args.compression is not None:
        if not 0 < args.compression <= 10_000:
            raise InvalidInput("--compression must be in (0, 10000] simulated seconds per second")
        scenario = Scenario.model_validate(
            {**scenario.model_dump(), "compression": args.compression}
        )
    _check_output(args.report, "--report", (".html", ".htm"))
    _check_output(args.json, "--json", (".json",))
    from spotpack.catalog import load_catalog

    catalog = load_catalog(override=args.catalog)
    if scenario.region not in catalog.regions:
        raise InvalidInput(
            f"{args.scenario}: region: {scenario.region!r} is not in the catalog; fix: use one "
            f"of {', '.join(sorted(catalog.regions))}"
        )
    unknown = sorted(set(scenario.zones) - set(catalog.regions[scenario.region]))
    if unknown:
        raise InvalidInput(
            f"{args.scenario}: zones: {', '.join(unknown)} not in {scenario.region}; fix: use "
            f"some of {', '.join(catalog.regions[scenario.region])}"
        )
    from spotpack.simulate.baseline import check_capacity

    check_capacity(scenario, catalog, str(args.scenario))
    return scenario, catalog


def _write_outputs(result: Figures, args: argparse.Namespace, description: str) -> None:
    """The table on stdout, then the ``--report`` and ``--json`` files when asked for."""
    from spotpack.simulate.report import html_report, json_bytes, terminal_table

    print(terminal_table(result))
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(html_report(result, description), encoding="utf-8")
        print(f"report: {args.report}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(json_bytes(result))
        print(f"figures: {args.json}")


__all__ = ["add_parser", "run"]
