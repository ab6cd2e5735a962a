"""A node as the decisions see it: computed once per node change, read per pod.

The extender evaluates hundreds of nodes per pod; everything that depends only
on the node (its capacity type, interruption taint, GPU inventory, price,
interruption risk) is computed here when the node object changes, never in the
per-pod loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spotpack.capacity import LabelScheme
from spotpack.gpu.inventory import GPUSpec, NodeGPUs, inventory_from_node
from spotpack.interruption import interruption_reason

INSTANCE_TYPE = "node.kubernetes.io/instance-type"
ZONE = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    spot: bool
    instance_type: str | None
    zone: str | None
    interrupted: str | None
    """Why the node is going away, when it is (an interruption taint)."""
    gpus: NodeGPUs | None
    gpu_problem: str | None
    """A malformed GPU inventory annotation, reported once when the node changes."""
    price: float | None
    """USD per hour, spot or on-demand as the node runs; None when unknown."""
    base_risk: float
    """Monthly interruption probability from the catalog (0 on-demand)."""


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the catalog knows, as plain functions, so this module stays catalog-agnostic."""

    gpu_spec: Callable[[str], GPUSpec | None]
    price: Callable[[str, str | None, bool], float | None]
    risk: Callable[[str, str | None], float]


def _labels(node: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def node_view(node: Mapping[str, Any], scheme: LabelScheme, facts: NodeFacts) -> NodeView:
    """Precompute the node's decision inputs from a raw Node dict."""
    labels = _labels(node)
    name = str((node.get("metadata") or {}).get("name", ""))
    spot = scheme.is_spot(labels)
    instance_type = labels.get(INSTANCE_TYPE)
    zone = labels.get(ZONE)
    inventory = inventory_from_node(node, facts.gpu_spec)
    price = facts.price(instance_type, zone, spot) if instance_type else None
    risk = facts.risk(instance_type, zone) if (spot and instance_type) else 0.0
    return NodeView(
        name=name,
        spot=spot,
        instance_type=instance_type,
        zone=zone,
        interrupted=interruption_reason((node.get("spec") or {}).get("taints")),
        gpus=inventory.gpus,
        gpu_problem=inventory.problem,
        price=price,
        base_risk=risk,
    )
