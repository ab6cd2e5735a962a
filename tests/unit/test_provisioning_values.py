"""Provisioning values: resources, claim ids, kubelet reserve and offerings, the risk formula."""

from __future__ import annotations

import pytest

from spotpack.catalog import load_catalog
from spotpack.catalog.model import BUCKET_RATES
from spotpack.provisioning.model import (
    CapacityNeed,
    Offering,
    Resources,
    claim_id,
)
from spotpack.provisioning.offerings import (
    allocatable,
    arch_refusal,
    in_flight_node,
    kube_reserved_cpu_m,
    max_pods,
    offering_gpus,
    offerings_from_catalog,
)
from spotpack.provisioning.risk import (
    bucket_rate,
    hourly_probability,
    risk_adjusted_cost,
    risk_cost,
)

ZONES = ("us-east-1a", "us-east-1b")


def offer(price: float, rate: float, capacity: str = "spot") -> Offering:
    return Offering(
        instance_type="m5.large",
        zone="us-east-1a",
        capacity=capacity,  # type: ignore[arg-type]
        price_per_hour=price,
        interruption_rate=rate,
        vcpu=2,
        mem_mib=8192,
        arch="amd64",
        gpu=None,
        allocatable=Resources(1930, 6903, 29),
    )


def test_resources_arithmetic() -> None:
    a, b = Resources(1000, 2048, 1), Resources(500, 1024, 1)
    assert a + b == Resources(1500, 3072, 2)
    assert a - b == Resources(500, 1024, 0)
    assert b.times(3) == Resources(1500, 3072, 3)
    assert b.fits(a) and not a.fits(b)
    assert b.count_in(Resources(1600, 10_000, 110)) == 3
    assert Resources(0, 0, 1).count_in(Resources(0, 0, 7)) == 7


@pytest.mark.parametrize(
    ("need", "spot", "on_demand"),
    [
        (CapacityNeed.SPOT_ONLY, True, False),
        (CapacityNeed.ON_DEMAND_ONLY, False, True),
        (CapacityNeed.SPOT_PREFERRED, True, True),
        (CapacityNeed.ANY, True, True),
    ],
)
def test_capacity_need_allows(need: CapacityNeed, spot: bool, on_demand: bool) -> None:
    assert need.allows("spot") is spot
    assert need.allows("on-demand") is on_demand


def test_claim_id_is_stable_and_order_free() -> None:
    one = claim_id(["ns/b", "ns/a"], "m5.large", "us-east-1a", "spot")
    assert one == claim_id(["ns/a", "ns/b"], "m5.large", "us-east-1a", "spot")
    assert one.startswith("c-") and len(one) == 18
    assert one != claim_id(["ns/a", "ns/b"], "m5.large", "us-east-1b", "spot")
    assert one != claim_id(["ns/a"], "m5.large", "us-east-1a", "spot")


# kubelet reserve: 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% above.
@pytest.mark.parametrize(
    ("vcpu", "reserved"),
    [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110), (96, 310)],
)
def test_kube_reserved_cpu(vcpu: int, reserved: int) -> None:
    assert kube_reserved_cpu_m(vcpu) == reserved


# max pods = min(110, 15 * vcpu - 1); memory = mem - ceil(7.5%) - (255 + 11 * pods) - 100.
@pytest.mark.parametrize(
    ("vcpu", "mem", "expected"),
    [
        (1, 2048, Resources(940, 1385, 14)),
        (2, 8192, Resources(1930, 6903, 29)),
        (4, 16384, Resources(3920, 14151, 59)),
        (16, 65536, Resources(15890, 59055, 110)),
    ],
)
def test_allocatable_formula(vcpu: int, mem: int, expected: Resources) -> None:
    assert max_pods(vcpu) == expected.pods
    assert allocatable(vcpu, mem) == expected


def test_allocatable_subtracts_daemonsets_and_never_goes_negative() -> None:
    overhead = Resources(200, 300, 3)
    assert allocatable(4, 16384, overhead) == Resources(3720, 13851, 56)
    assert allocatable(1, 2048, Resources(5000, 5000, 50)) == Resources(0, 0, 0)


