"""Capacity decisions and the affinity/toleration changes that carry them."""

from __future__ import annotations

import copy

import pytest

from spotpack.capacity import SCHEMES, OnDemandMatch, scheme_named
from spotpack.errors import ConfigError
from spotpack.placement import PlacementRules, capacity_change, decide_capacity
from spotpack.policy import CapacityMode, Policy
from spotpack.roles import Role, RoleClass

KARPENTER = PlacementRules(scheme=SCHEMES["karpenter"])
NOT_SPOT = {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
SPOT = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
SPOT_TOLERATION = {
    "key": "karpenter.sh/capacity-type",
    "operator": "Equal",
    "value": "spot",
    "effect": "NoSchedule",
}

DRIVER = Role("spark", "driver", RoleClass.COORDINATOR)
EXECUTOR = Role("spark", "executor", RoleClass.WORKER)
CRITICAL = Role("kubernetes", "critical", RoleClass.CRITICAL)
BARE = Role("pod", "standalone", RoleClass.STANDALONE)
STATEFUL = Role("statefulset", "member", RoleClass.STATEFUL)

DECISIONS = [
    (DRIVER, Policy(), CapacityMode.ON_DEMAND),
    (EXECUTOR, Policy(), CapacityMode.SPOT_PREFERRED),
    (EXECUTOR, Policy(capacity=CapacityMode.SPOT), CapacityMode.SPOT),
    (DRIVER, Policy(capacity=CapacityMode.ANY), CapacityMode.ANY),
    (BARE, Policy(), None),
    (STATEFUL, Policy(), None),
    (BARE, Policy(role=RoleClass.WORKER), CapacityMode.SPOT_PREFERRED),
    (EXECUTOR, Policy(role=RoleClass.COORDINATOR), CapacityMode.ON_DEMAND),
    (CRITICAL, Policy(), CapacityMode.ON_DEMAND),
    (CRITICAL, Policy(capacity=CapacityMode.SPOT), CapacityMode.ON_DEMAND),
    (CRITICAL, Policy(role=RoleClass.WORKER), CapacityMode.ON_DEMAND),
]


@pytest.mark.parametrize(("role", "policy", "mode"), DECISIONS)
def test_decide_capacity(role, policy, mode) -> None:
    assert decide_capacity(role, policy, KARPENTER).mode == mode


def test_critical_spot_request_is_replaced_with_warning() -> None:
    decision = decide_capacity(CRITICAL, Policy(capacity=CapacityMode.SPOT), KARPENTER)
    assert decision.warnings and "never run on spot" in decision.warnings[0]


def test_role_defaults_are_configurable() -> None:
    rules = PlacementRules(
        scheme=SCHEMES["karpenter"], role_capacity={RoleClass.WORKER: CapacityMode.SPOT}
    )
    assert decide_capacity(EXECUTOR, Policy(), rules).mode is CapacityMode.SPOT


def _required(change):
    return change.node_affinity["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]


def test_on_demand_without_affinity_adds_one_term() -> None:
    change = capacity_change({}, CapacityMode.ON_DEMAND, KARPENTER)
    assert _required(change) == [{"matchExpressions": [NOT_SPOT]}]
    assert change.tolerations == ()


def test_required_is_appended_to_every_term() -> None:
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
    ]
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    }
    before = copy.deepcopy(spec)
    change = capacity_change(spec, CapacityMode.ON_DEMAND, KARPENTER)
    new_terms = _required(change)
    assert len(new_terms) == 2
    assert all(NOT_SPOT in t["matchExpressions"] for t in new_terms)
    assert new_terms[0]["matchExpressions"][0] == {"key": "zone", "operator": "In", "values": ["a"]}
    assert new_terms[1]["matchFields"] == terms[1]["matchFields"]
    assert spec == before, "input must not be mutated"


def test_user_capacity_term_is_never_changed() -> None:
    user = {"matchExpressions": [SPOT]}
    other = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [user, other]
                }
            }
        }
    }
    terms = _required(capacity_change(spec, CapacityMode.ON_DEMAND, KARPENTER))
    assert terms[0] == user
    assert NOT_SPOT in terms[1]["matchExpressions"]


def test_empty_term_is_not_loosened() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}
            }
        }
    }
    change = capacity_change(spec, CapacityMode.ON_DEMAND, KARPENTER)
    assert change.node_affinity is None
    assert "empty nodeSelectorTerm" in change.warnings[0]


