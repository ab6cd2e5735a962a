"""Policy annotations: parsing, validation messages, namespace defaults."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotpack.errors import InvalidAnnotation
from spotpack.policy import (
    KNOWN_KEYS,
    CapacityMode,
    GPUPolicy,
    Policy,
    gpu_model_warnings,
    is_true,
    parse_namespace_policy,
    parse_pod_policy,
    unknown_keys,
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


OPT_OUT_INVALID = ["yes", "1", "no", "0", "on", "y", ""]


@pytest.mark.parametrize("value", OPT_OUT_INVALID)
def test_opt_out_admits_only_true_or_false(value) -> None:
    """README and the webhook's selectors say true/false; admission refuses anything else."""
    with pytest.raises(InvalidAnnotation, match="allowed: true, false"):
        parse_pod_policy({"spotpack.io/opt-out": value}, {}, strict=True)
    with pytest.raises(InvalidAnnotation, match="allowed: true, false"):
        parse_pod_policy({}, {"spotpack.io/opt-out": value}, strict=True)


LEGACY = [("yes", True), ("1", True), ("no", False), ("0", False), (" Yes ", True)]


@pytest.mark.parametrize(("value", "opt_out"), LEGACY)
def test_readers_still_read_legacy_flags(value, opt_out) -> None:
    """Pods admitted by 0.1.0 (or never admitted) read as before in the extender/provisioner."""
    assert parse_pod_policy({"spotpack.io/opt-out": value}, {}).opt_out is opt_out
    assert parse_pod_policy({}, {"spotpack.io/opt-out": value}).opt_out is opt_out


@pytest.mark.parametrize("value", ["maybe", "on", ""])
def test_readers_refuse_what_was_never_valid(value) -> None:
    with pytest.raises(InvalidAnnotation, match="allowed: true, false"):
        parse_pod_policy({"spotpack.io/opt-out": value}, {})


@pytest.mark.parametrize(("value", "opt_out"), [("true", True), (" TRUE ", True), ("False", False)])
def test_opt_out_true_false_any_case(value, opt_out) -> None:
    assert parse_pod_policy({"spotpack.io/opt-out": value}, {}, strict=True).opt_out is opt_out
    assert is_true(value) is opt_out


def test_namespace_opt_out_invalid_is_a_warning() -> None:
    parsed = parse_namespace_policy({"spotpack.io/opt-out": "yes"}, "team-a")
    assert not parsed.policy.opt_out
    assert parsed.warnings == (
        "namespace team-a annotation spotpack.io/opt-out='yes' is not valid; "
        "allowed: true, false; the default was ignored",
    )


UNKNOWN_KEYS = [
    # (annotation key, expected warning or None)
    (
        "spotpack.io/capcity",
        "unknown annotation spotpack.io/capcity (did you mean spotpack.io/capacity?); ignored",
    ),
    (
        "spotpack.io/gpu-polcy",
        "unknown annotation spotpack.io/gpu-polcy (did you mean spotpack.io/gpu-policy?); ignored",
    ),
    (
        "spotpack.io/optout",
        "unknown annotation spotpack.io/optout (did you mean spotpack.io/opt-out?); ignored",
    ),
    (
        "spotpack.io/gpu-includes",
        "unknown annotation spotpack.io/gpu-includes (did you mean spotpack.io/gpu-include?); ignored",
    ),
    ("spotpack.io/zzz", "unknown annotation spotpack.io/zzz; ignored"),
    (
        "spotpak.io/capacity",
        "unknown annotation spotpak.io/capacity (did you mean spotpack.io/capacity?); ignored",
    ),
    (
        "spotpack.oi/role",
        "unknown annotation spotpack.oi/role (did you mean spotpack.io/role?); ignored",
    ),
    # Known: what users write, what spotpack writes, spotpack's node keys.
    *((key, None) for key in sorted(KNOWN_KEYS)),
    # Not ours.
    ("sim.spotpack.io/workload", None),
    ("spark.io/capacity", None),
    ("kubectl.kubernetes.io/last-applied-configuration", None),
    ("capacity", None),
]


