"""What docs/ names exists in the code: metric names, reason and event texts, flags, output.

The troubleshooting and Karpenter pages quote the extender's rejection reasons,
the provisioner's Event reasons, Prometheus metric names, command-line flags
and the NodeOverlay YAML spotpack prints. A rename in the code must fail here,
not leave a page that sends an operator grepping for a string that no longer
exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from extender.metrics import create_metrics as extender_metrics
from provisioner.metrics import create_metrics as provisioner_metrics
from spotpack.catalog.load import load_catalog
from spotpack.catalog.nodeoverlay import render_overlays
from webhook.metrics import create_metrics as webhook_metrics

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SOURCES = ("webhook", "extender", "provisioner", "spotpack")
METRIC = re.compile(r"spotpack_(?:webhook|extender|provisioner)_[a-z_]*")

REASON_FRAGMENTS = (
    # extender filter and bind (extender/decide.py, state.py, routes.py, binder.py)
    "node is not in the extender's cache yet",
    "node is being interrupted: ",
    "pod must not run on spot capacity and the node is spot",
    "pod requires spot capacity and the node is not spot",
    "node has no GPUs",
    "pod cannot be placed: ",
    "extender filter failed: ",
    "pod no longer fits on node ",
    " no longer exists",
    " was recreated",
    "binding refused (",
    "cannot reach the API server to bind: ",
    "extender bind failed: ",
    "waiting for the node and pod caches to sync",
    # per-card explanations (spotpack/gpu/explain.py, fit.py)
    "GPU type excluded: ",
    "GPU type not included: wants ",
    " per card, cards have ",
    " healthy",
    "largest free: ",
    " with a free vGPU slot",
    "(a whole card or cores=100)",
    "% cores free",
    " (most free: ",
    "(not even with the node empty)",
    # interruption taints (spotpack/interruption.py)
    "Karpenter is disrupting the node",
    "spotpack received an interruption notice",
    "ToBeDeletedByClusterAutoscaler",
    "cloud.google.com/impending-node-termination",
    # webhook
    "spotpack denied pod ",
    "waiting for the namespace cache",
    # provisioner events
    "spotpack cannot place this pod on a new node: ",
    "no instance type fits ",
    "would exceed the limit ",
    "after launch",
    "its node was deleted",
    "empty (only DaemonSet and mirror pods) for ",
    " notice for instance ",
    "tainted, draining",
)
EVENT_REASONS = (
    "Nominated",
    "ProvisioningFailed",
    "ClaimFailed",
    "Launched",
    "ScaleDown",
    "Interrupted",
    "InstanceGone",
)
FLAGS = {
    "spotpack/catalog/cli.py": (
        '"nodeoverlay"',
        '"--split"',
        '"--memory-scaling"',
        '"--types"',
        '"--weight"',
        '"--catalog"',
        '"--override"',
    ),
    "spotpack/tls/cli.py": ('"--print-ca-bundle"',),
}
ENDPOINTS = {
    "extender/routes.py": ('"/inspect"', '"/readyz"', '"/metrics"', '"/bind"', '"/filter"'),
    "provisioner/app.py": ('"/claims"', '"/readyz"', '"/metrics"'),
    "webhook/routes.py": ('"/mutate"', '"/readyz"', '"/metrics"'),
}


def _pages() -> str:
    return "\n".join(p.read_text() for p in sorted(DOCS.glob("*.md")))


def _source() -> str:
    texts: list[str] = []
    for top in SOURCES:
        texts.extend(p.read_text() for p in sorted((REPO / top).rglob("*.py")))
    return "\n".join(texts)


def _exposed_metric_names() -> set[str]:
    """Every sample name the three services expose, as Prometheus scrapes it."""
    registries = (
        webhook_metrics().registry,
        extender_metrics(lambda: (0, 0, 0), lambda: 0).registry,
        provisioner_metrics().registry,
    )
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
            names.add(family.name)
    return names


def test_every_metric_named_in_the_docs_is_exposed() -> None:
    exposed = _exposed_metric_names()
    named = set(METRIC.findall(_pages()))
    assert named, "the pages name no metric at all"
    unknown = sorted(
        n
        for n in named
        if n not in exposed and not (n.endswith("_") and any(e.startswith(n) for e in exposed))
    )
    assert unknown == []


@pytest.mark.parametrize("fragment", REASON_FRAGMENTS)
def test_quoted_reason_exists_in_code_and_docs(fragment: str) -> None:
    assert fragment in _source(), f"the code no longer says {fragment!r}"
    assert fragment in _pages(), f"docs/ no longer quotes {fragment!r}"


@pytest.mark.parametrize("reason", EVENT_REASONS)
def test_event_reasons(reason: str) -> None:
    provisioner = "\n".join(p.read_text() for p in (REPO / "provisioner").glob("*.py"))
    assert f'"{reason}"' in provisioner
    assert f"`{reason}`" in (DOCS / "troubleshooting.md").read_text()


@pytest.mark.parametrize(
    ("path", "needle"),
    [(path, needle) for path, needles in {**FLAGS, **ENDPOINTS}.items() for needle in needles],
)
def test_flags_and_endpoints_exist(path: str, needle: str) -> None:
    assert needle in (REPO / path).read_text()


def test_nodeoverlay_output_in_karpenter_page() -> None:
    """The YAML shown is what ``spotpack catalog nodeoverlay --types ...`` prints."""
    page = (DOCS / "karpenter.md").read_text()
    command = re.search(r"spotpack catalog nodeoverlay --types ([a-z0-9. ]+?) \|", page)
    assert command is not None
    types = command.group(1).split()
    block = re.search(r"```yaml\n(---\napiVersion: karpenter.sh/v1alpha1.*?)```", page, re.S)
    assert block is not None
    shown = list(yaml.safe_load_all(block.group(1)))
    assert shown == render_overlays(load_catalog(), types=types)