def test_node_selector_with_capacity_key_is_respected() -> None:
    spec = {"nodeSelector": {"karpenter.sh/capacity-type": "spot"}}
    change = capacity_change(spec, CapacityMode.ON_DEMAND, KARPENTER)
    assert change.node_affinity is None
    assert "nodeSelector" in change.warnings[0]


def test_spot_preferred_adds_preference_and_toleration() -> None:
    change = capacity_change({"tolerations": []}, CapacityMode.SPOT_PREFERRED, KARPENTER)
    assert change.node_affinity == {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [SPOT]}}
        ]
    }
    assert change.tolerations == (SPOT_TOLERATION,)


def test_spot_required() -> None:
    change = capacity_change({}, CapacityMode.SPOT, KARPENTER)
    assert _required(change) == [{"matchExpressions": [SPOT]}]
    assert change.tolerations == (SPOT_TOLERATION,)


def test_any_adds_only_tolerations() -> None:
    change = capacity_change({}, CapacityMode.ANY, KARPENTER)
    assert change.node_affinity is None
    assert change.tolerations == (SPOT_TOLERATION,)


@pytest.mark.parametrize(
    "existing",
    [
        [SPOT_TOLERATION],
        [{"operator": "Exists"}],
        [{"key": "karpenter.sh/capacity-type", "operator": "Exists"}],
        [{"key": "karpenter.sh/capacity-type", "operator": "Exists", "effect": "NoSchedule"}],
    ],
)
def test_existing_tolerations_are_not_duplicated(existing) -> None:
    assert (
        capacity_change({"tolerations": existing}, CapacityMode.SPOT, KARPENTER).tolerations == ()
    )


def test_toleration_for_other_effect_does_not_count() -> None:
    existing = [{"key": "karpenter.sh/capacity-type", "operator": "Exists", "effect": "NoExecute"}]
    assert capacity_change({"tolerations": existing}, CapacityMode.SPOT, KARPENTER).tolerations == (
        SPOT_TOLERATION,
    )


@pytest.mark.parametrize("mode", list(CapacityMode))
def test_second_pass_changes_nothing(mode) -> None:
    spec: dict = {}
    change = capacity_change(spec, mode, KARPENTER)
    if change.node_affinity is not None:
        spec["affinity"] = {"nodeAffinity": change.node_affinity}
    spec["tolerations"] = list(change.tolerations)
    assert capacity_change(spec, mode, KARPENTER).empty


SCHEME_TABLE = [
    (
        "karpenter",
        OnDemandMatch.EXACT,
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
    ),
    (
        "eks",
        OnDemandMatch.EXACT,
        {"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["ON_DEMAND"]},
    ),
    (
        "eks",
        OnDemandMatch.NOT_SPOT,
        {"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]},
    ),
    (
        "gke",
        OnDemandMatch.EXACT,
        {"key": "cloud.google.com/gke-spot", "operator": "NotIn", "values": ["true"]},
    ),
    (
        "aks",
        OnDemandMatch.NOT_SPOT,
        {"key": "kubernetes.azure.com/scalesetpriority", "operator": "NotIn", "values": ["spot"]},
    ),
]


@pytest.mark.parametrize(("name", "match", "requirement"), SCHEME_TABLE)
def test_schemes_on_demand(name, match, requirement) -> None:
    rules = PlacementRules(scheme=SCHEMES[name], on_demand_match=match)
    assert _required(capacity_change({}, CapacityMode.ON_DEMAND, rules)) == [
        {"matchExpressions": [requirement]}
    ]


def test_aks_spot_toleration() -> None:
    rules = PlacementRules(scheme=SCHEMES["aks"])
    assert capacity_change({}, CapacityMode.SPOT, rules).tolerations == (
        {
            "key": "kubernetes.azure.com/scalesetpriority",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        },
    )


def test_custom_scheme_and_unknown_name() -> None:
    custom = scheme_named("karpenter", key="example.com/lifecycle", spot_value="preemptible")
    assert custom.spot_requirement() == {
        "key": "example.com/lifecycle",
        "operator": "In",
        "values": ["preemptible"],
    }
    with pytest.raises(ConfigError, match="karpenter, eks, gke, aks"):
        scheme_named("openstack")
