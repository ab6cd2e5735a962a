"""Per-card fit: which cards a pod's vGPUs go on, and why not when they do not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spotpack.gpu.assignment import build_assignment, pod_layout
from spotpack.gpu.fit import FitResult, could_fit, fit, fit_prepared, prepare
from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs, inventory_from_node
from spotpack.gpu.usage import Assignment, ContainerKind, DeviceGrant, NodeUsage
from spotpack.policy import GPUPolicy
from spotpack.vgpu import ContainerVGPU, PodGPUDemand, VGPURequest, read_demand

FIXTURE = Path("/work/shared/data/protocol/extender-filter-fullnodes.json")
BINPACK, SPREAD = GPUPolicy.BINPACK, GPUPolicy.SPREAD


def node(
    n: int = 4,
    *,
    mem: int = 10_000,
    slots: int = 4,
    models: tuple[str, ...] = ("NVIDIA A10G",),
    unhealthy: tuple[int, ...] = (),
) -> NodeGPUs:
    cards = tuple(
        Card(f"GPU-{i}", i, mem, 100, slots, models[i % len(models)], healthy=i not in unhealthy)
        for i in range(n)
    )
    return NodeGPUs(cards, InventorySource.HAMI)


def used(gpus: NodeGPUs, *taken: tuple[int, int, int]) -> NodeUsage:
    """Usage with one pod per ``(card, MiB, cores)``."""
    usage = NodeUsage(gpus)
    for card, mem, cores in taken:
        usage.add(Assignment("n", ((DeviceGrant(f"GPU-{card}", "m", mem, cores),),)))
    return usage


def one(count: int = 1, **kw: int) -> PodGPUDemand:
    return PodGPUDemand((ContainerVGPU("main", VGPURequest(count, **kw)),))


@dataclass(frozen=True)
class Case:
    name: str
    demand: PodGPUDemand
    taken: tuple[tuple[int, int, int], ...] = ()
    policy: GPUPolicy = BINPACK
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    gpus: NodeGPUs = field(default_factory=node)
    cards: tuple[tuple[int, ...], ...] | None = None
    """Expected card indexes per container; None: no fit."""
    reason: str = ""
    unresolvable: bool = False


CASES = [
    Case("empty node, binpack takes card 0", one(mem_mib=4000), cards=((0,),)),
    Case(
        "binpack takes the fullest card that fits",
        one(mem_mib=4000),
        taken=((1, 5000, 0), (2, 7000, 0)),
        cards=((1,),),
    ),
    Case(
        "spread takes the emptiest card",
        one(mem_mib=4000),
        taken=((0, 5000, 0), (1, 7000, 0), (3, 1, 0)),
        policy=SPREAD,
        cards=((2,),),
    ),
    Case(
        "two vGPUs on two different cards, fullest first",
        one(2, mem_mib=4000),
        taken=((3, 5000, 0), (1, 2000, 0)),
        cards=((3, 1),),
    ),
    Case(
        "percent of each card, rounded down",
        one(mem_percent=50),
        taken=((0, 5001, 0),),
        cards=((1,),),
    ),
    Case(
        "no card with enough memory",
        one(mem_mib=8192),
        taken=((0, 6000, 0), (1, 6000, 0), (2, 6000, 0), (3, 5904, 0)),
        reason="no card with 8192 MiB free (largest free: 4096 MiB on card 3)",
    ),
    Case(
        "needs two cards, one healthy",
        one(2, mem_mib=1000),
        gpus=node(2, unhealthy=(1,)),
        reason="needs 2 cards, 1 healthy",
        unresolvable=True,
    ),
    Case(
        "card smaller than the request",
        one(mem_mib=30_000),
        reason="needs 30000 MiB per card, cards have 10000 MiB",
        unresolvable=True,
    ),
    Case(
        "excluded type, case-insensitive substring",
        one(mem_mib=10),
        gpus=node(models=("NVIDIA-Tesla T4",)),
        exclude=("t4",),
        reason="GPU type excluded: t4 (node has NVIDIA-Tesla T4)",
        unresolvable=True,
    ),
    Case(
        "not included type",
        one(mem_mib=10),
        include=("A100", "H100"),
        reason="GPU type not included: wants a100, h100 (node has NVIDIA A10G)",
        unresolvable=True,
    ),
    Case(
        "include picks the allowed model on a mixed node",
        one(mem_mib=10),
        gpus=node(models=("NVIDIA T4", "NVIDIA L4")),
        include=("l4",),
        cards=((1,),),
    ),
    Case(
        "mixed node, too few allowed cards",
        one(3, mem_mib=10),
        gpus=node(models=("NVIDIA T4", "NVIDIA L4")),
        exclude=("T4",),
        reason="needs 3 cards, 2 healthy of an allowed type",
        unresolvable=True,
    ),
    Case(
        "mixed node, every card excluded",
        one(mem_mib=10),
        gpus=node(models=("NVIDIA T4", "Tesla T4")),
        exclude=("T4",),
        reason="GPU type excluded: t4 (node has NVIDIA T4, Tesla T4)",
        unresolvable=True,
    ),
    Case(
        "no free slot",
        one(mem_mib=10),
        gpus=node(1, slots=1),
        taken=((0, 10, 0),),
        reason="needs 1 card with a free vGPU slot and cores, 0 have one",
    ),
    Case(
        "cores add up to 100",
        one(mem_mib=10, cores=50),
        taken=((0, 10, 60), (1, 10, 50), (2, 10, 70), (3, 10, 90)),
        cards=((1,),),
    ),
    Case(
        "not enough cores anywhere",
        one(mem_mib=10, cores=50),
        taken=((0, 10, 60), (1, 10, 70), (2, 10, 80), (3, 10, 90)),
        reason="no card with 50% cores free (most free: 40% on card 0)",
    ),
    Case(
        "a card whose cores are all reserved takes no 0-core vGPU",
        one(mem_mib=10),
        gpus=node(2),
        taken=((0, 10, 60), (0, 10, 40), (1, 10, 100)),
        reason="needs 1 card with a free vGPU slot and cores, 0 have one",
    ),
    Case(
        "exclusive needs an unused card",
        one(mem_mib=10, cores=100),
        taken=((0, 10, 0), (1, 10, 0), (2, 10, 0)),
        cards=((3,),),
    ),
    Case(
        "exclusive with every card in use",
        one(mem_mib=10, cores=100),
        gpus=node(2),
        taken=((0, 10, 0), (1, 10, 0)),
        reason="needs 1 unused card (a whole card or cores=100), 0 unused",
    ),
    Case(
        "a bare request is a whole card, exclusive",
        one(),
        taken=((0, 10, 0),),
        cards=((1,),),
    ),
    Case(
        "whole card with cores=0 still needs all the memory free",
        one(cores=0),
        gpus=node(2),
        taken=((0, 1, 0), (1, 1, 0)),
        reason="no card with all of its memory free (largest free: 9999 MiB on card 0)",
    ),
    Case(
        "two vGPUs, one card has room",
        one(2, mem_mib=6000),
        gpus=node(2),
        taken=((0, 5000, 0),),
        reason="needs 2 cards with 6000 MiB free, 1 has (largest free: 10000 MiB on card 1)",
    ),
    Case(
        "two percent vGPUs, one card has room",
        one(2, mem_percent=60),
        gpus=node(2),
        taken=((0, 5000, 0),),
        reason=(
            "needs 2 cards with 60% of its memory free, 1 has (largest free: 10000 MiB on card 1)"
        ),
    ),
    Case(
        "unhealthy cards are skipped",
        one(mem_mib=10),
        gpus=node(3, unhealthy=(0, 1)),
        cards=((2,),),
    ),
    Case(
        "no healthy card",
        one(mem_mib=10),
        gpus=node(2, unhealthy=(0, 1)),
        reason="needs 1 card, 0 healthy",
        unresolvable=True,
    ),
    Case(
        "a node without cards",
        one(mem_mib=10),
        gpus=NodeGPUs((), InventorySource.CATALOG),
        reason="needs 1 card, 0 healthy",
        unresolvable=True,
    ),
    Case(
        "split count 0",
        one(mem_mib=10),
        gpus=node(2, slots=0),
        reason="the cards have no vGPU slots (split count 0)",
        unresolvable=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fit_table(case: Case) -> None:
    usage = used(case.gpus, *case.taken)
    result = fit(
        case.demand,
        case.gpus,
        usage,
        policy=case.policy,
        include=case.include,
        exclude=case.exclude,
    )
    if case.cards is None:
        assert not result.ok
        assert result.assignment_devices is None
        assert result.reason == case.reason
        assert result.unresolvable is case.unresolvable
        return
    assert result.ok, result.reason
    assert result.reason == ""
    assert result.assignment_devices is not None
    got = tuple(
        tuple(case.gpus.positions[g.uuid] for g in devices) for devices in result.assignment_devices
    )
    assert got == case.cards


def test_grants_carry_uuid_model_memory_cores() -> None:
    gpus = node(2, mem=24_000)
    result = fit(one(mem_percent=25, cores=30), gpus, NodeUsage(gpus))
    assert result.assignment_devices == ((DeviceGrant("GPU-0", "NVIDIA A10G", 6000, 30),),)
    assert result.added == (1, 6000, 30)
    whole = fit(one(), gpus, NodeUsage(gpus))
    assert whole.assignment_devices == ((DeviceGrant("GPU-0", "NVIDIA A10G", 24_000, 100),),)
    assert whole.added == (1, 24_000, 100)


def test_default_cores_is_hamis_default_cores() -> None:
    gpus = node(1)
    result = fit(one(mem_mib=10), gpus, NodeUsage(gpus), default_cores=20)
    assert result.added == (1, 10, 20)


# --- several containers ----------------------------------------------------------------------


def demand(*containers: tuple[str, VGPURequest, ContainerKind]) -> PodGPUDemand:
    return PodGPUDemand(
        tuple(
            ContainerVGPU(
                name,
                request,
                init=kind is not ContainerKind.APP,
                sidecar=kind is ContainerKind.SIDECAR,
            )
            for name, request, kind in containers
        )
    )


APP, INIT, SIDECAR = ContainerKind.APP, ContainerKind.INIT, ContainerKind.SIDECAR


def test_app_containers_add_up() -> None:
    gpus = node(1)
    d = demand(("a", VGPURequest(1, mem_mib=6000), APP), ("b", VGPURequest(1, mem_mib=6000), APP))
    result = fit(d, gpus, NodeUsage(gpus))
    assert not result.ok
    assert result.reason.startswith("container b: no card with 6000 MiB free")
    assert result.unresolvable
    two = node(2)
    placed = fit(d, two, NodeUsage(two))
    assert placed.ok
    assert placed.assignment_devices is not None
    assert [g.uuid for c in placed.assignment_devices for g in c] == ["GPU-0", "GPU-1"]
    assert placed.added == (2, 12_000, 0)


def test_init_container_fits_on_its_own() -> None:
    """8000 MiB init then 8000 MiB app on one 10000 MiB card: they never run together."""
    gpus = node(1)
    d = demand(
        ("init", VGPURequest(1, mem_mib=8000), INIT), ("app", VGPURequest(1, mem_mib=8000), APP)
    )
    result = fit(d, gpus, NodeUsage(gpus))
    assert result.ok, result.reason
    assert result.added == (1, 8000, 0)


def test_init_container_sees_earlier_sidecars() -> None:
    gpus = node(1)
    d = demand(
        ("proxy", VGPURequest(1, mem_mib=3000), SIDECAR),
        ("init", VGPURequest(1, mem_mib=8000), INIT),
        ("app", VGPURequest(1, mem_mib=1000), APP),
    )
    result = fit(d, gpus, NodeUsage(gpus))
    assert not result.ok
    assert result.reason.startswith("container init: no card with 8000 MiB free")
    assert result.reason.endswith("(not even with the node empty)")
    assert result.unresolvable


def test_resolvable_only_when_the_empty_node_would_take_the_pod() -> None:
    """Pods that outgrow the node together must not make the scheduler preempt for nothing."""
    d = demand(("a", VGPURequest(1, mem_mib=6000), APP), ("b", VGPURequest(1, mem_mib=6000), APP))
    two = node(2)
    busy = used(two, (0, 5000, 0))
    result = fit(d, two, busy)
    assert not result.ok
    assert not result.unresolvable
    mixed = NodeGPUs(
        (Card("GPU-0", 0, 40_000, 100, 4, "A100"), Card("GPU-1", 1, 10_000, 100, 4, "A100")),
        InventorySource.HAMI,
    )
    big = one(2, mem_mib=20_000)
    result = fit(big, mixed, used(mixed))
    assert result.unresolvable
    assert result.reason == "needs 2 cards with 20000 MiB, 1 has that much"


def test_lone_init_container() -> None:
    gpus = node(1)
    d = demand(("init", VGPURequest(1, mem_mib=8000), INIT))
    result = fit(d, gpus, NodeUsage(gpus))
    assert result.ok
    assert result.added == (1, 8000, 0)


def test_no_gpu_demand_fits_anywhere() -> None:
    gpus = node(1)
    result = fit(PodGPUDemand(), gpus, NodeUsage(gpus))
    assert result == FitResult(True, "", (), False)


def test_build_assignment_places_devices_by_container_name() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [
                {"name": "sidecar-less"},
                {
                    "name": "main",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "1000"}},
                },
            ],
        }
    }
    d = read_demand(pod)
    gpus = node(1)
    result = fit(d, gpus, NodeUsage(gpus))
    assert result.assignment_devices is not None
    a = build_assignment("gpu-1", pod_layout(pod), d, result.assignment_devices)
    assert a.names == ("setup", "sidecar-less", "main")
    assert a.kinds == (INIT, APP, APP)
    assert a.containers == ((), (), (DeviceGrant("GPU-0", "NVIDIA A10G", 1000, 0),))
    with pytest.raises(ValueError, match="one device tuple"):
        build_assignment("gpu-1", pod_layout(pod), d, ())


# --- fast paths ------------------------------------------------------------------------------


def test_could_fit_false_means_fit_fails() -> None:
    gpus = node(2)
    usage = used(gpus, (0, 9000, 0), (1, 9500, 0))
    for d in (one(mem_mib=2000), one(3, mem_mib=10), one(cores=100, mem_mib=1)):
        prepared = prepare(d)
        assert not could_fit(prepared, gpus, usage)
        assert not fit_prepared(prepared, gpus, usage).ok
    assert could_fit(prepare(one(mem_mib=500)), gpus, usage)
    assert not could_fit(prepare(one(mem_mib=1), exclude=("a10g",)), gpus, usage)
    assert could_fit(prepare(PodGPUDemand()), gpus, usage)


def test_memo_returns_the_same_result_until_usage_changes() -> None:
    gpus = node(1)
    usage = NodeUsage(gpus)
    prepared = prepare(one(mem_mib=6000))
    first = fit_prepared(prepared, gpus, usage)
    assert fit_prepared(prepared, gpus, usage) is first
    assert first.assignment_devices is not None
    usage.add(Assignment("n", first.assignment_devices))
    second = fit_prepared(prepared, gpus, usage)
    assert not second.ok
    assert second.reason == "no card with 6000 MiB free (largest free: 4000 MiB on card 0)"


def test_memo_is_bounded() -> None:
    gpus = node(1)
    usage = NodeUsage(gpus)
    for mem in range(1, 100):
        fit_prepared(prepare(one(mem_mib=mem)), gpus, usage)
    assert len(usage.memo) <= 32


def test_foreign_usage_is_not_memoized() -> None:
    gpus = node(1)
    usage = NodeUsage(node(1))
    assert fit_prepared(prepare(one(mem_mib=1)), gpus, usage).ok
    assert usage.memo == {}


# --- golden traffic --------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURE.exists(), reason="golden fixtures not present")
def test_golden_pod_on_golden_nodes() -> None:
    body = json.loads(FIXTURE.read_text())
    d = read_demand(body["Pod"])
    assert d.containers[0].request == VGPURequest(1, mem_mib=6000)
    for item in body["Nodes"]["items"]:
        gpus = inventory_from_node(item, lambda _: None).gpus
        assert gpus is not None
        usage = NodeUsage(gpus)
        result = fit(d, gpus, usage)
        assert result.ok
        name = item["metadata"]["name"]
        assert result.assignment_devices == (
            (DeviceGrant(f"GPU-{name}", "NVIDIA-NVIDIA A10G", 6000, 0),),
        )
        for _ in range(2):  # 22888 MiB: three 6000 MiB vGPUs fit, the fourth does not
            assert result.assignment_devices is not None
            usage.add(Assignment(name, result.assignment_devices))
            result = fit(d, gpus, usage)
        assert result.ok
        assert result.assignment_devices is not None
        usage.add(Assignment(name, result.assignment_devices))
        last = fit(d, gpus, usage)
        assert last.reason == "no card with 6000 MiB free (largest free: 4888 MiB on card 0)"
        assert not last.unresolvable
