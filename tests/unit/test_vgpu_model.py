"""The vGPU model: request helpers, the pod demand formula, reading the canonical form."""

from __future__ import annotations

from typing import Any

import pytest

from spotpack.errors import InvalidGPURequest
from spotpack.jsonpointer import escape, path
from spotpack.vgpu import (
    ContainerVGPU,
    PodGPUDemand,
    ResourceNames,
    VGPURequest,
    read_demand,
)

# --- VGPURequest ------------------------------------------------------------------------------

# request, card MiB, memory_on, cores_or_default(), is_whole_card, is_bare
REQUEST_ROWS = [
    (VGPURequest(1), 16384, 16384, 100, True, True),
    (VGPURequest(2, mem_mib=3000), 16384, 3000, 0, False, False),
    (VGPURequest(1, mem_mib=20000), 16384, 20000, 0, False, False),  # does not fit: caller sees it
    (VGPURequest(1, mem_percent=50), 16384, 8192, 0, False, False),
    (VGPURequest(1, mem_percent=33), 1000, 330, 0, False, False),
    (VGPURequest(1, mem_percent=33), 1001, 330, 0, False, False),  # rounded down, as HAMi
    (VGPURequest(1, mem_percent=100), 24576, 24576, 100, True, False),
    (VGPURequest(1, mem_mib=1000, cores=30), 16384, 1000, 30, False, False),
    (VGPURequest(1, cores=0), 16384, 16384, 0, True, False),  # explicit 0 wins over whole-card 100
]


@pytest.mark.parametrize(("request_", "card", "memory", "cores", "whole", "bare"), REQUEST_ROWS)
def test_request_helpers(
    request_: VGPURequest, card: int, memory: int, cores: int, whole: bool, bare: bool
) -> None:
    assert request_.memory_on(card) == memory
    assert request_.cores_or_default() == cores
    assert request_.is_whole_card is whole
    assert request_.is_bare is bare


def test_cores_default_is_hami_default_cores_for_shared_cards() -> None:
    assert VGPURequest(1, mem_mib=1000).cores_or_default(default=10) == 10
    assert VGPURequest(1).cores_or_default(default=10) == 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": 1, "mem_mib": 1, "mem_percent": 1},
        {"count": 1, "mem_mib": 0},
        {"count": 1, "mem_mib": 1_048_577},
        {"count": 1, "mem_percent": 101},
        {"count": 1, "mem_percent": 0},
        {"count": 1, "cores": 101},
        {"count": 1, "cores": -1},
    ],
)
def test_request_invariants(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"."):
        VGPURequest(**kwargs)


def test_to_resources_canonical_order_and_names() -> None:
    request = VGPURequest(2, mem_mib=4096, cores=50)
    assert list(request.to_resources().items()) == [
        ("nvidia.com/gpu", "2"),
        ("nvidia.com/gpumem", "4096"),
        ("nvidia.com/gpucores", "50"),
    ]
    names = ResourceNames(
        "hami.io/gpu", "hami.io/gpumem", "hami.io/gpumem-percentage", "hami.io/gpucores"
    )
    assert VGPURequest(1, mem_percent=25).to_resources(names) == {
        "hami.io/gpu": "1",
        "hami.io/gpumem-percentage": "25",
    }
    assert request.describe() == "nvidia.com/gpu=2, nvidia.com/gpumem=4096, nvidia.com/gpucores=50"


# --- PodGPUDemand: effective = max(sum(app) + sum(sidecars), max_i(init_i + sidecars before i)) --


def _app(count: int) -> ContainerVGPU:
    return ContainerVGPU(f"a{count}", VGPURequest(count))


def _init(count: int, *, sidecar: bool = False) -> ContainerVGPU:
    return ContainerVGPU(f"i{count}", VGPURequest(count), init=True, sidecar=sidecar)


DEMAND_ROWS = [
    # (containers in spec order, init first), total_vgpus, min_cards
    ((), 0, 0),
    ((_app(2), _app(1)), 3, 2),  # app containers run together: sum
    ((_init(4), _app(1)), 4, 4),  # a larger init container sets the peak
    ((_init(3), _app(2), _app(2)), 4, 3),  # the app sum beats the init container
    ((_init(1), _init(3), _app(2)), 3, 3),  # init containers run one at a time: max, not sum
    ((_init(1, sidecar=True), _init(2), _app(1)), 3, 2),  # sidecar before init: 1 + 2
    ((_init(2), _init(1, sidecar=True), _app(1)), 2, 2),  # sidecar after init: max(2, 1 + 1)
    ((_init(1, sidecar=True), _app(3)), 4, 3),  # sidecar runs beside the app containers
]


@pytest.mark.parametrize(("containers", "total", "min_cards"), DEMAND_ROWS)
def test_demand_formula(containers: tuple[ContainerVGPU, ...], total: int, min_cards: int) -> None:
    demand = PodGPUDemand(containers)
    assert demand.total_vgpus == total
    assert demand.min_cards == min_cards
    assert demand.is_gpu_pod is bool(containers)


