"""vGPU normalization: every dialect to canonical HAMi form, table-driven.

Each row is one container (its limits, with requests equal as the API server
defaults them, plus pod annotations/labels) and either the canonical GPU
resources expected in both limits and requests, or a substring of the error.
Every successful row is also checked for idempotence: the patch applied with
``jsonpatch`` and the result normalized again gives no change.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from spotpack.errors import ConfigError, InvalidGPURequest
from spotpack.vgpu import (
    NormalizeOptions,
    ResourceNames,
    VGPURequest,
    normalize_pod,
    read_demand,
    resource_ops,
    to_json_patch,
)
from spotpack.vgpu.dialects import DIALECTS

PROTOCOL = Path("/work/shared/data/protocol")
CANONICAL = (
    "nvidia.com/gpu",
    "nvidia.com/gpumem",
    "nvidia.com/gpumem-percentage",
    "nvidia.com/gpucores",
)
DIALECT_KEYS = {k for d in DIALECTS.values() for k in d.resource_keys}


@dataclass(frozen=True)
class Row:
    id: str
    limits: dict[str, Any]
    expect: dict[str, Any] | None = None
    error: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    warn: str | None = None
    dialect: str | None = None


def _pod(row: Row) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "namespace": "default"}
    if row.annotations:
        metadata["annotations"] = dict(row.annotations)
    if row.labels:
        metadata["labels"] = dict(row.labels)
    resources = {"limits": dict(row.limits), "requests": dict(row.limits)}
    return {"metadata": metadata, "spec": {"containers": [{"name": "c", "resources": resources}]}}


def _gpu(side: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in side.items() if k in CANONICAL}


def _apply(pod: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(pod, ops)
    return result


def _assert_idempotent(
    pod: dict[str, Any], options: NormalizeOptions | None = None
) -> dict[str, Any]:
    options = options or NormalizeOptions()
    first = normalize_pod(pod, options)
    patched = _apply(pod, to_json_patch(first))
    again = normalize_pod(patched, options)
    assert again.changes == ()
    assert dict(again.annotations) == {}
    assert (
        read_demand(patched, options.names, max_vgpus=options.max_vgpus_per_container)
        == first.demand
    )
    return patched


HAMI_ROWS = [
    Row("bare count", {"nvidia.com/gpu": "2"}, {"nvidia.com/gpu": "2"}, warn="means 2 whole cards"),
    Row("bare count 1", {"nvidia.com/gpu": 1}, {"nvidia.com/gpu": 1}, warn="means 1 whole card"),
    Row(
        "mem",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"},
    ),
    Row(
        "mem only defaults count",
        {"nvidia.com/gpumem": "3000"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000"},
        warn="nvidia.com/gpumem without nvidia.com/gpu asks for one vGPU; nvidia.com/gpu set to 1",
    ),
    Row(
        "percent only defaults count",
        {"nvidia.com/gpumem-percentage": "50", "nvidia.com/gpucores": "20"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50", "nvidia.com/gpucores": "20"},
        warn="nvidia.com/gpumem-percentage without nvidia.com/gpu",
    ),
    Row(
        "count and cores",
        {"nvidia.com/gpu": "2", "nvidia.com/gpucores": "50"},
        {"nvidia.com/gpu": "2", "nvidia.com/gpucores": "50"},
        warn="takes its card's whole memory (2 whole cards)",
    ),
    Row(
        "cores 0",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024", "nvidia.com/gpucores": "0"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024", "nvidia.com/gpucores": "0"},
    ),
    Row("count 16", {"nvidia.com/gpu": "16"}, {"nvidia.com/gpu": "16"}),
    Row(
        "zero count is no GPU",
        {"nvidia.com/gpu": "0"},
        {"nvidia.com/gpu": "0"},
        warn="asks for no GPU",
    ),
    Row(
        "mem and percent",
        {"nvidia.com/gpumem": "1", "nvidia.com/gpumem-percentage": "1"},
        error="both set",
    ),
    Row(
        "cores only",
        {"nvidia.com/gpucores": "50"},
        error="nvidia.com/gpucores alone is a cores-only request",
    ),
    Row(
        "count 1.5", {"nvidia.com/gpu": "1.5"}, error="nvidia.com/gpu: '1.5' is not a whole number"
    ),
    Row(
        "count 500m",
        {"nvidia.com/gpu": "500m"},
        error="nvidia.com/gpu: '500m' is not a whole number",
    ),
    Row(
        "count 17",
        {"nvidia.com/gpu": "17"},
        error="'17' is out of range; allowed: a whole number of vGPUs from 1 to 16",
    ),
    Row("negative", {"nvidia.com/gpu": "-1"}, error="'-1' is negative"),
    Row("garbage", {"nvidia.com/gpu": "two"}, error="'two' is not a Kubernetes quantity"),
    Row(
        "mem 0",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "0"},
        error="nvidia.com/gpumem: '0' is out of range",
    ),
    Row(
        "mem too big",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8Gi"},
        error="MiB per vGPU from 1 to 1048576",
    ),
    Row(
        "percent 101",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "101"},
        error="from 1 to 100",
    ),
    Row(
        "cores 101",
        {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "101"},
        error="0 means no SM reservation",
    ),
]

VOLCANO_ROWS = [
    Row(
        "number and memory",
        {"volcano.sh/vgpu-number": "2", "volcano.sh/vgpu-memory": "4096"},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4096"},
        warn="translated volcano (volcano.sh/vgpu-number=2, volcano.sh/vgpu-memory=4096)",
        dialect="volcano",
    ),
    Row(
        "percentage defaults count",
        {"volcano.sh/vgpu-memory-percentage": "50"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
        warn="volcano.sh/vgpu-memory-percentage without volcano.sh/vgpu-number asks for one vGPU",
        dialect="volcano",
    ),
    Row(
        "number and cores",
        {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-cores": "30"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "30"},
        dialect="volcano",
    ),
    Row(
        "bare number",
        {"volcano.sh/vgpu-number": "3"},
        {"nvidia.com/gpu": "3"},
        warn="means 3 whole cards",
    ),
    Row(
        "memory and percentage",
        {"volcano.sh/vgpu-memory": "1000", "volcano.sh/vgpu-memory-percentage": "10"},
        error="volcano.sh/vgpu-memory and volcano.sh/vgpu-memory-percentage are both set",
    ),
    Row(
        "cores only",
        {"volcano.sh/vgpu-cores": "10"},
        error="volcano.sh/vgpu-cores alone is a cores-only",
    ),
    Row(
        "number 1.5",
        {"volcano.sh/vgpu-number": "1.5"},
        error="volcano.sh/vgpu-number: '1.5' is not a whole",
    ),
    Row(
        "mixed with canonical",
        {"volcano.sh/vgpu-number": "1", "nvidia.com/gpu": "1"},
        error="mixes vGPU dialects: hami (nvidia.com/gpu); volcano (volcano.sh/vgpu-number)",
    ),
    Row(
        "zero", {"volcano.sh/vgpu-number": "0"}, {}, warn="volcano.sh/vgpu-number=0 asks for no GPU"
    ),
]

KAI_ROWS = [
    Row(
        "fraction",
        {"cpu": "1"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
        annotations={"gpu-fraction": "0.5"},
        warn="translated kai (gpu-fraction=0.5)",
        dialect="kai",
    ),
    Row(
        "fraction rounded up",
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "34"},
        annotations={"gpu-fraction": "0.333"},
        warn="gpu-fraction 0.333 is 33.3% of a card's memory; rounded up to 34%",
    ),
    Row(
        "tiny fraction is 1 percent",
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "1"},
        annotations={"gpu-fraction": "0.001"},
    ),
    Row(
        "fraction 1 is the whole memory",
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "100"},
        annotations={"gpu-fraction": "1"},
    ),
    Row(
        "fraction over devices",
        {},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem-percentage": "25"},
        annotations={"gpu-fraction": ".25", "gpu-fraction-num-devices": "2"},
    ),
    Row(
        "memory",
        {"memory": "1Gi"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000"},
        annotations={"gpu-memory": "2000"},
    ),
    Row(
        "memory over devices",
        {},
        {"nvidia.com/gpu": "3", "nvidia.com/gpumem": "2000"},
        annotations={"gpu-memory": "2000", "gpu-fraction-num-devices": "3"},
    ),
    Row(
        "empty fraction is absent, as KAI reads it",
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "512"},
        annotations={"gpu-fraction": "", "gpu-memory": "512"},
    ),
    Row(
        "fraction and memory",
        {},
        annotations={"gpu-fraction": "0.5", "gpu-memory": "1000"},
        error="gpu-fraction='0.5' and gpu-memory='1000' are both set",
    ),
    Row(
        "devices alone",
        {},
        annotations={"gpu-fraction-num-devices": "2"},
        error="gpu-fraction-num-devices='2' without gpu-fraction or gpu-memory",
    ),
    Row(
        "fraction 0",
        {},
        annotations={"gpu-fraction": "0"},
        error="gpu-fraction: '0' is out of range; allowed: a decimal",
    ),
    Row("fraction 1.5", {}, annotations={"gpu-fraction": "1.5"}, error="'1.5' is out of range"),
    Row("fraction text", {}, annotations={"gpu-fraction": "half"}, error="'half' is not a number"),
    Row(
        "fraction negative",
        {},
        annotations={"gpu-fraction": "-0.5"},
        error="'-0.5' is not a number",
    ),
    Row("memory with unit", {}, annotations={"gpu-memory": "2Gi"}, error="digits only"),
    Row("memory 0", {}, annotations={"gpu-memory": "0"}, error="gpu-memory: '0' is out of range"),
    Row(
        "devices not a number",
        {},
        annotations={"gpu-fraction": "0.5", "gpu-fraction-num-devices": "two"},
        error="gpu-fraction-num-devices: 'two' is not a whole number of vGPUs",
    ),
    Row(
        "devices 17",
        {},
        annotations={"gpu-fraction": "0.5", "gpu-fraction-num-devices": "17"},
        error="gpu-fraction-num-devices: '17' is out of range",
    ),
    Row(
        "kai and a different canonical request",
        {"nvidia.com/gpu": "1"},
        annotations={"gpu-fraction": "0.5"},
        error="mixes vGPU dialects: hami (nvidia.com/gpu); kai (pod annotation gpu-fraction)",
    ),
    Row(
        "kai and volcano",
        {"volcano.sh/vgpu-number": "1"},
        annotations={"gpu-memory": "100"},
        error="mixes vGPU dialects: kai (pod annotation gpu-memory); volcano",
    ),
    Row(
        "already translated: read as canonical",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
        annotations={"gpu-fraction": "0.5"},
        dialect="hami",
    ),
]

KOORD_ROWS = [
    Row(
        "memory bytes",
        {"koordinator.sh/gpu-memory": "8Gi", "koordinator.sh/gpu.shared": "1"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192"},
        dialect="koordinator",
    ),
    Row(
        "memory rounded up to MiB",
        {"koordinator.sh/gpu-memory": "1G", "koordinator.sh/gpu.shared": "1"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "954"},  # 1e9 / 2**20 = 953.67
    ),
    Row(
        "memory split over shared",
        {
            "koordinator.sh/gpu-memory": "8Gi",
            "koordinator.sh/gpu.shared": "2",
            "koordinator.sh/gpu-core": "100",
        },
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4096", "nvidia.com/gpucores": "50"},
    ),
    Row(
        "ratio and core",
        {
            "koordinator.sh/gpu-memory-ratio": "50",
            "koordinator.sh/gpu-core": "50",
            "koordinator.sh/gpu.shared": "1",
        },
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50", "nvidia.com/gpucores": "50"},
    ),
    Row(
        "ratio 200 without shared is 2 cards",
        {"koordinator.sh/gpu-memory-ratio": "200"},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem-percentage": "100"},
        warn="koordinator.sh/gpu.shared is not set; 2 card(s) assumed",
    ),
    Row(
        "ratio 200 over 4 cards",
        {"koordinator.sh/gpu-memory-ratio": "200", "koordinator.sh/gpu.shared": "4"},
        {"nvidia.com/gpu": "4", "nvidia.com/gpumem-percentage": "50"},
    ),
    Row(
        "whole cards with cores",
        {
            "koordinator.sh/gpu-memory-ratio": "200",
            "koordinator.sh/gpu-core": "200",
            "koordinator.sh/gpu.shared": "2",
        },
        {
            "nvidia.com/gpu": "2",
            "nvidia.com/gpumem-percentage": "100",
            "nvidia.com/gpucores": "100",
        },
    ),
    Row(
        "memory without shared is one card",
        {"koordinator.sh/gpu-memory": "1Gi"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024"},
        warn="1 card(s) assumed",
    ),
    Row(
        "legacy gpu percent",
        {"koordinator.sh/gpu": "50"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50", "nvidia.com/gpucores": "50"},
    ),
    Row(
        "legacy gpu whole cards",
        {"koordinator.sh/gpu": "200"},
        {
            "nvidia.com/gpu": "2",
            "nvidia.com/gpumem-percentage": "100",
            "nvidia.com/gpucores": "100",
        },
    ),
    Row(
        "memory and ratio",
        {"koordinator.sh/gpu-memory": "1Gi", "koordinator.sh/gpu-memory-ratio": "50"},
        error="koordinator.sh/gpu-memory and koordinator.sh/gpu-memory-ratio are both set",
    ),
    Row(
        "core only",
        {"koordinator.sh/gpu-core": "50", "koordinator.sh/gpu.shared": "1"},
        error="is a cores-only request",
    ),
    Row("shared only", {"koordinator.sh/gpu.shared": "1"}, error="is no memory request"),
    Row(
        "ratio over 100 not whole cards",
        {"koordinator.sh/gpu-memory-ratio": "150"},
        error="koordinator.sh/gpu-memory-ratio: '150' is over 100 but not a multiple of 100",
    ),
    Row(
        "ratio does not split",
        {"koordinator.sh/gpu-memory-ratio": "100", "koordinator.sh/gpu.shared": "3"},
        error="koordinator.sh/gpu-memory-ratio: '100' does not split evenly over 3 cards",
    ),
    Row(
        "memory does not split",
        {"koordinator.sh/gpu-memory": "1", "koordinator.sh/gpu.shared": "3"},
        error="koordinator.sh/gpu-memory: '1' does not split evenly over 3 cards",
    ),
    Row(
        "core per card over 100",
        {
            "koordinator.sh/gpu-memory-ratio": "50",
            "koordinator.sh/gpu-core": "200",
            "koordinator.sh/gpu.shared": "1",
        },
        error="koordinator.sh/gpu-core per card: '200 / 1' is out of range",
    ),
    Row(
        "ratio per card over 100",
        {"koordinator.sh/gpu-memory-ratio": "200", "koordinator.sh/gpu.shared": "1"},
        error="koordinator.sh/gpu-memory-ratio per card: '200 / 1' is out of range",
    ),
    Row(
        "legacy gpu with shared",
        {"koordinator.sh/gpu": "50", "koordinator.sh/gpu.shared": "1"},
        error="koordinator.sh/gpu together with koordinator.sh/gpu.shared",
    ),
    Row("legacy gpu 150", {"koordinator.sh/gpu": "150"}, error="not a multiple of 100"),
    Row(
        "shared 1.5",
        {"koordinator.sh/gpu-memory-ratio": "50", "koordinator.sh/gpu.shared": "1.5"},
        error="koordinator.sh/gpu.shared: '1.5' is not a whole number",
    ),
    Row(
        "mixed with gpushare",
        {"koordinator.sh/gpu-memory": "1Gi", "aliyun.com/gpu-mem": "1"},
        error="mixes vGPU dialects: gpushare (aliyun.com/gpu-mem); koordinator (koordinator.sh/",
    ),
]

GPUSHARE_ROWS = [
    Row(
        "GiB",
        {"aliyun.com/gpu-mem": "3"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3072"},
        dialect="gpushare",
        warn=(
            "translated gpushare (aliyun.com/gpu-mem=3) to nvidia.com/gpu=1, nvidia.com/gpumem=3072"
        ),
    ),
    Row(
        "fractional GiB",
        {"aliyun.com/gpu-mem": "1.5"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1536"},
    ),
    Row(
        "count resource",
        {"aliyun.com/gpu-mem": "8", "aliyun.com/gpu-count": "2"},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4096"},
    ),
    Row(
        "count label (ACK multi-GPU sharing)",
        {"aliyun.com/gpu-mem": "8"},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "4096"},
        labels={"aliyun.com/gpu-count": "2"},
    ),
    Row(
        "core percentage",
        {"aliyun.com/gpu-mem": "4", "aliyun.com/gpu-core.percentage": "30"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096", "nvidia.com/gpucores": "30"},
    ),
    Row(
        "does not split",
        {"aliyun.com/gpu-mem": "9", "aliyun.com/gpu-count": "2"},
        error="aliyun.com/gpu-mem: '9' GiB does not split evenly over 2 cards",
    ),
    Row("core only", {"aliyun.com/gpu-core.percentage": "30"}, error="is a cores-only request"),
    Row("count only", {"aliyun.com/gpu-count": "2"}, error="is a count without memory"),
    Row(
        "core over cards",
        {
            "aliyun.com/gpu-mem": "8",
            "aliyun.com/gpu-count": "2",
            "aliyun.com/gpu-core.percentage": "30",
        },
        error="on one card only",
    ),
    Row(
        "label not a number",
        {"aliyun.com/gpu-mem": "8"},
        labels={"aliyun.com/gpu-count": "x"},
        error="pod label aliyun.com/gpu-count: 'x' is not",
    ),
    Row(
        "label and resource differ",
        {"aliyun.com/gpu-mem": "8", "aliyun.com/gpu-count": "2"},
        labels={"aliyun.com/gpu-count": "4"},
        error="resource 2 differs from pod label 4",
    ),
    Row("too much memory", {"aliyun.com/gpu-mem": "2048"}, error="MiB per vGPU from 1 to 1048576"),
    Row("zero", {"aliyun.com/gpu-mem": "0"}, {}, warn="asks for no GPU"),
]

ALL_ROWS = [
    *(("hami", r) for r in HAMI_ROWS),
    *(("volcano", r) for r in VOLCANO_ROWS),
    *(("kai", r) for r in KAI_ROWS),
    *(("koordinator", r) for r in KOORD_ROWS),
    *(("gpushare", r) for r in GPUSHARE_ROWS),
]


@pytest.mark.parametrize("row", [r for _, r in ALL_ROWS], ids=[f"{d}: {r.id}" for d, r in ALL_ROWS])
def test_dialect_table(row: Row) -> None:
    pod = _pod(row)
    before = copy.deepcopy(pod)
    if row.error is not None:
        with pytest.raises(InvalidGPURequest) as info:
            normalize_pod(pod)
        assert row.error in str(info.value)
        assert str(info.value).startswith("container ")
        return
    assert row.expect is not None
    result = normalize_pod(pod)
    assert pod == before, "the input must not be mutated"
    patched = _assert_idempotent(pod)
    resources = patched["spec"]["containers"][0]["resources"]
    if row.expect:
        assert _gpu(resources["limits"]) == row.expect
        assert _gpu(resources["requests"]) == row.expect
        for side in ("limits", "requests"):
            assert not DIALECT_KEYS & set(resources[side]), "dialect keys are dropped"
            others = {
                k: v for k, v in row.limits.items() if k not in CANONICAL and k not in DIALECT_KEYS
            }
            assert {k: v for k, v in resources[side].items() if k not in CANONICAL} == others
    else:
        assert result.changes == ()
    if row.warn is not None:
        assert any(row.warn in w for w in result.warnings), result.warnings
    if row.dialect is not None:
        assert result.dialects == (row.dialect,)
        translated = row.dialect != "hami"
        assert (dict(result.annotations) == {"spotpack.io/vgpu-source": row.dialect}) is translated


def test_error_names_container_field_value_and_allowed() -> None:
    pod = _pod(Row("x", {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "150"}))
    with pytest.raises(InvalidGPURequest) as info:
        normalize_pod(pod)
    message = str(info.value)
    assert message.startswith(
        "container 'c': nvidia.com/gpucores: '150' is out of range; allowed: "
    )
    assert "100 = the card exclusively" in message
    assert info.value.container == "c"


def test_requests_different_from_limits() -> None:
    pod = _pod(Row("x", {"volcano.sh/vgpu-number": "1"}))
    pod["spec"]["containers"][0]["resources"]["requests"]["volcano.sh/vgpu-number"] = "2"
    with pytest.raises(InvalidGPURequest, match="requests '2' differ from limits '1'"):
        normalize_pod(pod)


def test_missing_side_is_filled_and_equal_values_kept_as_written() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "lim",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"}},
                },
                {"name": "req", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "2"}}},
                {
                    "name": "same",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "2"},
                        "requests": {"nvidia.com/gpu": 2},
                    },
                },
            ]
        },
    }
    result = normalize_pod(pod)
    assert [(c.index, c.name) for c in result.changes] == [(0, "lim"), (1, "req")]
    lim, req = (c.resources for c in result.changes)
    assert lim == {
        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"},
        "requests": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"},
    }
    assert req == {
        "requests": {"cpu": "1", "nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    _assert_idempotent(pod)


def test_non_gpu_keys_keep_their_order_and_other_resource_fields() -> None:
    limits = {"cpu": "1", "volcano.sh/vgpu-number": "1", "memory": "1Gi", "example.com/foo": "3"}
    pod: dict[str, Any] = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "resources": {"limits": dict(limits), "claims": [{"name": "x"}]}},
            ]
        },
    }
    (change,) = normalize_pod(pod).changes
    assert list(change.resources["limits"]) == [
        "cpu",
        "memory",
        "example.com/foo",
        "nvidia.com/gpu",
    ]
    assert list(change.resources["requests"]) == ["nvidia.com/gpu"]
    assert change.resources["claims"] == [{"name": "x"}]
    assert change.resources["claims"] is not pod["spec"]["containers"][0]["resources"]["claims"]


def test_init_containers() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"team": "a"}},
        "spec": {
            "initContainers": [
                {"name": "prep", "resources": {"limits": {"cpu": "1"}}},
                {"name": "warm", "resources": {"limits": {"volcano.sh/vgpu-number": "3"}}},
            ],
            "containers": [
                {
                    "name": "app",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}},
                },
                {"name": "side", "resources": {"limits": {"aliyun.com/gpu-mem": "1"}}},
            ],
        },
    }
    result = normalize_pod(pod)
    assert [(c.init, c.index, c.path) for c in result.changes] == [
        (True, 1, "/spec/initContainers/1/resources"),
        (False, 0, "/spec/containers/0/resources"),
        (False, 1, "/spec/containers/1/resources"),
    ]
    assert result.dialects == ("gpushare", "hami", "volcano")
    assert dict(result.annotations) == {"spotpack.io/vgpu-source": "gpushare,volcano"}
    assert [(c.name, c.init) for c in result.demand.containers] == [
        ("warm", True),
        ("app", False),
        ("side", False),
    ]
    assert result.demand.total_vgpus == 3  # max(init 3, app 1 + 1)
    patched = _assert_idempotent(pod)
    assert patched["spec"]["initContainers"][1]["resources"]["limits"] == {"nvidia.com/gpu": "3"}
    assert patched["metadata"]["annotations"] == {
        "team": "a",
        "spotpack.io/vgpu-source": "gpushare,volcano",
    }


def test_kai_targets_named_container_including_init() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "annotations": {"gpu-memory": "1024", "gpu-fraction-container-name": "loader"},
        },
        "spec": {
            "initContainers": [{"name": "loader"}],
            "containers": [{"name": "main", "resources": {"limits": {"cpu": "1"}}}],
        },
    }
    result = normalize_pod(pod)
    (change,) = result.changes
    assert (change.init, change.index, change.name) == (True, 0, "loader")
    assert change.resources == {
        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024"},
        "requests": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1024"},
    }
    patched = _assert_idempotent(pod)
    assert patched["metadata"]["annotations"]["gpu-memory"] == "1024", "dialect annotations stay"


def test_kai_defaults_to_first_app_container() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"gpu-fraction": "0.5"}},
        "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}]},
    }
    (change,) = normalize_pod(pod).changes
    assert (change.init, change.index) == (False, 0)


def test_kai_unknown_container() -> None:
    pod = {
        "metadata": {"annotations": {"gpu-fraction": "0.5", "gpu-fraction-container-name": "nope"}},
        "spec": {"containers": [{"name": "a"}]},
    }
    with pytest.raises(
        InvalidGPURequest, match="gpu-fraction-container-name='nope' names a container"
    ):
        normalize_pod(pod)


@pytest.mark.parametrize(
    "name", ["admissionreview-spark-driver.json", "admissionreview-spark-executor.json"]
)
def test_pods_without_gpus_get_nothing(name: str) -> None:
    pod = json.loads((PROTOCOL / name).read_text())["request"]["object"]
    result = normalize_pod(pod)
    assert result.changes == ()
    assert result.dialects == ()
    assert result.warnings == ()
    assert dict(result.annotations) == {}
    assert not result.is_gpu_pod
    assert not result.changed
    assert to_json_patch(result) == []


@pytest.mark.parametrize(
    "pod",
    [
        {},
        {"spec": None},
        {"spec": {"containers": []}},
        {"metadata": {"annotations": {"other": "x"}}, "spec": {"containers": [{"name": "c"}]}},
        {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}},
    ],
)
def test_empty_and_odd_pods(pod: dict[str, Any]) -> None:
    assert not normalize_pod(pod).changed


def test_golden_gpu_pod_is_unchanged() -> None:
    review = json.loads((PROTOCOL / "admissionreview-gpu-pod.json").read_text())
    pod = review["request"]["object"]
    before = copy.deepcopy(pod)
    result = normalize_pod(pod)
    assert result.changes == ()
    assert dict(result.annotations) == {}
    assert result.warnings == ()
    assert result.dialects == ("hami",)
    assert result.is_gpu_pod
    assert result.demand.containers[0].request == VGPURequest(1, mem_mib=6000)
    assert pod == before
    assert to_json_patch(result) == []


def test_patch_adds_whole_annotation_map_when_absent() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"koordinator.sh/gpu": "100"}}}]
        },
    }
    ops = to_json_patch(normalize_pod(pod))
    assert ops == [
        {
            "op": "add",
            "path": "/spec/containers/0/resources",
            "value": {
                "limits": {
                    "nvidia.com/gpu": "1",
                    "nvidia.com/gpumem-percentage": "100",
                    "nvidia.com/gpucores": "100",
                },
                "requests": {
                    "nvidia.com/gpu": "1",
                    "nvidia.com/gpumem-percentage": "100",
                    "nvidia.com/gpucores": "100",
                },
            },
        },
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"spotpack.io/vgpu-source": "koordinator"},
        },
    ]
    expected: dict[str, Any] = copy.deepcopy(pod)
    expected["spec"]["containers"][0]["resources"] = ops[0]["value"]
    expected["metadata"]["annotations"] = {"spotpack.io/vgpu-source": "koordinator"}
    assert _apply(pod, ops) == expected


def test_patch_escapes_annotation_key_and_applies() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"a": "b"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"aliyun.com/gpu-mem": "2"}}}]
        },
    }
    result = normalize_pod(pod)
    ops = to_json_patch(result)
    assert ops[-1] == {
        "op": "add",
        "path": "/metadata/annotations/spotpack.io~1vgpu-source",
        "value": "gpushare",
    }
    assert resource_ops(result) == ops[:-1]
    patched = _apply(pod, ops)
    assert patched["metadata"]["annotations"] == {"a": "b", "spotpack.io/vgpu-source": "gpushare"}
    assert patched["spec"]["containers"][0]["resources"] == {
        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2048"},
        "requests": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2048"},
    }


def test_patch_adds_metadata_when_absent() -> None:
    pod = {
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"volcano.sh/vgpu-number": "1"}}}]
        }
    }
    patched = _apply(pod, to_json_patch(normalize_pod(pod)))
    assert patched["metadata"] == {"annotations": {"spotpack.io/vgpu-source": "volcano"}}


def test_existing_source_annotation_is_not_rewritten() -> None:
    pod = _pod(
        Row(
            "x", {"volcano.sh/vgpu-number": "1"}, annotations={"spotpack.io/vgpu-source": "volcano"}
        )
    )
    result = normalize_pod(pod)
    assert result.changes
    assert dict(result.annotations) == {}


def test_custom_names() -> None:
    names = ResourceNames(
        "hami.io/gpu", "hami.io/gpumem", "hami.io/gpumem-percentage", "hami.io/gpucores"
    )
    options = NormalizeOptions(names=names, source_annotation="example.com/from")
    pod = _pod(Row("x", {"volcano.sh/vgpu-memory": "100", "nvidia.com/gpu": "1"}))
    result = normalize_pod(pod, options)
    (change,) = result.changes
    assert change.resources["limits"] == {
        "nvidia.com/gpu": "1",
        "hami.io/gpu": "1",
        "hami.io/gpumem": "100",
    }
    assert dict(result.annotations) == {"example.com/from": "volcano"}
    _assert_idempotent(pod, options)


def test_canonical_names_win_over_a_dialect() -> None:
    from spotpack.vgpu.dialects import VOLCANO_NAMES

    options = NormalizeOptions(names=VOLCANO_NAMES)
    pod = _pod(Row("x", {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-memory": "10"}))
    result = normalize_pod(pod, options)
    assert result.changes == ()
    assert result.dialects == ("hami",)


def test_max_vgpus_option() -> None:
    pod = _pod(Row("x", {"nvidia.com/gpu": "20"}))
    with pytest.raises(InvalidGPURequest, match="from 1 to 16"):
        normalize_pod(pod)
    assert normalize_pod(pod, NormalizeOptions(max_vgpus_per_container=32)).is_gpu_pod


def test_gpushare_unit_mib() -> None:
    options = NormalizeOptions(gpushare_unit="MiB")
    pod = _pod(Row("x", {"aliyun.com/gpu-mem": "3000"}))
    (change,) = normalize_pod(pod, options).changes
    assert _gpu(change.resources["limits"]) == {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000"}
    _assert_idempotent(pod, options)


def test_volcano_memory_factor() -> None:
    options = NormalizeOptions(volcano_memory_factor=1024)
    pod = _pod(Row("x", {"volcano.sh/vgpu-memory": "8", "volcano.sh/vgpu-cores": "10"}))
    (change,) = normalize_pod(pod, options).changes
    assert _gpu(change.resources["limits"]) == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "8192",
        "nvidia.com/gpucores": "10",
    }
    too_big = _pod(Row("x", {"volcano.sh/vgpu-memory": "2000"}))
    with pytest.raises(InvalidGPURequest, match="gpuMemoryFactor 1024"):
        normalize_pod(too_big, options)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_vgpus_per_container": 0},
        {"gpushare_unit": "KiB"},
        {"volcano_memory_factor": 0},
        {"names": ResourceNames("a", "a", "b", "c")},
    ],
)
def test_options_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NormalizeOptions(**kwargs)


TYPO = "unknown GPU resource"
UNKNOWN_RESOURCES = [
    # (id, limits, requests, expected warnings (substrings, in order), gpu pod?)
    (
        "typo beside a count",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"},
        None,
        [
            "container 'c': unknown GPU resource nvidia.com/gpumemory "
            "(did you mean nvidia.com/gpumem?); kept as written",
            "means 1 whole card",
        ],
        True,
    ),
    (
        "typo alone",
        {"nvidia.com/gpumemory": "8192"},
        None,
        ["unknown GPU resource nvidia.com/gpumemory (did you mean nvidia.com/gpumem?)"],
        False,
    ),
    (
        "typo in requests only",
        {"nvidia.com/gpu": "1"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpucore": "50"},
        [
            "unknown GPU resource nvidia.com/gpucore (did you mean nvidia.com/gpucores?)",
            "means 1 whole card",
        ],
        True,
    ),
    (
        "domain typo",
        {"nvidia.con/gpu": "1"},
        None,
        ["unknown GPU resource nvidia.con/gpu (did you mean nvidia.com/gpu?)"],
        False,
    ),
    (
        "volcano typo",
        {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-mem": "4096"},
        None,
        [
            "unknown GPU resource volcano.sh/vgpu-mem (did you mean volcano.sh/vgpu-memory?)",
            "translated volcano (volcano.sh/vgpu-number=1) to nvidia.com/gpu=1",
            "means 1 whole card",
        ],
        True,
    ),
    (
        "nvidia name far from any known one",
        {"nvidia.com/zzz": "1"},
        None,
        ["unknown GPU resource nvidia.com/zzz; kept as written"],
        False,
    ),
    ("MIG", {"nvidia.com/mig-1g.5gb": "1"}, None, [], False),
    ("MIG shared", {"nvidia.com/mig-1g.5gb.shared": "1"}, None, [], False),
    ("time-slicing", {"nvidia.com/gpu.shared": "1"}, None, [], False),
    (
        "HAMi priority",
        {"nvidia.com/gpu": "1", "nvidia.com/priority": "0"},
        None,
        ["means 1 whole card"],
        True,
    ),
    (
        "other vendors",
        {"amd.com/gpu": "1", "intel.com/gpu": "1", "habana.ai/gaudi": "1"},
        None,
        [],
        False,
    ),
    ("plain resources", {"cpu": "1", "memory": "1Gi", "hugepages-2Mi": "1Gi"}, None, [], False),
]


@pytest.mark.parametrize(
    ("limits", "requests", "warnings", "gpu"),
    [r[1:] for r in UNKNOWN_RESOURCES],
    ids=[r[0] for r in UNKNOWN_RESOURCES],
)
def test_unknown_gpu_resources_are_warned_and_kept(limits, requests, warnings, gpu) -> None:
    resources = {"limits": dict(limits)}
    if requests is not None:
        resources["requests"] = dict(requests)
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "resources": resources}]},
    }
    result = normalize_pod(pod)
    assert len(result.warnings) == len(warnings), result.warnings
    for got, want in zip(result.warnings, warnings, strict=True):
        assert want in got
    assert result.is_gpu_pod is gpu
    patched = _assert_idempotent(pod)
    after = patched["spec"]["containers"][0]["resources"]
    for key in {*limits, *(requests or {})}:
        if key in CANONICAL or key in DIALECT_KEYS:
            continue
        # Kept as written, never renamed or dropped ...
        assert key in after.get("limits", {}) or key in after.get("requests", {})
        # ... and, in a container the webhook rewrites, on both sides alike.
        if result.changes:
            assert after["limits"][key] == after["requests"][key]


def test_unknown_resource_copied_to_the_side_that_lacks_it() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"}
                    },
                }
            ]
        }
    }
    (change,) = normalize_pod(pod).changes
    assert change.resources == {
        "limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"},
        "requests": {"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"},
    }


def test_unknown_resource_in_an_untouched_container_is_only_warned() -> None:
    """Nothing to normalize: the container is left exactly as written."""
    pod = {
        "spec": {
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu-mem": "1"}}}]
        }
    }
    result = normalize_pod(pod)
    assert result.changes == ()
    assert to_json_patch(result) == []
    assert [TYPO in w for w in result.warnings] == [True]


def test_unknown_resources_follow_custom_names() -> None:
    """With Volcano's names canonical, HAMi's default names are still real names, not typos."""
    options = NormalizeOptions(
        names=ResourceNames(
            count="volcano.sh/vgpu-number",
            memory="volcano.sh/vgpu-memory",
            memory_percent="volcano.sh/vgpu-memory-percentage",
            cores="volcano.sh/vgpu-cores",
        )
    )
    assert options.unknown("nvidia.com/gpumem") is None
    hit = options.unknown("volcano.sh/vgpu-numbr")
    assert hit is not None
    assert hit.nearest == "volcano.sh/vgpu-number"
