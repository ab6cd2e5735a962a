"""What ``spotpack run`` prints once everything is ready: where things are, what to try.

Pure text from the endpoints, so it is tested without starting anything.
Every command in it is meant to be pasted as is into another terminal:
paths are shown relative to the working directory when they lie under it,
absolute otherwise.
"""

from __future__ import annotations

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
    lines += ["", "Try next:", f"  kubectl --kubeconfig {kubeconfig} get nodes"]
    curl = f"curl -s --cacert {ca}"
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
        lines.append(f"  spotpack simulate {show(examples.scenario)}   (or: make demo)")
    lines += ["", STOP_LINE]
    return "\n".join(lines)


def find_examples(roots: tuple[Path, ...]) -> Examples:
    """The first root (working directory, then the checkout) that has each sample file."""

    def first(relative: str) -> Path | None:
        return next((r / relative for r in roots if (r / relative).is_file()), None)

    return Examples(
        admission_review=first("deploy/examples/admissionreview-spark-executor.json"),
        extender_filter=first("deploy/examples/extender-filter.json"),
        scenario=first("scenarios/spark-etl.yaml"),
    )
