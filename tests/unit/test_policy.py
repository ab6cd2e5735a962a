"""Policy annotations: parsing, validation messages, namespace defaults."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotpack.errors import InvalidAnnotation
from spotpack.policy import (
    CapacityMode,
    GPUPolicy,
    Policy,
    parse_namespace_policy,
    parse_pod_policy,
)
from spotpack.roles import RoleClass

VALID = [
    ({"spotpack.io/capacity": "spot"}, Policy(capacity=CapacityMode.SPOT)),
    ({"spotpack.io/capacity": " On-Demand "}, Policy(capacity=CapacityMode.ON_DEMAND)),
    ({"spotpack.io/capacity": "spot-preferred"}, Policy(capacity=CapacityMode.SPOT_PREFERRED)),
    ({"spotpack.io/capacity": "any"}, Policy(capacity=CapacityMode.ANY)),
    ({"spotpack.io/role": "worker"}, Policy(role=RoleClass.WORKER)),
    ({"spotpack.io/opt-out": "true"}, Policy(opt_out=True)),
    ({"spotpack.io/opt-out": "false"}, Policy()),
    ({"spotpack.io/gpu-policy": "spread"}, Policy(gpu_policy=GPUPolicy.SPREAD)),
    ({"spotpack.io/gpu-include": "A10G, L4"}, Policy(gpu_include=("A10G", "L4"))),
    ({"spotpack.io/gpu-exclude": "T4"}, Policy(gpu_exclude=("T4",))),
    ({"other.io/capacity": "nonsense"}, Policy()),
]


@pytest.mark.parametrize(("annotations", "expected"), VALID)
def test_valid(annotations, expected) -> None:
    assert parse_pod_policy(annotations, {}) == expected


INVALID = [
    ("spotpack.io/capacity", "cheap", "spot, spot-preferred, on-demand, any"),
    ("spotpack.io/role", "boss", "coordinator, worker"),
    ("spotpack.io/opt-out", "maybe", "true, false"),
    ("spotpack.io/gpu-policy", "pack", "binpack, spread"),
    ("spotpack.io/gpu-include", "A10G,,L4", "comma-separated"),
    ("spotpack.io/gpu-exclude", "$(rm)", "comma-separated"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), INVALID)
def test_invalid_names_field_and_allowed_values(key, value, allowed) -> None:
    with pytest.raises(InvalidAnnotation) as info:
        parse_pod_policy({key: value}, {})
    message = str(info.value)
    assert key in message
    assert repr(value) in message
    assert allowed in message


def test_opt_out_label() -> None:
    assert parse_pod_policy({}, {"spotpack.io/opt-out": "true"}).opt_out


def test_pod_over_namespace() -> None:
    pod = Policy(capacity=CapacityMode.SPOT)
    namespace = Policy(
        capacity=CapacityMode.ON_DEMAND, gpu_policy=GPUPolicy.SPREAD, gpu_exclude=("T4",)
    )
    merged = pod.over(namespace)
    assert merged == Policy(
        capacity=CapacityMode.SPOT, gpu_policy=GPUPolicy.SPREAD, gpu_exclude=("T4",)
    )


def test_namespace_invalid_values_are_warnings() -> None:
    parsed = parse_namespace_policy(
        {
            "spotpack.io/capacity": "cheap",
            "spotpack.io/gpu-policy": "spread",
            "spotpack.io/role": "worker",
        },
        "team-a",
    )
    assert parsed.policy == Policy(gpu_policy=GPUPolicy.SPREAD)
    assert any(
        "namespace team-a annotation spotpack.io/capacity='cheap'" in w for w in parsed.warnings
    )
    assert any("spotpack.io/role" in w for w in parsed.warnings)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "spotpack.io/capacity",
                "spotpack.io/role",
                "spotpack.io/opt-out",
                "spotpack.io/gpu-policy",
                "spotpack.io/gpu-include",
                "x",
            ]
        ),
        st.text(max_size=30),
    )
)
def test_random_annotations_parse_or_raise_invalid_annotation(annotations) -> None:
    try:
        parse_pod_policy(annotations, {})
    except InvalidAnnotation as exc:
        assert exc.key in annotations
    parsed = parse_namespace_policy(annotations, "ns")
    assert isinstance(parsed.policy, Policy)
