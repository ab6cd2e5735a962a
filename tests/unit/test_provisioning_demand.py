"""Reading pending Pod dicts into PodDemand: resources, GPUs, capacity, arch, zones, group, re-run cost."""

from __future__ import annotations

from typing import Any

import pytest

from spotpack.capacity import SCHEMES
from spotpack.errors import InvalidInput
from spotpack.provisioning.demand import (
    COORDINATOR_FACTOR,
    RESTART_FACTOR,
    estimate_rerun_cost,
    pod_demand,
    pod_resources,
)
from spotpack.provisioning.model import CapacityNeed, Resources
from spotpack.vgpu.model import ContainerVGPU, PodGPUDemand, VGPURequest

KARPENTER = SCHEMES["karpenter"]
CAPACITY = "karpenter.sh/capacity-type"


def container(
    name: str = "main", requests: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if "limits" in extra:
        resources["limits"] = extra.pop("limits")
    return {"name": name, "image": "x", "resources": resources, **extra}


def make_pod(
    *,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": containers or [container(requests={"cpu": "1", "memory": "1Gi"})]
    }
    if init:
        body["initContainers"] = init
    body.update(spec)
    meta: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": "u1"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": body}


def required(*expressions: dict[str, Any], terms: int = 1) -> dict[str, Any]:
    term = {"matchExpressions": list(expressions)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term] * terms}
        }
    }


def test_requests_with_limits_fallback_and_overhead() -> None:
    pod = make_pod(
        containers=[
            container("a", {"cpu": "500m"}, limits={"cpu": "2", "memory": "1Gi"}),
            container("b", limits={"cpu": "250m", "memory": "100M"}),
        ],
        overhead={"cpu": "50m", "memory": "10Mi"},
    )
    # a: 500m + 1024Mi (memory from the limit); b: 250m + ceil(100e6 / 2^20) = 96Mi.
    assert pod_resources(pod) == Resources(500 + 250 + 50, 1024 + 96 + 10, 1)


def test_init_containers_take_the_max_with_sidecars_counted() -> None:
    pod = make_pod(
        containers=[container("app", {"cpu": "1", "memory": "1Gi"})],
        init=[
            container("sidecar", {"cpu": "200m", "memory": "64Mi"}, restartPolicy="Always"),
            container("migrate", {"cpu": "3", "memory": "256Mi"}),
        ],
    )
    # app phase = 1000 + 200 = 1200m, 1088Mi; init peak = 3000 + 200 = 3200m, 320Mi.
    assert pod_resources(pod) == Resources(3200, 1088, 1)


def test_no_requests_is_zero_but_one_pod_slot() -> None:
    assert pod_resources(make_pod(containers=[container()])) == Resources(0, 0, 1)


@pytest.mark.parametrize(
    ("spec", "annotations", "expected"),
    [
        ({}, {}, CapacityNeed.ANY),
        ({}, {"spotpack.io/capacity-applied": "spot"}, CapacityNeed.SPOT_ONLY),
        ({}, {"spotpack.io/capacity": "on-demand"}, CapacityNeed.ON_DEMAND_ONLY),
        ({}, {"spotpack.io/capacity-applied": "spot-preferred"}, CapacityNeed.SPOT_PREFERRED),
        ({}, {"spotpack.io/capacity-applied": "any"}, CapacityNeed.ANY),
        (
            {"affinity": required({"key": CAPACITY, "operator": "In", "values": ["spot"]})},
            {"spotpack.io/capacity-applied": "spot-preferred"},
            CapacityNeed.SPOT_ONLY,
        ),
        (
            {"affinity": required({"key": CAPACITY, "operator": "NotIn", "values": ["spot"]})},
            {"spotpack.io/capacity-applied": "spot"},
            CapacityNeed.ON_DEMAND_ONLY,
        ),
        ({"nodeSelector": {CAPACITY: "on-demand"}}, {}, CapacityNeed.ON_DEMAND_ONLY),
        (
            {"priorityClassName": "system-node-critical"},
            {"spotpack.io/capacity": "spot"},
            CapacityNeed.ON_DEMAND_ONLY,
        ),
    ],
)
def test_capacity_need(
    spec: dict[str, Any], annotations: dict[str, str], expected: CapacityNeed
) -> None:
    demand = pod_demand(make_pod(annotations=annotations, **spec), KARPENTER)
    assert demand.capacity is expected


@pytest.mark.parametrize(
    ("spec", "arch", "zones"),
    [
        ({}, None, None),
        ({"nodeSelector": {"kubernetes.io/arch": "arm64"}}, {"arm64"}, None),
        (
            {
                "affinity": required(
                    {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["arm64"]}
                )
            },
            {"amd64"},
            None,
        ),
        (
            {
                "affinity": required(
                    {
                        "key": "topology.kubernetes.io/zone",
                        "operator": "In",
                        "values": ["z-b", "z-a"],
                    }
                )
            },
            None,
            {"z-a", "z-b"},
        ),
        (
            {
                "nodeSelector": {"topology.kubernetes.io/zone": "z-a"},
                "affinity": required(
                    {
                        "key": "topology.kubernetes.io/zone",
                        "operator": "In",
                        "values": ["z-a", "z-b"],
                    }
                ),
            },
            None,
            {"z-a"},
        ),
    ],
)
def test_arch_and_zones(
    spec: dict[str, Any], arch: set[str] | None, zones: set[str] | None
) -> None:
    demand = pod_demand(make_pod(**spec), KARPENTER)
    assert demand.arch == (frozenset(arch) if arch is not None else None)
    assert demand.zones == (frozenset(zones) if zones is not None else None)


