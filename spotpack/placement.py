"""Capacity placement: which capacity a pod gets, and the spec change that says so.

Two pure steps. :func:`decide_capacity` picks a :class:`CapacityMode` from the
detected role, the pod's policy and the per-role defaults.
:func:`capacity_change` turns that mode into node affinity and tolerations.

Rules for the spec change, each one a promise to the user:

* ``nodeSelectorTerms`` are ORed, so a required capacity constraint is added to
  **every** term; otherwise one term without it would let the pod onto spot.
* A term that already mentions the capacity key is the user's explicit choice
  and is left as written; so is a capacity key in ``spec.nodeSelector``.
* An empty term matches no node; adding a requirement to it would make it match
  some, which loosens the user's constraint, so it is left alone.
* Nothing already present is added again: a second pass changes nothing
  (``reinvocationPolicy: IfNeeded`` is safe).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spotpack.capacity import LabelScheme, OnDemandMatch
from spotpack.policy import CapacityMode, Policy
from spotpack.roles import Role, RoleClass

DEFAULT_ROLE_CAPACITY: Mapping[RoleClass, CapacityMode | None] = {
    RoleClass.COORDINATOR: CapacityMode.ON_DEMAND,
    RoleClass.CRITICAL: CapacityMode.ON_DEMAND,
    RoleClass.WORKER: CapacityMode.SPOT_PREFERRED,
    RoleClass.REPLICA: CapacityMode.SPOT_PREFERRED,
    RoleClass.STATEFUL: None,
    RoleClass.STANDALONE: None,
}
"""Per-role defaults; ``None`` leaves the pod's placement alone."""


@dataclass(frozen=True, slots=True)
class PlacementRules:
    scheme: LabelScheme
    on_demand_match: OnDemandMatch = OnDemandMatch.NOT_SPOT
    role_capacity: Mapping[RoleClass, CapacityMode | None] = field(
        default_factory=lambda: dict(DEFAULT_ROLE_CAPACITY)
    )
    preferred_weight: int = 50
    """Weight (1-100) of the injected spot preference among the scheduler's node scores."""


@dataclass(frozen=True, slots=True)
class CapacityDecision:
    mode: CapacityMode | None
    role_class: RoleClass
    warnings: tuple[str, ...] = ()


def decide_capacity(role: Role, policy: Policy, rules: PlacementRules) -> CapacityDecision:
    """Pick the capacity mode: critical pods are forced on-demand, then the pod's
    annotation, then the default of its role class (which an annotation may override)."""
    if role.role_class is RoleClass.CRITICAL:
        warnings: tuple[str, ...] = ()
        if policy.capacity not in (None, CapacityMode.ON_DEMAND):
            warnings = (
                f"critical pods never run on spot; spotpack.io/capacity={policy.capacity} "
                "was replaced by on-demand",
            )
        return CapacityDecision(CapacityMode.ON_DEMAND, RoleClass.CRITICAL, warnings)
    role_class = policy.role or role.role_class
    if policy.capacity is not None:
        return CapacityDecision(policy.capacity, role_class)
    return CapacityDecision(rules.role_capacity.get(role_class), role_class)


@dataclass(frozen=True, slots=True)
class SpecChange:
    """What to change in ``spec``; ``node_affinity`` is the new value, or None if unchanged."""

    node_affinity: dict[str, Any] | None = None
    tolerations: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.node_affinity is None and not self.tolerations


