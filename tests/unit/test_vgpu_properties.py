"""Properties of vGPU normalization over random pods.

For any pod built from GPU keys of every dialect, KAI annotations and odd
values: normalization either succeeds or raises an ``InvalidInput`` (never
anything else), and when it succeeds the patched pod is canonical (requests ==
limits, whole numbers, at most one memory key, counts in range), reads back to
the same demand, and normalizes again to no change. Typo'd GPU names
(``nvidia.com/gpumemory``) and real ones we do not translate (MIG) are kept as
written, equal on both sides of a rewritten container, and each typo is warned of.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.errors import InvalidInput
from spotpack.quantity import parse_whole
from spotpack.vgpu import NormalizeOptions, normalize_pod, read_demand, to_json_patch
from spotpack.vgpu.dialects import (
    DIALECTS,
    GPUSHARE_COUNT,
    KAI_CONTAINER,
    KAI_FRACTION,
    KAI_MEMORY,
    KAI_NUM_DEVICES,
)

OPTIONS = NormalizeOptions()
NAMES = OPTIONS.names
CANONICAL = set(NAMES.keys)
DIALECT_KEYS = sorted({k for d in DIALECTS.values() for k in d.resource_keys})
TYPOS = ["nvidia.com/gpumemory", "volcano.sh/vgpu-mem"]
KEPT = [*TYPOS, "nvidia.com/mig-1g.5gb"]
KEYS = [*NAMES.keys, *DIALECT_KEYS, *KEPT, "cpu", "memory"]

VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "3",
            "4",
            "8",
            "16",
            "17",
            "50",
            "99",
            "100",
            "101",
            "150",
            "200",
            "300",
            "1.5",
            ".5",
            "500m",
            "6k",
            "1Gi",
            "8Gi",
            "1G",
            "1e3",
            "-1",
            "abc",
            "",
            " 2 ",
            "1024",
            "4096",
        ]
    ),
    st.integers(min_value=-2, max_value=2_000_000).map(str),
    st.integers(min_value=0, max_value=20),
)
RANDOM_MAP = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)

# Plausible values per key, so that many pods get through and exercise the output.
PLAUSIBLE = {
    NAMES.count: ["1", "2", "4"],
    NAMES.memory: ["1024", "6k", "4096"],
    NAMES.memory_percent: ["25", "50", "100"],
    NAMES.cores: ["0", "30", "100"],
    "volcano.sh/vgpu-number": ["1", "2"],
    "volcano.sh/vgpu-memory": ["1000", "2048"],
    "volcano.sh/vgpu-memory-percentage": ["20", "50"],
    "volcano.sh/vgpu-cores": ["10", "100"],
    "koordinator.sh/gpu-memory": ["8Gi", "4Gi", "1G"],
    "koordinator.sh/gpu-memory-ratio": ["50", "100", "200"],
    "koordinator.sh/gpu-core": ["50", "100", "200"],
    "koordinator.sh/gpu.shared": ["1", "2"],
    "koordinator.sh/gpu": ["50", "100", "200"],
    "aliyun.com/gpu-mem": ["2", "8", "1.5"],
    "aliyun.com/gpu-count": ["1", "2"],
    "aliyun.com/gpu-core.percentage": ["30"],
}
DIALECT_GROUPS = [
    list(NAMES.keys),
    *(list(d.resource_keys) for d in DIALECTS.values() if d.resource_keys),
]


@st.composite
def plausible_map(draw: st.DrawFn) -> dict[str, Any]:
    group = draw(st.sampled_from(DIALECT_GROUPS))
    keys = draw(st.lists(st.sampled_from(group), min_size=1, max_size=3, unique=True))
    out: dict[str, Any] = {"cpu": "1"} if draw(st.booleans()) else {}
    for key in keys:
        out[key] = draw(st.sampled_from(PLAUSIBLE[key]))
    if draw(st.integers(0, 3)) == 0:
        out[draw(st.sampled_from(KEPT))] = draw(st.sampled_from(["1", "8192"]))
    return out


RESOURCE_MAP = st.one_of(RANDOM_MAP, *[plausible_map()] * 4)
ANNOTATION_VALUES = st.sampled_from(
    ["0.5", "0.333", "1", "0", "0.001", "2000", "2", "17", "abc", "", "c0", "i0", "nope"]
)
ANNOTATIONS = st.dictionaries(
    st.sampled_from([KAI_FRACTION, KAI_MEMORY, KAI_NUM_DEVICES, KAI_CONTAINER, "other"]),
    ANNOTATION_VALUES,
    max_size=3,
)
LABELS = st.dictionaries(
    st.sampled_from([GPUSHARE_COUNT, "app"]), st.sampled_from(["1", "2", "x"]), max_size=1
)


@st.composite
def containers(draw: st.DrawFn, prefix: str, min_size: int, max_size: int) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(min_value=min_size, max_value=max_size))):
        container: dict[str, Any] = {"name": f"{prefix}{i}"}
        shape = draw(
            st.sampled_from(["same", "same", "same", "limits", "requests", "both", "none"])
        )
        limits = draw(RESOURCE_MAP)
        if shape == "both":
            container["resources"] = {"limits": limits, "requests": draw(RESOURCE_MAP)}
        elif shape == "same":
            container["resources"] = {"limits": limits, "requests": dict(limits)}
        elif shape == "limits":
            container["resources"] = {"limits": limits}
        elif shape == "requests":
            container["resources"] = {"requests": limits}
        if prefix == "i" and draw(st.booleans()):
            container["restartPolicy"] = "Always"
        out.append(container)
    return out


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p"}
    annotations: dict[str, str] = draw(st.one_of(st.just({}), ANNOTATIONS))
    keep_empty: bool = draw(st.booleans())
    if annotations or keep_empty:
        metadata["annotations"] = annotations
    labels = draw(LABELS)
    if labels:
        metadata["labels"] = labels
    spec: dict[str, Any] = {"containers": draw(containers("c", 1, 2))}
    init = draw(containers("i", 0, 1))
    if init:
        spec["initContainers"] = init
    return {"metadata": metadata, "spec": spec}


def _check_canonical(container: dict[str, Any], original: dict[str, Any]) -> None:
    resources = container["resources"]
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    gpu_limits = {k: v for k, v in limits.items() if k in CANONICAL}
    gpu_requests = {k: v for k, v in requests.items() if k in CANONICAL}
    assert gpu_limits.keys() == gpu_requests.keys()
    assert NAMES.count in gpu_limits
    assert not (NAMES.memory in gpu_limits and NAMES.memory_percent in gpu_limits)
    assert not set(DIALECT_KEYS) & (set(limits) | set(requests))
    old = original.get("resources") or {}
    written = {*(old.get("limits") or {}).values(), *(old.get("requests") or {}).values()}
    for key, value in gpu_limits.items():
        number = parse_whole(value, key)
        assert number == parse_whole(gpu_requests[key], key)
        if key == NAMES.count:
            assert 1 <= number <= OPTIONS.max_vgpus_per_container
        # Values are integer strings, unless kept as the user wrote them.
        for v in (value, gpu_requests[key]):
            assert (isinstance(v, str) and v.isdigit()) or v in written


def _check_kept(container: dict[str, Any], original: dict[str, Any]) -> None:
    """Kept GPU names: as written; a side that lacked one got the other side's value."""
    resources, old = container["resources"], original.get("resources") or {}
    old_limits, old_requests = old.get("limits") or {}, old.get("requests") or {}
    for key in KEPT:
        if key in old_limits and key in old_requests:
            assert resources["limits"][key] == old_limits[key]
            assert resources["requests"][key] == old_requests[key]
        elif key in old_limits or key in old_requests:
            value = old_limits.get(key, old_requests.get(key))
            assert resources["limits"][key] == resources["requests"][key] == value