def test_ored_terms_union_and_an_open_term_leaves_it_open() -> None:
    a = {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
    other = {"key": "node.kubernetes.io/instance-type", "operator": "Exists"}
    two_terms = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [a]}, {"matchExpressions": [other]}]
            }
        }
    }
    assert pod_demand(make_pod(affinity=two_terms), KARPENTER).arch is None
    assert pod_demand(make_pod(affinity=required(a, terms=2)), KARPENTER).arch == frozenset(
        {"arm64"}
    )


def test_zone_not_in_needs_the_known_zones() -> None:
    not_a = required({"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["z-a"]})
    assert pod_demand(make_pod(affinity=not_a), KARPENTER).zones is None
    known = pod_demand(make_pod(affinity=not_a), KARPENTER, known_zones=["z-a", "z-b", "z-c"])
    assert known.zones == frozenset({"z-b", "z-c"})


@pytest.mark.parametrize(
    ("labels", "owners", "group"),
    [
        ({"spark-app-selector": "spark-123", "spark-role": "executor"}, None, "spark:spark-123"),
        ({}, [{"kind": "ReplicaSet", "uid": "rs-1", "controller": True}], "owner:rs-1"),
        ({}, [{"kind": "Thing", "uid": "x", "controller": False}], "pod:ns/p"),
        ({}, None, "pod:ns/p"),
    ],
)
def test_group(labels: dict[str, str], owners: list[dict[str, Any]] | None, group: str) -> None:
    assert pod_demand(make_pod(labels=labels, owners=owners), KARPENTER).group == group


def test_gpu_demand_and_model_filters() -> None:
    pod = make_pod(
        containers=[
            container(
                "infer",
                {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192"},
                limits={"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192"},
            )
        ],
        annotations={"spotpack.io/gpu-include": "A10G,L4"},
    )
    demand = pod_demand(pod, KARPENTER)
    assert demand.is_gpu and demand.gpu.total_vgpus == 1
    assert demand.gpu.containers[0].request == VGPURequest(count=1, mem_mib=8192)
    assert demand.gpu_include == ("A10G", "L4")
    assert demand.key == "ns/p" and demand.uid == "u1"


def test_invalid_input_raises() -> None:
    with pytest.raises(InvalidInput):
        pod_demand(make_pod(containers=[container(requests={"cpu": "lots"})]), KARPENTER)
    with pytest.raises(InvalidInput):
        pod_demand(make_pod(annotations={"spotpack.io/capacity": "sometimes"}), KARPENTER)


# rerun = hours * factor * (vcpu * 0.031611 + GiB * 0.004237 + gpu cards * 0.95)
@pytest.mark.parametrize(
    ("resources", "gpu", "coordinator", "expected"),
    [
        (
            Resources(4000, 16384, 1),
            PodGPUDemand(),
            False,
            2 * RESTART_FACTOR * (4 * 0.031611 + 16 * 0.004237),
        ),
        (
            Resources(2000, 8192, 1),
            PodGPUDemand(),
            True,
            2 * COORDINATOR_FACTOR * (2 * 0.031611 + 8 * 0.004237),
        ),
        (
            Resources(0, 0, 1),
            PodGPUDemand((ContainerVGPU("c", VGPURequest(count=1, mem_mib=12288)),)),
            False,
            2 * RESTART_FACTOR * 0.5 * 0.95,
        ),
        (
            Resources(0, 0, 1),
            PodGPUDemand((ContainerVGPU("c", VGPURequest(count=2)),)),
            False,
            2 * RESTART_FACTOR * 2 * 0.95,
        ),
    ],
)
def test_rerun_cost_table(
    resources: Resources, gpu: PodGPUDemand, coordinator: bool, expected: float
) -> None:
    assert estimate_rerun_cost(resources, gpu, hours=2, coordinator=coordinator) == pytest.approx(
        expected, abs=1e-6
    )


def test_driver_costs_more_to_rerun_than_executor() -> None:
    spark = {"spark-app-selector": "a"}
    driver = pod_demand(
        make_pod(labels={**spark, "spark-role": "driver"}), KARPENTER, default_rerun_hours=1
    )
    executor = pod_demand(
        make_pod(labels={**spark, "spark-role": "executor"}), KARPENTER, default_rerun_hours=1
    )
    assert driver.rerun_cost == pytest.approx(
        executor.rerun_cost * COORDINATOR_FACTOR / RESTART_FACTOR
    )
