"""Capacity-type label schemes: how each cloud marks spot and on-demand nodes.

Every provisioner labels nodes differently, so the key, the values and the
taint spot pods must tolerate are data, chosen by name:

============ ================================== ========== =============================
scheme       key                                spot value spot taint tolerated
============ ================================== ========== =============================
karpenter    karpenter.sh/capacity-type         spot       same key=spot (if tainted)
eks          eks.amazonaws.com/capacityType     SPOT       same key=SPOT (if tainted)
gke          cloud.google.com/gke-spot          "true"     cloud.google.com/gke-spot=true
aks          kubernetes.azure.com/scalesetpriority spot    same key=spot (always tainted)
============ ================================== ========== =============================

"On-demand" is expressed as *not spot* by default (``NotIn [spot]``): the
property a Spark driver needs is "never interrupted", and ``NotIn`` also admits
Karpenter's ``reserved`` capacity and nodes from groups that carry no capacity
label at all. ``exact`` matching (``In [on-demand]``) is available for clusters
where every node is labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from spotpack.errors import ConfigError


class OnDemandMatch(StrEnum):
    NOT_SPOT = "not-spot"
    EXACT = "exact"


@dataclass(frozen=True, slots=True)
class LabelScheme:
    """One cloud's capacity-type labelling."""

    name: str
    key: str
    spot_value: str
    on_demand_value: str | None
    """Label value of on-demand nodes; ``None`` where they carry no label (GKE, AKS)."""
    spot_taint_value: str

    def spot_requirement(self) -> dict[str, Any]:
        """A nodeSelectorRequirement that selects spot nodes."""
        return {"key": self.key, "operator": "In", "values": [self.spot_value]}

    def on_demand_requirement(self, match: OnDemandMatch) -> dict[str, Any]:
        """A nodeSelectorRequirement that selects non-spot nodes."""
        if match is OnDemandMatch.EXACT and self.on_demand_value is not None:
            return {"key": self.key, "operator": "In", "values": [self.on_demand_value]}
        return {"key": self.key, "operator": "NotIn", "values": [self.spot_value]}

    def spot_tolerations(self) -> list[dict[str, Any]]:
        """Tolerations that let a pod onto spot nodes tainted the usual way for this cloud."""
        return [
            {
                "key": self.key,
                "operator": "Equal",
                "value": self.spot_taint_value,
                "effect": "NoSchedule",
            }
        ]

    def is_spot(self, labels: dict[str, str] | Any) -> bool:
        """Whether a node with these labels is spot capacity."""
        return bool(labels.get(self.key) == self.spot_value)


SCHEMES: dict[str, LabelScheme] = {
    "karpenter": LabelScheme(
        "karpenter", "karpenter.sh/capacity-type", "spot", "on-demand", "spot"
    ),
    "eks": LabelScheme("eks", "eks.amazonaws.com/capacityType", "SPOT", "ON_DEMAND", "SPOT"),
    "gke": LabelScheme("gke", "cloud.google.com/gke-spot", "true", None, "true"),
    "aks": LabelScheme("aks", "kubernetes.azure.com/scalesetpriority", "spot", None, "spot"),
}


def scheme_named(
    name: str,
    *,
    key: str | None = None,
    spot_value: str | None = None,
    on_demand_value: str | None = None,
) -> LabelScheme:
    """Look up a scheme by name, optionally overriding its key or values.

    Raises :class:`ConfigError` naming the allowed schemes for an unknown name.
    """
    base = SCHEMES.get(name)
    if base is None:
        raise ConfigError(f"label scheme {name!r} is unknown; choose one of {', '.join(SCHEMES)}")
    return LabelScheme(
        name=base.name,
        key=key or base.key,
        spot_value=spot_value or base.spot_value,
        on_demand_value=on_demand_value or base.on_demand_value,
        spot_taint_value=spot_value or base.spot_taint_value,
    )
