"""Karpenter NodeOverlays rendered from the catalog, and the vGPU capacity behind them.

The objects are checked against the NodeOverlay CRD's own constraints
(``karpenter.sh_nodeoverlays.yaml``, v1alpha1): required requirements (at most
100), value patterns, extended resources only in capacity, weight 1..10000.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from spotpack.catalog import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.catalog.nodeoverlay import render_overlays, to_yaml
from spotpack.catalog.vgpu import VGPUCapacity, vgpu_capacity
from spotpack.cli import main
from spotpack.errors import InvalidInput
from spotpack.vgpu.model import ResourceNames

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
HAMI = {"nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpucores"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def by_type(overlays: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    out = {}
    for o in overlays:
        for value in o["spec"]["requirements"][0]["values"]:
            assert value not in out, f"{value} in two overlays"
            out[value] = o["spec"]["capacity"]
    return out


def test_objects_follow_the_crd(catalog: Catalog) -> None:
    overlays = render_overlays(catalog)
    assert overlays
    for o in overlays:
        assert o["apiVersion"] == "karpenter.sh/v1alpha1"
        assert o["kind"] == "NodeOverlay"
        assert set(o) == {"apiVersion", "kind", "metadata", "spec"}
        name = o["metadata"]["name"]
        assert DNS_SUBDOMAIN.match(name) and len(name) <= 253
        assert "namespace" not in o["metadata"]  # cluster-scoped
        spec = o["spec"]
        assert set(spec) == {"requirements", "capacity"}
        assert 1 <= len(spec["requirements"]) <= 100
        (req,) = spec["requirements"]
        assert (req["key"], req["operator"]) == ("node.kubernetes.io/instance-type", "In")
        assert req["values"] and all(LABEL_VALUE.match(v) and len(v) <= 63 for v in req["values"])
        assert set(spec["capacity"]) == HAMI
        assert not set(spec["capacity"]) & {"cpu", "memory", "ephemeral-storage", "pods"}
        assert all(isinstance(v, str) and QUANTITY.match(v) for v in spec["capacity"].values())
    names = [o["metadata"]["name"] for o in overlays]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_every_gpu_type_once_and_no_cpu_types(catalog: Catalog) -> None:
    covered = by_type(render_overlays(catalog))
    assert set(covered) == {t.name for t in catalog.all() if t.gpu is not None}


@pytest.mark.parametrize(
    ("name", "split", "gpu", "mem", "cores"),
    [
        ("g4dn.xlarge", 10, "10", "16384", "100"),
        ("g4dn.12xlarge", 10, "40", "65536", "400"),
        ("g5.12xlarge", 4, "16", "91552", "400"),
        ("p4d.24xlarge", 7, "56", "327680", "800"),
        ("p5.48xlarge", 1, "8", "655360", "800"),
        ("g6e.xlarge", 3, "3", "45776", "100"),
    ],
)
def test_split_count_is_respected(
    catalog: Catalog, name: str, split: int, gpu: str, mem: str, cores: str
) -> None:
    capacity = by_type(render_overlays(catalog, split=split))[name]
    assert capacity == {
        "nvidia.com/gpu": gpu,
        "nvidia.com/gpumem": mem,
        "nvidia.com/gpucores": cores,
    }
    (overlay,) = render_overlays(catalog, split=split, types=[name])
    assert overlay["metadata"]["annotations"]["spotpack.io/vgpu-split"] == str(split)


def test_types_sharing_a_capacity_share_an_overlay(catalog: Catalog) -> None:
    overlays = render_overlays(catalog, types=["g4dn.xlarge", "g4dn.2xlarge", "g4dn.12xlarge"])
    assert [o["metadata"]["name"] for o in overlays] == [
        "spotpack-vgpu-t4-x1",
        "spotpack-vgpu-t4-x4",
    ]
    assert overlays[0]["spec"]["requirements"][0]["values"] == ["g4dn.2xlarge", "g4dn.xlarge"]


def test_memory_scaling_weight_and_resource_names(catalog: Catalog) -> None:
    names = ResourceNames(
        count="example.com/vgpu", memory="example.com/vgpu-mem", cores="example.com/vgpu-cores"
    )
    (o,) = render_overlays(catalog, types=["g5.xlarge"], memory_scaling=1.5, weight=50, names=names)
    assert o["spec"]["weight"] == 50
    assert o["spec"]["capacity"] == {
        "example.com/vgpu": "10",
        "example.com/vgpu-mem": str(int(22888 * 1.5)),
        "example.com/vgpu-cores": "100",
    }
    assert list(o["spec"]) == ["weight", "requirements", "capacity"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"types": ["m5.large"]}, "has no GPUs"),
        ({"types": ["g9.huge"]}, "not in the catalog"),
        ({"weight": 0}, "weight must be 1..10000"),
        ({"weight": 10001}, "weight must be 1..10000"),
        ({"split": 0}, "split must be"),
        ({"memory_scaling": 0.0}, "memory_scaling"),
        ({"memory_scaling": float("nan")}, "memory_scaling"),
    ],
)
def test_bad_requests_are_invalid_input(
    catalog: Catalog, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        render_overlays(catalog, **kwargs)


def test_yaml_round_trips(catalog: Catalog) -> None:
    overlays = render_overlays(catalog, split=5)
    text = to_yaml(overlays)
    assert text.startswith("---\napiVersion: karpenter.sh/v1alpha1\n")
    assert list(yaml.safe_load_all(text)) == overlays


def test_vgpu_capacity(catalog: Catalog) -> None:
    g4 = catalog.instance("g4dn.12xlarge")
    assert g4 is not None
    cap = vgpu_capacity(g4)
    assert cap == VGPUCapacity("g4dn.12xlarge", "T4", cards=4, split=10, mem_mib_per_card=16384)
    assert (cap.vgpus, cap.mem_mib, cap.cores) == (40, 65536, 400)
    m5 = catalog.instance("m5.large")
    assert m5 is not None and vgpu_capacity(m5) is None
    with pytest.raises(ValueError, match="split"):
        vgpu_capacity(g4, split=1001)


def test_cli_prints_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["catalog", "nodeoverlay", "--split", "4", "--types", "g5.12xlarge", "--weight", "7"])
        == 0
    )
    (overlay,) = yaml.safe_load_all(capsys.readouterr().out)
    assert overlay["spec"]["capacity"]["nvidia.com/gpu"] == "16"
    assert overlay["spec"]["weight"] == 7


def test_cli_rejects_bad_split(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["catalog", "nodeoverlay", "--split", "0"])
    assert info.value.code == 2
    assert "must be 1..1000" in capsys.readouterr().err
