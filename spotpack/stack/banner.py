"""What ``spotpack run`` prints once everything is ready: where things are, what to try.

Pure text from the endpoints, so it is tested without starting anything.
Every command in it is meant to be pasted as is into another terminal:
paths are shown relative to the working directory when they lie under it,
absolute otherwise, and ``spotpack`` itself is named as the shell will find
it -- bare only when ``PATH`` leads to the very executable that is running,
else by its path (``.venv/bin/spotpack`` in a checkout whose venv is not
activated), see :func:`spotpack_command`.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spotpack.stack.stack import Endpoints

READY_LINE = "spotpack is running"
STOP_LINE = "Ctrl-C stops everything."


@dataclass(frozen=True)
class Examples:
    """Sample files the banner can point at; None when not found (an installed package)."""

    admission_review: Path | None = None
    extender_filter: Path | None = None
    scenario: Path | None = None
    makefile: Path | None = None
    """A Makefile with a ``demo`` target (the checkout's)."""
    program: str | Path = "spotpack"
    """How to run ``spotpack``: the bare name when PATH finds it, else its path."""


EMBEDDED_NOTE = (
    "  note: the embedded cluster has no admission chain and no scheduler: pods created",
    "  with kubectl go through neither the webhook nor a scheduler (they stay unbound).",
    "  `spotpack simulate` plays the full loop: webhook, scheduling, provisioner.",
)


def spotpack_command(
    argv0: str,
    executable: str,
    which: Callable[[str], str | None] = shutil.which,
) -> str | Path:
    """The running ``spotpack``: ``"spotpack"`` when PATH resolves to it, else its path.

    The running script is ``argv0`` when that is a file named ``spotpack``
    (the console script), else the ``spotpack`` next to the Python
    ``executable`` (a venv's ``bin/``); when neither exists, the bare name.
    """
    candidates = [Path(argv0), Path(executable).parent / "spotpack"]
    running = next((c for c in candidates if c.name == "spotpack" and c.is_file()), None)
    if running is None:
        return "spotpack"
    on_path = which("spotpack")
    if on_path is not None and Path(on_path).resolve() == running.resolve():
        return "spotpack"
    return running.absolute()


def banner(
    endpoints: Endpoints,
    *,
    cwd: Path,
    embedded: bool,
    seed: tuple[Path, ...] = (),
    examples: Examples = Examples(),
) -> str:
    """The banner as one string (no trailing newline)."""

    def show(path: Path) -> str:
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)

    ca = show(endpoints.ca_file)
    kubeconfig = show(endpoints.kubeconfig)
    if embedded:
        where = "embedded cluster seeded from " + (
            ", ".join(show(p) for p in seed) if seed else "nothing"
        )
    else:
        where = f"the cluster of {kubeconfig}"
    lines = [
        f"{READY_LINE} on {where}",
        "",
        f"  API server   {endpoints.api_url}   (kubeconfig {kubeconfig})",
        f"  webhook      {endpoints.webhook_url}/mutate",
        f"  extender     {endpoints.extender_url}   (/filter /prioritize /bind /inspect)",
    ]
    if endpoints.provisioner_url:
        url = endpoints.provisioner_url
        lines.append(f"  provisioner  {url}/metrics   {url}/claims")
    else:
        lines.append("  provisioner  not running (--cloud none)")
    lines += [
        f"  CA file      {ca}",
        f"  logs         {show(endpoints.logs_dir)}/",
    ]
    if not embedded and endpoints.provisioner_url:
        lines += [
            "",
            "  note: --cloud local: nodes the provisioner launches here are Node objects",
            "  only (kwok-style); pass --cloud none to leave it out.",
        ]
    lines += ["", "Try next:", *_try_next(endpoints, examples, cwd=cwd, show=show)]
    if embedded:
        lines += ["", *EMBEDDED_NOTE]
    lines += ["", STOP_LINE]
    return "\n".join(lines)


def _try_next(
    endpoints: Endpoints, examples: Examples, *, cwd: Path, show: Callable[[Path], str]
) -> list[str]:
    """The commands under "Try next:", one per line: those whose sample file was found."""

    def command(program: str | Path) -> str:
        if isinstance(program, str):
            return program
        shown = show(program)
        return shown if "/" in shown else f"./{shown}"

    lines = [f"  kubectl --kubeconfig {show(endpoints.kubeconfig)} get nodes"]
    curl = f"curl -s --cacert {show(endpoints.ca_file)}"
    json_post = "-H 'Content-Type: application/json'"
    if examples.admission_review is not None:
        lines.append(
            f"  {curl} {endpoints.webhook_url}/mutate {json_post} "
            f"-d @{show(examples.admission_review)}"
        )
    if examples.extender_filter is not None:
        lines.append(
            f"  {curl} {endpoints.extender_url}/filter {json_post} "
            f"-d @{show(examples.extender_filter)}"
        )
    lines.append(f"  {curl} {endpoints.extender_url}/inspect")
    if endpoints.provisioner_url:
        lines.append(f"  curl -s {endpoints.provisioner_url}/claims")
    if examples.scenario is not None:
        demo = ""
        if examples.makefile is not None:
            home = examples.makefile.parent
            demo = "   (or: make demo)" if home == cwd else f"   (or: make -C {show(home)} demo)"
        lines.append(f"  {command(examples.program)} simulate {show(examples.scenario)}{demo}")
    return lines


def find_examples(
    roots: tuple[Path, ...], *, argv0: str | None = None, executable: str | None = None
) -> Examples:
    """The first root (working directory, then the checkout) that has each sample file;
    the running ``spotpack`` from ``argv0``/``executable`` (default: this process's)."""

    def first(relative: str) -> Path | None:
        return next((r / relative for r in roots if (r / relative).is_file()), None)

    makefile = first("Makefile")
    if makefile is not None and "\ndemo:" not in makefile.read_text(errors="replace"):
        makefile = None
    return Examples(
        admission_review=first("deploy/examples/admissionreview-spark-executor.json"),
        extender_filter=first("deploy/examples/extender-filter.json"),
        scenario=first("scenarios/spark-etl.yaml"),
        makefile=makefile,
        program=spotpack_command(
            sys.argv[0] if argv0 is None else argv0,
            sys.executable if executable is None else executable,
        ),
    )
