"""Signals that a node is about to go away, as the tools in the field mark them.

A node carrying any of these taints will be drained soon: scheduling a pod
there only to lose it minutes later wastes the pod's start-up and, for a Spark
driver, the whole job. Preemption cannot fix that, so the extender reports
such nodes as unresolvable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPOTPACK_TAINT = "spotpack.io/interruption"
"""Ours: set by the provisioner on a spot warning or rebalance recommendation."""

INTERRUPTION_TAINTS: Mapping[str, str] = {
    SPOTPACK_TAINT: "spotpack received an interruption notice",
    "karpenter.sh/disrupted": "Karpenter is disrupting the node",
    "karpenter.sh/disruption": "Karpenter is disrupting the node",
    "aws-node-termination-handler/spot-itn": "AWS spot interruption notice",
    "aws-node-termination-handler/rebalance-recommendation": "AWS rebalance recommendation",
    "aws-node-termination-handler/asg-lifecycle-termination": "AWS Auto Scaling termination",
    "aws-node-termination-handler/scheduled-maintenance": "AWS scheduled maintenance",
    "cloud.google.com/impending-node-termination": "GCE preemption notice",
    "ToBeDeletedByClusterAutoscaler": "cluster-autoscaler is removing the node",
}


def interruption_reason(taints: Any) -> str | None:
    """Why the node is going away, or None; ``taints`` is ``node.spec.taints``."""
    if not isinstance(taints, list):
        return None
    for taint in taints:
        if isinstance(taint, Mapping):
            reason = INTERRUPTION_TAINTS.get(str(taint.get("key")))
            if reason is not None:
                return f"{reason} (taint {taint.get('key')})"
    return None