def test_demand_memory_uses_the_same_formula() -> None:
    demand = PodGPUDemand(
        (
            ContainerVGPU("init", VGPURequest(1), init=True),  # whole card: 16384
            ContainerVGPU("a", VGPURequest(2, mem_mib=3000)),  # 6000
            ContainerVGPU("b", VGPURequest(1, mem_percent=25)),  # 4096
        )
    )
    assert demand.memory_on(16384) == max(16384, 6000 + 4096)
    assert demand.memory_on(65536) == 65536
    assert [c.name for c in demand.init] == ["init"]
    assert [c.name for c in demand.app] == ["a", "b"]


# --- read_demand ------------------------------------------------------------------------------


def _pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    return {"metadata": {"name": "p"}, "spec": spec}


def _container(name: str, limits: Any = None, requests: Any = None, **extra: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    return {"name": name, "resources": resources, **extra}


READ_ROWS = [
    # limits, requests, expected request (None: no GPU)
    ({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "6k"}, None, VGPURequest(1, mem_mib=6000)),
    (None, {"nvidia.com/gpu": "2"}, VGPURequest(2)),  # requests read when limits are absent
    (
        {"nvidia.com/gpu": "1"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "30"},
        VGPURequest(1, cores=30),
    ),
    ({"nvidia.com/gpumem": "2000"}, None, VGPURequest(1, mem_mib=2000)),  # count 1, as HAMi
    ({"nvidia.com/gpumem-percentage": 50}, None, VGPURequest(1, mem_percent=50)),
    ({"nvidia.com/gpu": "0"}, None, None),
    ({"cpu": "2", "memory": "1Gi"}, None, None),
    ({"volcano.sh/vgpu-number": "2"}, None, None),  # dialects are the webhook's business
]


@pytest.mark.parametrize(("limits", "requests", "expected"), READ_ROWS)
def test_read_demand(limits: Any, requests: Any, expected: VGPURequest | None) -> None:
    demand = read_demand(_pod(_container("c", limits, requests)))
    if expected is None:
        assert not demand.is_gpu_pod
    else:
        assert demand.containers == (ContainerVGPU("c", expected),)


READ_ERRORS = [
    ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"}, "requests '2' differ from limits '1'"),
    ({"nvidia.com/gpu": "1.5"}, None, "not a whole number"),
    (
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1", "nvidia.com/gpumem-percentage": "1"},
        None,
        "both set",
    ),
    ({"nvidia.com/gpucores": "50"}, None, "cores-only"),
    ({"nvidia.com/gpu": "17"}, None, "from 1 to 16"),
]


@pytest.mark.parametrize(("limits", "requests", "message"), READ_ERRORS)
def test_read_demand_rejects_inconsistent(limits: Any, requests: Any, message: str) -> None:
    with pytest.raises(InvalidGPURequest, match=message) as info:
        read_demand(_pod(_container("c", limits, requests)))
    assert info.value.container == "c"


def test_read_demand_init_and_sidecar_containers() -> None:
    pod = _pod(
        _container("app", {"nvidia.com/gpu": "1"}),
        init=(
            _container("side", {"nvidia.com/gpu": "1"}, restartPolicy="Always"),
            _container("warm", {"nvidia.com/gpu": "3"}),
            _container("plain", {"cpu": "1"}),
        ),
    )
    demand = read_demand(pod)
    assert [(c.name, c.init, c.sidecar) for c in demand.containers] == [
        ("side", True, True),
        ("warm", True, False),
        ("app", False, False),
    ]
    assert demand.total_vgpus == 4  # warm (3) beside the sidecar (1)


def test_read_demand_custom_names_and_max() -> None:
    names = ResourceNames(
        "hami.io/gpu", "hami.io/gpumem", "hami.io/gpumem-percentage", "hami.io/gpucores"
    )
    pod = _pod(_container("c", {"hami.io/gpu": "20", "nvidia.com/gpu": "1"}))
    with pytest.raises(InvalidGPURequest, match="from 1 to 16"):
        read_demand(pod, names)
    demand = read_demand(pod, names, max_vgpus=32)
    assert demand.containers[0].request == VGPURequest(20)


def test_read_demand_ignores_odd_shapes() -> None:
    assert not read_demand({}).is_gpu_pod
    assert not read_demand({"spec": {"containers": "nope"}}).is_gpu_pod
    assert not read_demand({"spec": {"containers": [None, {"resources": None}]}}).is_gpu_pod


# --- JSON Pointer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "escaped"),
    [
        ("plain", "plain"),
        ("spotpack.io/vgpu-source", "spotpack.io~1vgpu-source"),
        ("a~b", "a~0b"),
        ("~/", "~0~1"),
        ("~1", "~01"),  # ~ first, so a literal "~1" does not turn into "/"
        (3, "3"),
    ],
)
def test_pointer_escape(token: str | int, escaped: str) -> None:
    assert escape(token) == escaped


def test_pointer_path() -> None:
    assert path() == ""
    assert path("spec", "containers", 0, "resources") == "/spec/containers/0/resources"
    assert path("metadata", "annotations", "a/b") == "/metadata/annotations/a~1b"
