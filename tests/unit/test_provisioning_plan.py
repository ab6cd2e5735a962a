"""The planner, table by table: capacity types, vGPU slices, GPU types, arch, zones, limits,
existing and in-flight capacity, determinism."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

import pytest

from spotpack.catalog import load_catalog
from spotpack.gpu.assignment import Assignment, DeviceGrant
from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs
from spotpack.gpu.usage import NodeUsage
from spotpack.provisioning import (
    CapacityNeed,
    Limits,
    NodeCapacity,
    Offering,
    Plan,
    PlannedNode,
    PodDemand,
    Resources,
    in_flight_node,
    offerings_from_catalog,
    plan,
)
from spotpack.vgpu.model import ContainerVGPU, PodGPUDemand, VGPURequest

ZONES = ("us-east-1a", "us-east-1b")
TYPES = (
    "m5.large",
    "m5.xlarge",
    "m5.2xlarge",
    "m5.4xlarge",
    "c5.xlarge",
    "r5.xlarge",
    "m6g.large",
    "m6g.xlarge",
    "g4dn.xlarge",
    "g4dn.12xlarge",
    "g5.xlarge",
)
GIB = 1024


@cache
def offerings() -> tuple[Offering, ...]:
    catalog = load_catalog()
    return tuple(offerings_from_catalog(catalog, "us-east-1", ZONES, types=TYPES))


def by_type(name: str, capacity: str = "spot", zone: str = "us-east-1a") -> Offering:
    return next(
        o
        for o in offerings()
        if o.instance_type == name and o.capacity == capacity and o.zone == zone
    )


def gpu(count: int = 1, mem_mib: int | None = None, cores: int | None = None) -> PodGPUDemand:
    return PodGPUDemand(
        (ContainerVGPU("main", VGPURequest(count=count, mem_mib=mem_mib, cores=cores)),)
    )


def pod(
    key: str,
    cpu_m: int = 1000,
    mem_mib: int = 2 * GIB,
    *,
    need: CapacityNeed = CapacityNeed.ANY,
    gpu_demand: PodGPUDemand | None = None,
    arch: set[str] | None = None,
    zones: set[str] | None = None,
    group: str = "g",
    rerun: float = 0.0,
) -> PodDemand:
    return PodDemand(
        key=key,
        uid=f"uid-{key}",
        group=group,
        resources=Resources(cpu_m, mem_mib, 1),
        gpu=gpu_demand or PodGPUDemand(),
        capacity=need,
        arch=frozenset(arch) if arch is not None else None,
        zones=frozenset(zones) if zones is not None else None,
        rerun_cost=rerun,
    )


def node_of(result: Plan, key: str) -> str:
    return result.node_of()[key]


def planned(result: Plan, key: str) -> PlannedNode:
    return next(n for n in result.new_nodes if key in n.pods)


def test_nothing_pending_is_an_empty_plan() -> None:
    result = plan([], (), offerings())
    assert result.new_nodes == () and not result.onto_existing and not result.unplaceable
    assert result.cost_per_hour == 0


def test_driver_on_demand_executors_on_spot() -> None:
    pods = [pod("ns/driver", 1000, 4 * GIB, need=CapacityNeed.ON_DEMAND_ONLY, group="spark:a")]
    pods += [
        pod(f"ns/exec-{i}", 2000, 8 * GIB, need=CapacityNeed.SPOT_ONLY, group="spark:a")
        for i in range(6)
    ]
    result = plan(pods, (), offerings())
    assert not result.unplaceable
    assert planned(result, "ns/driver").capacity == "on-demand"
    for i in range(6):
        assert planned(result, f"ns/exec-{i}").capacity == "spot"
    assert result.cost_per_hour == pytest.approx(sum(n.price_per_hour for n in result.new_nodes))


def test_spot_preferred_goes_to_spot_and_rides_free_on_demand_room() -> None:
    result = plan([pod("ns/flex", 500, GIB, need=CapacityNeed.SPOT_PREFERRED)], (), offerings())
    assert planned(result, "ns/flex").capacity == "spot"
    # A driver on an on-demand node leaves room: the flexible pod takes it instead of a spot node.
    pods = [
        pod("ns/driver", 2500, 4 * GIB, need=CapacityNeed.ON_DEMAND_ONLY),
        pod("ns/flex", 500, GIB, need=CapacityNeed.SPOT_PREFERRED),
    ]
    result = plan(pods, (), offerings())
    assert len(result.new_nodes) == 1
    assert set(result.new_nodes[0].pods) == {"ns/driver", "ns/flex"}


def test_gpu_slices_share_a_card() -> None:
    pods = [pod(f"ns/infer-{i}", 500, GIB, gpu_demand=gpu(1, 4 * GIB)) for i in range(4)]
    result = plan(pods, (), offerings())
    assert not result.unplaceable
    assert len(result.new_nodes) == 1
    node = result.new_nodes[0]
    assert node.instance_type == "g4dn.xlarge"  # one T4 (16 GiB) holds four 4 GiB slices
    assert len(node.pods) == 4


def test_whole_cards_are_not_shared() -> None:
    pods = [pod(f"ns/train-{i}", 500, GIB, gpu_demand=gpu(1)) for i in range(2)]
    result = plan(pods, (), offerings())
    assert sum(len(n.pods) for n in result.new_nodes) == 2
    assert all(len(n.pods) == 1 or n.instance_type == "g4dn.12xlarge" for n in result.new_nodes)


def test_cpu_pods_never_get_gpu_types() -> None:
    only_gpu = [o for o in offerings() if o.gpu is not None]
    result = plan([pod("ns/web")], (), only_gpu)
    assert not result.new_nodes
    assert "GPU types are not used for CPU pods" in result.unplaceable["ns/web"]
    mixed = [pod("ns/web"), pod("ns/infer", gpu_demand=gpu(1, 2 * GIB))]
    result = plan(mixed, (), offerings())
    assert by_type(planned(result, "ns/web").instance_type).gpu is None
    assert by_type(planned(result, "ns/infer").instance_type).gpu is not None
    assert planned(result, "ns/web") is not planned(result, "ns/infer")


@pytest.mark.parametrize(("arch", "expected"), [({"arm64"}, "arm64"), ({"amd64"}, "amd64")])
def test_arch_is_honoured(arch: set[str], expected: str) -> None:
    result = plan([pod(f"ns/p{i}", arch=arch) for i in range(3)], (), offerings())
    assert {n.arch for n in result.new_nodes} == {expected}
    assert all(by_type(n.instance_type).arch == expected for n in result.new_nodes)


def test_zones_are_honoured() -> None:
    pods = [pod("ns/a", zones={"us-east-1b"}), pod("ns/b", zones={"us-east-1a", "us-east-1b"})]
    pods.append(pod("ns/c", zones={"us-east-1c"}))  # no offering there
    result = plan(pods, (), offerings())
    assert planned(result, "ns/a").zone == "us-east-1b"
    assert planned(result, "ns/b").zone in ZONES
    assert "us-east-1c" in result.unplaceable["ns/c"]


def test_pod_too_big_for_any_type_is_unplaceable_with_reason() -> None:
    result = plan([pod("ns/huge", 500_000, GIB)], (), offerings())
    assert not result.new_nodes
    assert "no instance type fits" in result.unplaceable["ns/huge"]
    assert "cpu=500000m" in result.unplaceable["ns/huge"]


@pytest.mark.parametrize(
    ("limits", "placed", "reason"),
    [
        (Limits(max_nodes=1), 1, "max_nodes=1"),
        (Limits(max_gpus=1), 1, "max_gpus=1"),
        (Limits(max_cost_per_hour=0.5), 3, "max_cost_per_hour=0.5"),
    ],
)
def test_limits_are_honoured(limits: Limits, placed: int, reason: str) -> None:
    # Whole-card pods, each alone on a one-card node (cheapest: g4dn.xlarge spot ~0.158/h).
    pods = [pod(f"ns/g{i}", 3000, 12 * GIB, gpu_demand=gpu(1)) for i in range(5)]
    result = plan(pods, (), offerings(), limits)
    assert len(result.new_nodes) == placed
    assert len(result.unplaceable) == 5 - placed
    assert all(reason in why for why in result.unplaceable.values())
    assert result.cost_per_hour <= (limits.max_cost_per_hour or 1e9)


def existing_node(
    name: str,
    free: Resources,
    *,
    capacity: str = "on-demand",
    zone: str = "us-east-1a",
    arch: str = "amd64",
    gpus: NodeGPUs | None = None,
    usage: NodeUsage | None = None,
) -> NodeCapacity:
    return NodeCapacity(
        name=name,
        instance_type="m5.2xlarge",
        zone=zone,
        capacity=capacity,  # type: ignore[arg-type]
        arch=arch,
        free=free,
        gpus=gpus,
        usage=usage,
    )


def test_existing_capacity_is_used_first_within_its_room() -> None:
    node = existing_node("node-1", Resources(2500, 8 * GIB, 10))
    pods = [pod(f"ns/p{i}", 1000, GIB) for i in range(4)]
    result = plan(pods, [node], offerings())
    assert list(result.onto_existing.values()).count("node-1") == 2
    assert sum(len(n.pods) for n in result.new_nodes) == 2


def test_existing_capacity_respects_capacity_type_arch_and_zone() -> None:
    spot_node = existing_node("spot-1", Resources(8000, 32 * GIB, 50), capacity="spot")
    arm_node = existing_node("arm-1", Resources(8000, 32 * GIB, 50), arch="arm64")
    zone_b = existing_node("b-1", Resources(8000, 32 * GIB, 50), zone="us-east-1b")
    pods = [
        pod("ns/driver", need=CapacityNeed.ON_DEMAND_ONLY, arch={"amd64"}, zones={"us-east-1a"}),
        pod("ns/exec", need=CapacityNeed.SPOT_ONLY),
        pod("ns/arm", arch={"arm64"}, need=CapacityNeed.ON_DEMAND_ONLY),
        pod("ns/zoned", zones={"us-east-1b"}, need=CapacityNeed.ON_DEMAND_ONLY, arch={"amd64"}),
    ]
    result = plan(pods, [spot_node, arm_node, zone_b], offerings())
    assert result.onto_existing == {
        "ns/exec": "spot-1",
        "ns/arm": "arm-1",
        "ns/zoned": "b-1",
    }
    assert planned(result, "ns/driver").capacity == "on-demand"


def gpu_node(
    name: str, cards: int, mem: int, used: Sequence[tuple[int, int]]
) -> tuple[NodeGPUs, NodeUsage]:
    gpus = NodeGPUs(
        tuple(
            Card(uuid=f"{name}-gpu{i}", index=i, mem_mib=mem, slots=10, model="A10G")
            for i in range(cards)
        ),
        InventorySource.HAMI,
    )
    usage = NodeUsage(gpus)
    for position, mib in used:
        usage.add(Assignment(name, ((DeviceGrant(f"{name}-gpu{position}", "A10G", mib, 0),),)))
    return gpus, usage


def test_existing_gpu_node_is_filled_per_card() -> None:
    # Two 22 GiB cards, 16 GiB used on card 0: a 10 GiB slice fits only card 1, a second one nowhere.
    gpus, usage = gpu_node("gpu-1", 2, 22 * GIB, [(0, 16 * GIB)])
    node = existing_node("gpu-1", Resources(16000, 64 * GIB, 50), gpus=gpus, usage=usage)
    pods = [pod(f"ns/s{i}", 500, GIB, gpu_demand=gpu(1, 10 * GIB)) for i in range(3)]
    cpu_pod = pod("ns/web", 500, GIB)
    result = plan([*pods, cpu_pod], [node], offerings())
    on_node = [k for k, n in result.onto_existing.items() if n == "gpu-1"]
    assert len(on_node) == 2  # card 1 takes two 10 GiB slices (20 of 22 GiB)
    assert "ns/web" not in result.onto_existing  # never a CPU pod on a GPU node
    assert usage.sum_slots == 1  # the caller's usage is not changed


def test_in_flight_capacity_is_counted() -> None:
    first = plan([pod(f"ns/p{i}", 1000, 3 * GIB) for i in range(3)], (), offerings())
    claims = [
        in_flight_node(n.claim_id, by_type(n.instance_type, n.capacity, n.zone))
        for n in first.new_nodes
    ]
    # The same pods still pending (not scheduled yet) plus one more: no second launch for them.
    pods = [pod(f"ns/p{i}", 1000, 3 * GIB) for i in range(4)]
    again = plan(pods, claims, offerings())
    for i in range(3):
        assert again.onto_existing.get(f"ns/p{i}") in {c.name for c in claims}
    assert sum(len(n.pods) for n in again.new_nodes) + len(again.onto_existing) == 4


def workload(seed: int) -> list[PodDemand]:
    rng = random.Random(seed)
    out = []
    for i in range(60):
        kind = rng.random()
        group, rerun = f"app{i % 7}", rng.choice((0.0, 0.5, 5.0))
        if kind < 0.2:
            mem = rng.choice((2, 4, 8)) * GIB
            out.append(
                pod(f"ns/g{i}", 1000, 2 * GIB, gpu_demand=gpu(1, mem), group=group, rerun=rerun)
            )
        else:
            cpu, mem = rng.choice((500, 1000, 2000)), rng.choice((1, 2, 4)) * GIB
            need = rng.choice(list(CapacityNeed))
            out.append(pod(f"ns/c{i}", cpu, mem, need=need, group=group, rerun=rerun))
    return out


def test_same_input_same_plan_whatever_the_order() -> None:
    pods = workload(7)
    one = plan(pods, (), offerings())
    shuffled = list(pods)
    random.Random(1).shuffle(shuffled)
    two = plan(shuffled, (), offerings())
    assert one == two
    assert [n.claim_id for n in one.new_nodes] == [n.claim_id for n in two.new_nodes]
    assert len({n.claim_id for n in one.new_nodes}) == len(one.new_nodes)


def test_fallback_types_hold_what_the_chosen_type_holds() -> None:
    result = plan(workload(3), (), offerings())
    for node in result.new_nodes:
        chosen = by_type(node.instance_type, node.capacity, node.zone)
        for name in node.instance_types[1:]:
            other = by_type(name, node.capacity, node.zone)
            assert chosen.allocatable.fits(other.allocatable)
            assert other.arch == chosen.arch
            assert (other.gpu is None) == (chosen.gpu is None)
        prices = [
            by_type(t, node.capacity, node.zone).price_per_hour for t in node.instance_types[1:]
        ]
        assert prices == sorted(prices)


def test_one_large_versus_several_small() -> None:
    # Eight 1.5 vCPU pods: one per m5.large would be 8 nodes; the planner must not do worse
    # than the best single type holding them all nor than one node per pod.
    pods = [
        pod(f"ns/p{i}", 1500, 2 * GIB, need=CapacityNeed.SPOT_ONLY, arch={"amd64"})
        for i in range(8)
    ]
    result = plan(pods, (), offerings())
    one_each = 8 * by_type("m5.large").price_per_hour
    one_big = by_type("m5.4xlarge").price_per_hour
    assert result.cost_per_hour <= min(one_each, one_big) + 1e-9


def test_a_lone_small_pod_gets_the_cheapest_type_that_fits() -> None:
    result = plan([pod("ns/tiny", 250, 512, need=CapacityNeed.ON_DEMAND_ONLY)], (), offerings())
    fits = [
        o
        for o in offerings()
        if o.capacity == "on-demand"
        and o.gpu is None
        and Resources(250, 512, 1).fits(o.allocatable)
    ]
    assert result.cost_per_hour == pytest.approx(min(o.price_per_hour for o in fits))


def test_risk_cost_is_charged_on_spot_only() -> None:
    pods = [
        pod("ns/a", need=CapacityNeed.SPOT_ONLY, rerun=730.0),
        pod("ns/b", need=CapacityNeed.ON_DEMAND_ONLY, rerun=730.0),
    ]
    result = plan(pods, (), offerings())
    spot, od = planned(result, "ns/a"), planned(result, "ns/b")
    rate = by_type(spot.instance_type, "spot", spot.zone).interruption_rate
    assert spot.risk_cost_per_hour == pytest.approx(rate)  # rate / 730 * 730
    assert od.risk_cost_per_hour == 0
    assert result.risk_adjusted_cost == pytest.approx(result.cost_per_hour + rate)


def test_an_applications_pods_share_nodes() -> None:
    # Identical executors of two apps: pods are handed out in (group, key) order, so every
    # node holds one app's executors, except at most one node at the boundary.
    pods = [
        pod(f"ns/{app}-{i}", 1500, 3 * GIB, need=CapacityNeed.SPOT_ONLY, group=f"spark:{app}")
        for app in ("b", "a")
        for i in range(9)
    ]
    result = plan(pods, (), offerings())
    groups = [{key.split("-")[0] for key in node.pods} for node in result.new_nodes]
    assert sum(len(g) > 1 for g in groups) <= 1
