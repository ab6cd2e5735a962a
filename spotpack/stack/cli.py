"""``spotpack run``: the webhook, the extender and the provisioner on a local cluster.

Without a kubeconfig (no ``--kubeconfig``, no ``$KUBECONFIG``) an in-memory
cluster is embedded, seeded from ``deploy/examples``; with one, the services
run against that cluster. Runs until SIGINT or SIGTERM, then stops every
service and exits 0; exits 1 when a service dies on its own (naming it and
its log), 2 when something is wrong before start (one line, the fix).

Signals: while starting, SIGINT and SIGTERM interrupt the start (whatever
already runs is stopped); once running they only ask the wait loop to end,
so stopping is never itself interrupted half-way.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from spotpack.logs import configure_logging
from spotpack.stack.banner import banner, find_examples
from spotpack.stack.errors import ServiceError
from spotpack.stack.settings import PORT_FLAGS, Cloud, StackSettings
from spotpack.stack.stack import Stack

_CHECK_INTERVAL = 0.5
"""How often a running stack looks for a service that died."""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``spotpack run``; the defaults shown are :class:`StackSettings`' own."""
    defaults = StackSettings()
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the webhook, extender and provisioner on an embedded cluster (or KUBECONFIG)",
        description=(
            "Generate certificates if needed, start an in-memory cluster seeded from "
            "deploy/examples (or use --kubeconfig / $KUBECONFIG), start the three services "
            "on loopback, print their URLs, and stop everything on Ctrl-C."
        ),
    )
    parser.add_argument("--host", default=defaults.host, help="address every server binds")
    for name in ("webhook", "extender", "provisioner", "api"):
        default = defaults.port_of(name)
        parser.add_argument(
            PORT_FLAGS[name],
            type=int,
            default=default,
            metavar="PORT",
            help=f"{name} port (default {default}{', any free port' if default == 0 else ''})",
        )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="run against this cluster instead of the embedded one (default: $KUBECONFIG)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded cluster even when $KUBECONFIG is set",
    )
    parser.add_argument(
        "--seed",
        type=Path,
        action="append",
        metavar="YAML",
        help="seed file for the embedded cluster, repeatable (default deploy/examples/*.yaml)",
    )
    parser.add_argument(
        "--certs-dir",
        type=Path,
        default=defaults.certs_dir,
        metavar="DIR",
        help=f"TLS certificates; generated when missing (default {defaults.certs_dir})",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=defaults.workdir,
        metavar="DIR",
        help=f"generated kubeconfig and service logs (default {defaults.workdir})",
    )
    parser.add_argument(
        "--cloud",
        choices=["local", "none"],
        default=None,
        help=(
            "the provisioner's cloud; none leaves the provisioner out (default: local on the "
            "embedded cluster, none with a kubeconfig, so a real cluster never gets fake nodes)"
        ),
    )
    parser.add_argument("--no-provisioner", action="store_true", help="same as --cloud none")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=defaults.ready_timeout,
        metavar="SECONDS",
        help=f"how long each service has to become ready (default {defaults.ready_timeout:g})",
    )
    parser.add_argument("--log-level", default="WARNING", help="this process's log level")
    return parser


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> StackSettings:
    """Flags over ``$KUBECONFIG``; its first entry when it lists several."""
    kubeconfig: Path | None = args.kubeconfig
    if kubeconfig is None and not args.embedded:
        first = next((p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
        kubeconfig = Path(first).expanduser() if first else None
    return StackSettings(
        host=args.host,
        webhook_port=args.webhook_port,
        extender_port=args.extender_port,
        provisioner_port=args.provisioner_port,
        api_port=args.api_port,
        kubeconfig=kubeconfig,
        seed=tuple(args.seed) if args.seed else None,
        certs_dir=args.certs_dir,
        workdir=args.workdir,
        cloud=_cloud(args, embedded=kubeconfig is None),
        ready_timeout=args.ready_timeout,
    )


def _cloud(args: argparse.Namespace, *, embedded: bool) -> Cloud:
    """The local cloud writes kwok-style Node objects: only on the embedded cluster unless
    asked for (a kind or kwok cluster), never by default on a cluster someone uses."""
    if args.no_provisioner:
        return "none"
    if args.cloud is not None:
        chosen: Cloud = args.cloud
        return chosen
    return "local" if embedded else "none"


def run(args: argparse.Namespace) -> int:
    """Start, print the banner, wait; the exit codes and signal handling of the module
    docstring (130 when interrupted while starting)."""
    configure_logging("text", args.log_level)
    stack = Stack(settings_from_args(args, os.environ))
    stopping = threading.Event()
    running = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        if not running.is_set():
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            endpoints = stack.start()
        except KeyboardInterrupt:
            print("spotpack run: interrupted while starting; stopped", file=sys.stderr)
            return 130
        running.set()
        roots = (stack.cwd, Path(__file__).resolve().parents[2])
        print(
            banner(
                endpoints,
                cwd=stack.cwd,
                embedded=stack.settings.embedded,
                seed=stack.seed,
                examples=find_examples(roots),
            ),
            flush=True,
        )
        return _wait(stack, stopping)
    finally:
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(stack: Stack, stopping: threading.Event) -> int:
    """Until a signal (exit 0) or a service dying on its own (exit 1, naming it)."""
    while not stopping.wait(_CHECK_INTERVAL):
        try:
            stack.check()
        except ServiceError as exc:
            print(f"spotpack run: {exc}", file=sys.stderr, flush=True)
            print("spotpack run: stopping the other services", file=sys.stderr, flush=True)
            return 1
    print("spotpack run: stopping", file=sys.stderr, flush=True)
    return 0
