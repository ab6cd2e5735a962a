"""A pod as the scheduling decisions see it: GPU demand, GPU policy, capacity need.

Read once per pod from the object the scheduler sends (and cached by uid in
the extender for prioritize and bind, which get the same pod again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spotpack import policy as keys
from spotpack.capacity import LabelScheme
from spotpack.policy import CapacityMode, GPUPolicy, parse_pod_policy
from spotpack.roles import is_critical
from spotpack.vgpu.model import PodGPUDemand, read_demand


@dataclass(frozen=True, slots=True)
class PodView:
    uid: str
    namespace: str
    name: str
    demand: PodGPUDemand
    gpu_policy: GPUPolicy
    gpu_include: tuple[str, ...]
    gpu_exclude: tuple[str, ...]
    needs_on_demand: bool
    """Must not run on spot (critical, a driver, or its affinity says so)."""
    needs_spot: bool

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _term_requirement(term: Mapping[str, Any], scheme: LabelScheme) -> str | None:
    """What one nodeSelectorTerm says about spot: "spot", "not-spot" or None."""
    for expr in term.get("matchExpressions") or []:
        if not isinstance(expr, Mapping) or expr.get("key") != scheme.key:
            continue
        values = expr.get("values") or []
        operator = expr.get("operator")
        if operator == "In":
            return (
                "spot"
                if values == [scheme.spot_value]
                else ("not-spot" if scheme.spot_value not in values else None)
            )
        if operator == "NotIn" and scheme.spot_value in values:
            return "not-spot"
        if operator == "DoesNotExist":
            return "not-spot"
    return None


def affinity_capacity(spec: Mapping[str, Any], scheme: LabelScheme) -> str | None:
    """The capacity the pod's required node affinity allows: every ORed term must agree."""
    required = _map(
        _map(_map(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    terms = [t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)]
    selector = _map(spec.get("nodeSelector")).get(scheme.key)
    if selector is not None:
        return "spot" if selector == scheme.spot_value else "not-spot"
    if not terms:
        return None
    found = {_term_requirement(t, scheme) for t in terms}
    return found.pop() if len(found) == 1 else None


def pod_view(pod: Mapping[str, Any], scheme: LabelScheme) -> PodView:
    """Read a pod; raises InvalidInput for an invalid vGPU request or policy annotation."""
    metadata = _map(pod.get("metadata"))
    spec = _map(pod.get("spec"))
    annotations = {str(k): str(v) for k, v in _map(metadata.get("annotations")).items()}
    policy = parse_pod_policy(annotations, {})
    from_affinity = affinity_capacity(spec, scheme)
    applied = annotations.get(keys.CAPACITY_APPLIED) or annotations.get(keys.CAPACITY)
    needs_on_demand = (
        is_critical(pod) or from_affinity == "not-spot" or applied == CapacityMode.ON_DEMAND
    )
    needs_spot = not needs_on_demand and (from_affinity == "spot" or applied == CapacityMode.SPOT)
    return PodView(
        uid=str(metadata.get("uid", "")),
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        demand=read_demand(pod),
        gpu_policy=policy.gpu_policy or GPUPolicy.BINPACK,
        gpu_include=policy.gpu_include,
        gpu_exclude=policy.gpu_exclude,
        needs_on_demand=needs_on_demand,
        needs_spot=needs_spot,
    )
