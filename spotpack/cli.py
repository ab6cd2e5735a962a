"""The one command line, ``spotpack``, with a subcommand per service and tool.

Services are found by module name (``webhook.cli``, ``extender.cli``, ...) and
imported only when their subcommand runs, so the core never imports a service
and ``spotpack certs`` does not pay for Flask.

Every failure a user can cause ends in one line on stderr naming the setting or
file and the fix, and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from spotpack import __version__
from spotpack.errors import SpotpackError

COMMANDS: dict[str, tuple[str, str]] = {
    "webhook": ("webhook.cli", "serve the mutating admission webhook"),
    "extender": ("extender.cli", "serve the kube-scheduler extender"),
    "provisioner": ("provisioner.cli", "run the node provisioner"),
    "certs": ("spotpack.tls.cli", "generate the CA and serving certificates"),
    "catalog": ("spotpack.catalog.cli", "show, refresh or export the instance catalog"),
    "run": ("spotpack.stack.cli", "run all three services on an embedded cluster (or KUBECONFIG)"),
    "simulate": ("spotpack.simulate.cli", "replay a workload scenario and report cost vs baseline"),
}
"""Subcommand -> (module providing ``add_parser`` and ``run``, one-line help)."""


class CommandModule(Protocol):
    def add_parser(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    module: CommandModule = importlib.import_module(COMMANDS[name][0])
    return module


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="spotpack", description="Put Kubernetes workloads on the cheapest safe capacity."
    )
    parser.add_argument("--version", action="version", version=f"spotpack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        if name == chosen:
            sub = _load(name).add_parser(subparsers)
            sub.set_defaults(_run=_load(name).run)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return run(args)
    except SpotpackError as exc:
        print(f"spotpack {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