def _check(pod: dict[str, Any]) -> bool:
    """Normalize ``pod`` and check every property; False when it was rejected."""
    before = copy.deepcopy(pod)
    try:
        result = normalize_pod(pod, OPTIONS)
    except InvalidInput:
        return False
    assert pod == before
    ops = to_json_patch(result)
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, ops)
    for change in result.changes:
        group = "initContainers" if change.init else "containers"
        _check_canonical(patched["spec"][group][change.index], pod["spec"][group][change.index])
        _check_kept(patched["spec"][group][change.index], pod["spec"][group][change.index])
    present = {
        key
        for group in ("initContainers", "containers")
        for c in pod["spec"].get(group, [])
        for side in (c.get("resources") or {}).values()
        for key in side
    }
    for typo in present & set(TYPOS):
        assert any(f"unknown GPU resource {typo} " in w for w in result.warnings)
    assert read_demand(patched, NAMES) == result.demand
    again = normalize_pod(patched, OPTIONS)
    assert again.changes == ()
    assert dict(again.annotations) == {}
    assert again.demand == result.demand
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_normalize_is_total_canonical_and_idempotent(pod: dict[str, Any]) -> None:
    _check(pod)


KAI_VALID: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.fixed_dictionaries({KAI_FRACTION: st.sampled_from(["0.5", "0.333", "1", "0.001"])}),
    st.fixed_dictionaries(
        {KAI_MEMORY: st.sampled_from(["512", "2000"]), KAI_NUM_DEVICES: st.sampled_from(["1", "2"])}
    ),
)


@st.composite
def plausible_pods(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(KAI_VALID)
    limits = {} if annotations else draw(plausible_map())
    resources = (
        {"limits": limits, "requests": dict(limits)} if draw(st.booleans()) else {"limits": limits}
    )
    return {
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"containers": [{"name": "c0", "resources": resources}]},
    }


@settings(max_examples=300, deadline=None)
@given(plausible_pods())
def test_plausible_pods_are_canonical_and_idempotent(pod: dict[str, Any]) -> None:
    _check(pod)


@settings(max_examples=200, deadline=None)
@given(RESOURCE_MAP, st.one_of(st.none(), RESOURCE_MAP))
def test_read_demand_only_raises_invalid_input(limits: dict[str, Any], requests: Any) -> None:
    resources: dict[str, Any] = {"limits": limits}
    if requests is not None:
        resources["requests"] = requests
    pod = {"spec": {"containers": [{"name": "c", "resources": resources}]}}
    try:
        demand = read_demand(pod)
    except InvalidInput:
        return
    for c in demand.containers:
        assert 1 <= c.request.count <= 16