def test_offerings_from_catalog() -> None:
    catalog = load_catalog()
    offerings = offerings_from_catalog(catalog, "us-east-1", ZONES, overhead=Resources(100, 100, 1))
    prices = [o.price_per_hour for o in offerings]
    assert prices == sorted(prices)
    by_key = {(o.instance_type, o.zone, o.capacity): o for o in offerings}
    od = by_key[("m5.xlarge", "us-east-1a", "on-demand")]
    spot = by_key[("m5.xlarge", "us-east-1b", "spot")]
    assert od.price_per_hour == catalog.on_demand_price("m5.xlarge")
    assert od.interruption_rate == 0 and od.source == "list"
    offer_ = catalog.spot_offer("m5.xlarge", "us-east-1b")
    assert offer_ is not None
    assert spot.price_per_hour == offer_.price
    assert spot.interruption_rate == BUCKET_RATES[offer_.bucket]
    assert spot.source == offer_.source
    assert od.allocatable == allocatable(4, 16384, Resources(100, 100, 1))
    g5 = by_key[("g5.12xlarge", "us-east-1a", "spot")]
    assert g5.gpu is not None and g5.cards == 4 and g5.vgpu_slots_per_card == 10
    assert {o.zone for o in offerings} == set(ZONES)


def test_offerings_keep_only_the_allowed_architectures() -> None:
    catalog = load_catalog()
    every = offerings_from_catalog(catalog, zones=ZONES)
    assert {o.arch for o in every} == {"amd64", "arm64"}
    amd64 = offerings_from_catalog(catalog, zones=ZONES, arches=["amd64"])
    assert {o.arch for o in amd64} == {"amd64"}
    assert len(amd64) + len(offerings_from_catalog(catalog, zones=ZONES, arches=["arm64"])) == len(
        every
    )


AMD64 = frozenset({"amd64"})
ARM64 = frozenset({"arm64"})


@pytest.mark.parametrize(
    ("asked", "allowed", "refused"),
    [
        (None, {"amd64"}, None),  # unpinned: takes what may launch
        (AMD64, {"amd64"}, None),
        (AMD64 | ARM64, {"amd64"}, None),  # either: keeps the allowed one
        (ARM64, {"amd64", "arm64"}, None),
        (ARM64, {"amd64"}, "asks kubernetes.io/arch arm64; new nodes may be amd64"),
        (frozenset(), {"amd64"}, "asks kubernetes.io/arch no architecture; new nodes may be amd64"),
    ],
)
def test_arch_refusal(asked: frozenset[str] | None, allowed: set[str], refused: str | None) -> None:
    assert arch_refusal(asked, allowed) == refused


def test_offering_gpus_and_in_flight_node() -> None:
    catalog = load_catalog()
    g5 = next(
        o for o in offerings_from_catalog(catalog, zones=ZONES) if o.instance_type == "g5.12xlarge"
    )
    gpus = offering_gpus(g5, "claim-1")
    assert gpus is not None
    assert len(gpus.cards) == 4 and gpus.slots == (10, 10, 10, 10)
    node = in_flight_node("claim-1", g5)
    assert node.in_flight and node.free == g5.allocatable
    assert node.usage is not None and node.usage.sum_slots == 0


# Risk: cost = price + rate / 730 * sum(rerun); on-demand rate is 0.
@pytest.mark.parametrize(
    ("price", "rate", "reruns", "expected"),
    [
        (0.0432, 0.075, [], 0.0432),
        (0.0432, 0.075, [73.0], 0.0432 + 0.0075),
        (0.1578, 0.125, [100.0, 46.0], 0.1578 + 0.025),
        (0.096, 0.0, [1000.0], 0.096),
        (1.0, 0.30, [730.0], 1.3),
    ],
)
def test_risk_adjusted_cost_table(
    price: float, rate: float, reruns: list[float], expected: float
) -> None:
    assert risk_adjusted_cost(offer(price, rate), reruns) == pytest.approx(expected)
    assert risk_cost(offer(price, rate), sum(reruns)) == pytest.approx(expected - price)


def test_hourly_probability_and_buckets() -> None:
    assert hourly_probability(0.073) == pytest.approx(0.0001)
    assert hourly_probability(-1) == 0
    assert [bucket_rate(b) for b in range(5)] == list(BUCKET_RATES)
    assert bucket_rate(None) == BUCKET_RATES[-1] == bucket_rate(9)