@pytest.mark.parametrize(("key", "warning"), UNKNOWN_KEYS)
def test_unknown_keys_are_warnings_naming_the_nearest(key, warning) -> None:
    expected = () if warning is None else (warning,)
    assert unknown_keys({key: "spot"}) == expected
    if warning is not None:
        assert parse_pod_policy({key: "spot"}, {}) == Policy(), "an unknown key is never refused"
        namespaced = parse_namespace_policy({key: "spot"}, "team-a")
        assert namespaced.warnings == (f"namespace team-a: {warning}",)


def test_unknown_keys_also_known() -> None:
    assert unknown_keys({"spotpack.io/my-source": "x"}, also_known=("spotpack.io/my-source",)) == ()
    assert unknown_keys({"spotpack.io/my-source": "x"}) != ()


def test_known_keys_match_the_modules_that_use_them() -> None:
    """KNOWN_KEYS spells keys of modules policy.py cannot import (they import it)."""
    from provisioner.views import DO_NOT_DISRUPT
    from spotpack.cloud.base import CLAIM_TAG, CLUSTER_TAG, MANAGED_LABEL
    from spotpack.cloud.local import INSTANCE_ID_ANNOTATION, LAUNCHED_AT_ANNOTATION
    from spotpack.gpu.assignment import GPU_ASSIGNMENT
    from spotpack.gpu.inventory import GPU_CORDON
    from spotpack.interruption import SPOTPACK_TAINT
    from spotpack.vgpu.options import SOURCE_ANNOTATION

    used = {
        DO_NOT_DISRUPT[0],
        CLAIM_TAG,
        CLUSTER_TAG,
        MANAGED_LABEL,
        INSTANCE_ID_ANNOTATION,
        LAUNCHED_AT_ANNOTATION,
        GPU_ASSIGNMENT,
        GPU_CORDON,
        SPOTPACK_TAINT,
        SOURCE_ANNOTATION,
    }
    assert used <= KNOWN_KEYS


MODELS = ("A100", "A10G", "H100", "L4", "L40S", "T4", "V100")
KNOWN_MODELS = "known: A100, A10G, H100, L4, L40S, T4, V100"
GPU_MODEL_CASES = [
    # (policy, warnings)
    (Policy(gpu_include=("A10G", "L4")), ()),
    (Policy(gpu_include=("a10g",)), ()),  # case-insensitive
    (Policy(gpu_include=("A10",)), ()),  # a substring, as the extender matches
    (Policy(gpu_include=("L40",)), ()),
    (
        Policy(gpu_include=("A10GG",)),
        (f"spotpack.io/gpu-include: A10GG matches no GPU model in the catalog ({KNOWN_MODELS})",),
    ),
    (
        Policy(gpu_include=("A10G", "Tesla T4")),
        (
            f"spotpack.io/gpu-include: Tesla T4 matches no GPU model in the catalog ({KNOWN_MODELS})",
        ),
    ),
    (
        Policy(gpu_exclude=("T44",)),
        (f"spotpack.io/gpu-exclude: T44 matches no GPU model in the catalog ({KNOWN_MODELS})",),
    ),
    (Policy(), ()),
]


@pytest.mark.parametrize(("policy", "warnings"), GPU_MODEL_CASES)
def test_gpu_model_warnings(policy, warnings) -> None:
    assert gpu_model_warnings(policy, MODELS) == warnings
    assert gpu_model_warnings(policy, ()) == (), "no catalog, no check"


def test_gpu_model_warnings_list_is_capped() -> None:
    models = tuple(f"M{i:02}" for i in range(20))
    (warning,) = gpu_model_warnings(Policy(gpu_include=("X",)), models, "namespace a default ")
    assert warning.startswith("namespace a default spotpack.io/gpu-include: X matches no GPU")
    assert warning.endswith("M10, M11, ...)")