def capacity_change(
    spec: Mapping[str, Any], mode: CapacityMode, rules: PlacementRules
) -> SpecChange:
    """The node affinity and tolerations that put a pod with ``spec`` on ``mode`` capacity."""
    scheme = rules.scheme
    node_affinity = _as_map(_as_map(spec.get("affinity")).get("nodeAffinity"))
    warnings: list[str] = []
    new_affinity: dict[str, Any] | None = None
    selector = _as_map(spec.get("nodeSelector"))
    if mode in (CapacityMode.ON_DEMAND, CapacityMode.SPOT):
        requirement = (
            scheme.on_demand_requirement(rules.on_demand_match)
            if mode is CapacityMode.ON_DEMAND
            else scheme.spot_requirement()
        )
        if scheme.key in selector:
            warnings.append(
                f"spec.nodeSelector already sets {scheme.key}; the pod's own choice was kept"
            )
        else:
            new_affinity = _require(node_affinity, requirement, scheme.key, warnings)
    elif mode is CapacityMode.SPOT_PREFERRED and scheme.key not in selector:
        new_affinity = _prefer(
            node_affinity, scheme.spot_requirement(), scheme.key, rules.preferred_weight
        )
    tolerations: tuple[dict[str, Any], ...] = ()
    if mode is not CapacityMode.ON_DEMAND:
        existing = spec.get("tolerations")
        tolerations = _missing_tolerations(
            existing if isinstance(existing, list) else [], scheme.spot_tolerations()
        )
    return SpecChange(new_affinity, tolerations, tuple(warnings))


def _as_map(value: Any) -> Mapping[str, Any]:
    """Treat anything that is not an object as absent; the API server validates later."""
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mentions(term: Mapping[str, Any], key: str) -> bool:
    expressions = _as_list(term.get("matchExpressions"))
    return any(isinstance(e, Mapping) and e.get("key") == key for e in expressions)


def _require(
    node_affinity: Mapping[str, Any], requirement: dict[str, Any], key: str, warnings: list[str]
) -> dict[str, Any] | None:
    required = _as_map(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = _as_list(required.get("nodeSelectorTerms"))
    if not terms:
        updated = copy.deepcopy(dict(node_affinity))
        updated["requiredDuringSchedulingIgnoredDuringExecution"] = {
            **copy.deepcopy(dict(required)),
            "nodeSelectorTerms": [{"matchExpressions": [requirement]}],
        }
        return updated
    new_terms: list[Any] = []
    changed = False
    for term in terms:
        if not isinstance(term, Mapping) or _mentions(term, key):
            new_terms.append(term)
            continue
        if not term.get("matchExpressions") and not term.get("matchFields"):
            warnings.append("an empty nodeSelectorTerm matches no node; it was left as written")
            new_terms.append(term)
            continue
        new_term = copy.deepcopy(dict(term))
        new_term["matchExpressions"] = [*_as_list(term.get("matchExpressions")), requirement]
        new_terms.append(new_term)
        changed = True
    if not changed:
        return None
    updated = copy.deepcopy(dict(node_affinity))
    updated["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = new_terms
    return updated


def _prefer(
    node_affinity: Mapping[str, Any], requirement: dict[str, Any], key: str, weight: int
) -> dict[str, Any] | None:
    preferred = _as_list(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
    for entry in preferred:
        if isinstance(entry, Mapping) and _mentions(_as_map(entry.get("preference")), key):
            return None
    updated = copy.deepcopy(dict(node_affinity))
    updated["preferredDuringSchedulingIgnoredDuringExecution"] = [
        *copy.deepcopy(list(preferred)),
        {"weight": weight, "preference": {"matchExpressions": [requirement]}},
    ]
    return updated


def _tolerates(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether toleration ``existing`` already covers the taint ``wanted`` is meant for."""
    if existing.get("effect") not in (None, "", wanted.get("effect")):
        return False
    key = existing.get("key")
    if existing.get("operator") == "Exists":
        return key in (None, "", wanted.get("key"))
    return key == wanted.get("key") and existing.get("value") == wanted.get("value")


def _missing_tolerations(
    existing: list[Any], wanted: list[dict[str, Any]]
) -> tuple[dict[str, Any], ...]:
    present = [t for t in existing if isinstance(t, Mapping)]
    return tuple(w for w in wanted if not any(_tolerates(t, w) for t in present))
