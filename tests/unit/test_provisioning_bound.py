"""The MILP lower bound (never above the planner's cost) and the all-on-demand baseline."""

from __future__ import annotations

import random
from functools import cache

import pytest

from spotpack.catalog import load_catalog
from spotpack.provisioning import (
    CapacityNeed,
    Offering,
    PodDemand,
    Resources,
    offerings_from_catalog,
    plan,
)
from spotpack.provisioning.bound import (
    card_patterns,
    lower_bound,
    on_demand_baseline,
    reduce_offerings,
)
from spotpack.provisioning.kinds import aggregate
from spotpack.vgpu.model import ContainerVGPU, PodGPUDemand, VGPURequest

ZONES = ("us-east-1a", "us-east-1b")
TYPES = (
    "m5.large",
    "m5.xlarge",
    "m5.2xlarge",
    "c5.xlarge",
    "r5.large",
    "m6g.large",
    "m6g.xlarge",
    "g4dn.xlarge",
    "g4dn.12xlarge",
    "g6e.xlarge",
)
GIB = 1024


@cache
def offerings() -> tuple[Offering, ...]:
    return tuple(offerings_from_catalog(load_catalog(), "us-east-1", ZONES, types=TYPES))


def slice_(mem_mib: int | None, count: int = 1) -> PodGPUDemand:
    return PodGPUDemand((ContainerVGPU("main", VGPURequest(count=count, mem_mib=mem_mib)),))


def pod(key: str, cpu: int, mem: int, **kw: object) -> PodDemand:
    return PodDemand(key=key, uid=key, group="g", resources=Resources(cpu, mem, 1), **kw)  # type: ignore[arg-type]


def test_one_pod_bound_is_the_cheapest_fit() -> None:
    pods = [pod("ns/a", 500, GIB, capacity=CapacityNeed.ON_DEMAND_ONLY)]
    bound = lower_bound(pods, offerings())
    result = plan(pods, (), offerings())
    assert bound.status == "optimal"
    assert bound.value == pytest.approx(result.risk_adjusted_cost, rel=1e-6)


def test_pods_that_fit_nothing_have_no_bound() -> None:
    bound = lower_bound([pod("ns/huge", 10**6, GIB)], offerings())
    assert bound.value is None and "infeasible" in bound.status


def random_pods(seed: int) -> list[PodDemand]:
    rng = random.Random(seed)
    out = []
    for i in range(rng.randint(3, 25)):
        gpu = PodGPUDemand()
        if rng.random() < 0.3:
            mem = rng.choice((2, 4, 8, 12, None))  # None: a whole card
            gpu = slice_(mem * GIB if mem else None, rng.choice((1, 1, 2)))
        out.append(
            pod(
                f"ns/p{i}",
                rng.choice((250, 500, 1000, 1500, 3000)),
                rng.choice((1, 2, 3, 6, 12)) * GIB,
                gpu=gpu,
                capacity=rng.choice(list(CapacityNeed)),
                arch=rng.choice((None, None, frozenset({"amd64"}), frozenset({"arm64"}))),
                zones=rng.choice((None, None, frozenset({"us-east-1b"}))),
                rerun_cost=rng.choice((0.0, 1.0, 50.0)),
            )
        )
    return out


@pytest.mark.parametrize("seed", range(12))
def test_bound_never_exceeds_the_plan(seed: int) -> None:
    pods = random_pods(seed)
    result = plan(pods, (), offerings())
    bound = lower_bound(pods, offerings(), time_limit=20)
    if result.unplaceable:
        assert bound.value is None
        return
    assert bound.value is not None, bound.status
    assert bound.value <= result.risk_adjusted_cost + 1e-6


def test_pattern_columns_tighten_the_pooled_rows() -> None:
    # Whole cards and 8 GiB slices: pooled card memory would let them share cards.
    pods = [pod(f"ns/w{i}", 1000, 2 * GIB, gpu=slice_(None)) for i in range(3)]
    pods += [pod(f"ns/s{i}", 1000, 2 * GIB, gpu=slice_(8 * GIB)) for i in range(3)]
    pooled = lower_bound(pods, offerings(), pattern_cap=0)
    patterned = lower_bound(pods, offerings())
    result = plan(pods, (), offerings())
    assert pooled.value is not None and patterned.value is not None
    assert pooled.value <= patterned.value <= result.risk_adjusted_cost + 1e-9
    assert patterned.patterned > 0


def testcard_patterns_are_the_maximal_fills() -> None:
    # A 16 GiB card with 10 slots: 4 GiB and 8 GiB slices.
    assert sorted(card_patterns(16384, 10, [(4096, 0), (8192, 0)], 100) or []) == [
        (0, 2),
        (2, 1),
        (4, 0),
    ]
    # Exclusive vGPUs hold a card alone; slots cap small slices.
    assert card_patterns(16384, 3, [(1024, 0), (16384, 100)], 100) == [(3, 0), (0, 1)]
    assert card_patterns(16384, 10, [(1024, 0)], 0) is None  # beyond the cap


def test_zones_merge_only_when_no_pod_tells_them_apart() -> None:
    free = [pod("ns/a", 500, GIB)]
    pinned = [*free, pod("ns/b", 500, GIB, zones=frozenset({"us-east-1b"}))]
    merged = reduce_offerings(aggregate(free)[0], offerings())
    split = reduce_offerings(aggregate(pinned)[0], offerings())
    assert {o.zone for o in merged} == {"us-east-1a"}
    assert {o.zone for o in split} == set(ZONES)


def test_baseline_gives_each_gpu_pod_whole_cards_on_demand() -> None:
    pods = [
        pod(f"ns/i{i}", 2000, 8 * GIB, gpu=slice_(8 * GIB), capacity=CapacityNeed.SPOT_PREFERRED)
        for i in range(6)
    ]
    base = on_demand_baseline(pods, offerings())
    cheapest = min(
        o.price_per_hour
        for o in offerings()
        if o.capacity == "on-demand"
        and o.gpu is not None
        and Resources(2000, 8 * GIB, 1).fits(o.allocatable)
    )
    assert base.gpu_cost_per_hour == pytest.approx(6 * cheapest)
    assert base.cpu_cost_per_hour == 0 and base.unplaceable == 0
    shared = plan(pods, (), offerings())
    assert shared.risk_adjusted_cost < base.cost_per_hour / 2


def test_baseline_packs_cpu_pods_on_demand() -> None:
    pods = [pod(f"ns/e{i}", 1000, 4 * GIB, capacity=CapacityNeed.SPOT_ONLY) for i in range(4)]
    base = on_demand_baseline(pods, offerings())
    od_only = [o for o in offerings() if o.capacity == "on-demand"]
    forced = [
        PodDemand(p.key, p.uid, p.group, p.resources, capacity=CapacityNeed.ON_DEMAND_ONLY)
        for p in pods
    ]
    assert base.cost_per_hour == pytest.approx(plan(forced, (), od_only).cost_per_hour)
    assert plan(pods, (), offerings()).cost_per_hour < base.cost_per_hour


def test_nothing_pending_bounds_at_zero() -> None:
    bound = lower_bound([], offerings())
    assert bound.value == 0.0
