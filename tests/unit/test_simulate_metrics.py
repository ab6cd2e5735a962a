"""The run's figures and the baseline: pure functions over samples, checked against hand sums."""

from __future__ import annotations

import pytest

from spotpack.catalog import load_catalog
from spotpack.simulate.baseline import BaselineError, baseline_point, chooser, node_for
from spotpack.simulate.metrics import (
    Interruption,
    PriceError,
    RunRecord,
    cost_per_hour,
    figures,
    gpu_alloc,
    node_price,
    pending_stats,
    percentile,
    ratio,
    recovered,
    spot_price_sources,
    weights,
)
from spotpack.simulate.observe import NodeSample, PodSample, Sample

CATALOG = load_catalog()
REGION = "us-east-1"
# Catalog prices these tests are written against (us-east-1, USD/h).
M5L_OD, M5L_SPOT = 0.096, 0.0432
G4_OD, G4_SPOT = 0.526, 0.1578
C6G_MEDIUM_OD, C6G_LARGE_OD = 0.034, 0.068
C5_LARGE_OD = 0.085
T4_MIB = 16384


def od(name: str, itype: str = "m5.large", **kw: object) -> NodeSample:
    return NodeSample(name, itype, "us-east-1a", "on-demand", **kw)  # type: ignore[arg-type]


def spot(name: str, itype: str = "m5.large", **kw: object) -> NodeSample:
    return NodeSample(name, itype, "us-east-1b", "spot", **kw)  # type: ignore[arg-type]


def gpu_node(name: str, capacity: str = "spot") -> NodeSample:
    return NodeSample(name, "g4dn.xlarge", "us-east-1b", capacity, 1, T4_MIB, 100)


def test_catalog_prices_are_what_the_tests_assume() -> None:
    assert CATALOG.on_demand_price("m5.large", REGION) == M5L_OD
    offer = CATALOG.spot_offer("m5.large", "us-east-1b")
    assert offer is not None and offer.price == M5L_SPOT
    assert CATALOG.on_demand_price("g4dn.xlarge", REGION) == G4_OD


@pytest.mark.parametrize(
    ("node", "price"),
    [
        (od("a"), M5L_OD),
        (spot("b"), M5L_SPOT),
        (gpu_node("g"), G4_SPOT),
        (gpu_node("g", "on-demand"), G4_OD),
    ],
)
def test_node_price(node: NodeSample, price: float) -> None:
    assert node_price(node, CATALOG, REGION) == pytest.approx(price)


def test_unknown_price_is_an_error_never_zero() -> None:
    with pytest.raises(PriceError, match=r"no spot price for 'x9\.huge'"):
        node_price(spot("z", "x9.huge"), CATALOG, REGION)


def test_cost_per_hour_sums_the_nodes() -> None:
    sample = Sample(0.0, (od("a"), spot("b"), gpu_node("g")), ())
    assert cost_per_hour(sample, CATALOG, REGION) == pytest.approx(M5L_OD + M5L_SPOT + G4_SPOT)


@pytest.mark.parametrize(
    ("times", "end", "want"),
    [
        ([0.0, 10.0, 30.0], 40.0, [10.0, 20.0, 10.0]),
        ([0.0, 10.0], 10.0, [10.0, 0.0]),
        ([5.0], 3.0, [0.0]),
        ([], 5.0, []),
    ],
)
def test_weights(times: list[float], end: float, want: list[float]) -> None:
    assert weights(times, end) == want


@pytest.mark.parametrize(
    ("num", "den", "dts", "want"),
    [
        ([1, 1], [2, 4], [1, 1], 2 / 6),  # ratio of integrals, not the mean of 1/2 and 1/4
        ([1, 0], [2, 0], [3, 1], 0.5),
        ([0], [0], [1], 0.0),
    ],
)
def test_ratio_of_integrals(
    num: list[float], den: list[float], dts: list[float], want: float
) -> None:
    assert ratio(num, den, dts) == pytest.approx(want)


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([float(i) for i in range(1, 11)], 0.5, 5.0),
        ([float(i) for i in range(1, 11)], 0.95, 10.0),
        ([float(i) for i in range(1, 101)], 0.95, 95.0),
        ([3.0], 0.5, 3.0),
        ([], 0.5, 0.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, want: float) -> None:
    assert percentile(values, q) == want


def test_pending_counts_unbound_pods_until_the_end() -> None:
    stats = pending_stats({"a": 0.0, "b": 10.0, "c": 20.0}, {"a": 30.0, "b": 10.0}, 100.0)
    assert (stats.pods, stats.never_bound, stats.p50, stats.max) == (3, 1, 30.0, 80.0)


def test_gpu_alloc_counts_only_pods_on_gpu_nodes() -> None:
    sample = Sample(
        0.0,
        (gpu_node("g"), od("c")),
        (
            PodSample("n/a", "w", "g", vgpus=1, gpu_mem_mib=4096, gpu_cores=30),
            PodSample("n/b", "w", "g", vgpus=1, gpu_mem_mib=2048, gpu_cores=20),
            PodSample("n/c", "w", None, vgpus=1, gpu_mem_mib=8000, gpu_cores=50),  # pending
        ),
    )
    assert gpu_alloc(sample) == (6144, T4_MIB, 50, 100)


def event(t: float = 100.0) -> Interruption:
    return Interruption(t, "n1", "m5.large", "scheduled", ("w",))


@pytest.mark.parametrize(
    ("t", "pods", "desired", "want"),
    [
        (50.0, [("n2", True), ("n2", True)], 2, False),  # before the interruption
        (150.0, [("n1", True), ("n2", True)], 2, False),  # a pod still on the node
        (150.0, [("n2", True), (None, False)], 2, False),  # one still pending
        (150.0, [("n2", True), ("n3", True)], 2, True),
        (150.0, [("n2", True)], 1, True),  # scaled down meanwhile: what is wanted runs
    ],
)
def test_recovery(t: float, pods: list[tuple[str | None, bool]], desired: int, want: bool) -> None:
    sample = Sample(
        t,
        (),
        tuple(PodSample(f"ns/p{i}", "w", node) for i, (node, _) in enumerate(pods)),
        {"w": desired},
    )
    assert recovered(event(), sample) is want


# --- the baseline ----------------------------------------------------------------------------

CHOOSE = chooser(CATALOG, REGION)


@pytest.mark.parametrize(
    ("pod", "itype", "price"),
    [
        # amd64 only, as the provisioner buys by default
        (PodSample("n/a", "w", None, cpu_m=1000, mem_mib=2048), "c5.large", C5_LARGE_OD),
        (PodSample("n/a", "w", None, cpu_m=1500, mem_mib=2048), "c5.large", C5_LARGE_OD),
        # one 8000 MiB slice -> one whole card of at least 8000 MiB
        (
            PodSample("n/a", "w", None, cpu_m=2000, mem_mib=8192, vgpus=1, gpu_mem_mib=8000),
            "g4dn.xlarge",
            G4_OD,
        ),
        # two 10000 MiB slices -> two whole cards: the cheapest multi-card type
        (
            PodSample("n/a", "w", None, cpu_m=2000, mem_mib=8192, vgpus=2, gpu_mem_mib=20000),
            "g4dn.12xlarge",
            3.912,
        ),
        # a 30000 MiB slice does not fit a T4 or an A10G: an L40S
        (
            PodSample("n/a", "w", None, cpu_m=2000, mem_mib=8192, vgpus=1, gpu_mem_mib=30000),
            "g6e.xlarge",
            1.861,
        ),
    ],
)
def test_baseline_node_per_pod(pod: PodSample, itype: str, price: float) -> None:
    node = node_for(pod, CHOOSE)
    assert (node.instance_type, node.price) == (itype, pytest.approx(price))


@pytest.mark.parametrize(
    ("pod", "itype", "price"),
    [
        (PodSample("n/a", "w", None, cpu_m=1000, mem_mib=2048), "c6g.medium", C6G_MEDIUM_OD),
        (PodSample("n/a", "w", None, cpu_m=1500, mem_mib=2048), "c6g.large", C6G_LARGE_OD),
    ],
)
def test_baseline_with_arm64_allowed_takes_graviton(
    pod: PodSample, itype: str, price: float
) -> None:
    both = chooser(CATALOG, REGION, frozenset({"amd64", "arm64"}))
    node = node_for(pod, both)
    assert (node.instance_type, node.price) == (itype, pytest.approx(price))


def test_baseline_refuses_a_pod_nothing_holds() -> None:
    with pytest.raises(BaselineError, match="no on-demand type"):
        node_for(PodSample("n/a", "w", None, cpu_m=10_000_000), CHOOSE)


def test_baseline_point_no_binpacking_whole_cards() -> None:
    sample = Sample(
        0.0,
        (),
        (
            PodSample("n/a", "w", "x", cpu_m=1000, mem_mib=2048),
            PodSample("n/b", "w", None, cpu_m=1000, mem_mib=2048),  # pending pods count too
            PodSample(
                "n/c", "g", "y", cpu_m=2000, mem_mib=8192, vgpus=1, gpu_mem_mib=8000, gpu_cores=30
            ),
            PodSample("n/d", "g", "y", cpu_m=2000, mem_mib=8192, vgpus=1, whole_cards=True),
        ),
    )
    point = baseline_point(sample, CHOOSE)
    assert point.cost_per_hour == pytest.approx(2 * C5_LARGE_OD + 2 * G4_OD)
    assert point.nodes == 4
    assert (point.gpu_mem_alloc, point.gpu_mem_total) == (8000 + T4_MIB, 2 * T4_MIB)
    assert (point.gpu_cores_alloc, point.gpu_cores_total) == (130, 200)


# --- the whole figure set --------------------------------------------------------------------


def test_figures_from_a_two_sample_run() -> None:
    gpu_pod = PodSample(
        "n/g", "llm", "g", cpu_m=2000, mem_mib=8192, vgpus=1, gpu_mem_mib=8000, gpu_cores=30
    )
    cpu_pod = PodSample("n/c", "etl", "a", cpu_m=1000, mem_mib=2048)
    first = Sample(0.0, (od("a"),), (cpu_pod,), {"etl": 1})
    second = Sample(1800.0, (od("a"), gpu_node("g")), (cpu_pod, gpu_pod), {"etl": 1, "llm": 1})
    samples = (first, second)
    record = RunRecord(
        scenario="t",
        duration=3600.0,
        samples=samples,
        baseline=tuple(baseline_point(s, CHOOSE) for s in samples),
        created={"n/c": 0.0, "n/g": 1700.0},
        bound={"n/c": 0.0, "n/g": 1800.0},
        interruptions=(
            Interruption(1000.0, "s1", "m5.large", "poisson", ("etl",), 1800.0),
            Interruption(1100.0, "s2", "m5.large", "poisson", ()),
        ),
        node_startup_seconds=60.0,
    )
    f = figures(record, CATALOG, REGION)
    half = 0.5  # each sample holds for half an hour
    assert f.total_cost == pytest.approx(M5L_OD * half + (M5L_OD + G4_SPOT) * half)
    assert f.baseline_total_cost == pytest.approx(C5_LARGE_OD * half + (C5_LARGE_OD + G4_OD) * half)
    assert f.mean_cost_per_hour == pytest.approx(f.total_cost)
    assert f.spot_node_share == pytest.approx(1 / 3)  # 1 spot node-half-hour of 3
    assert f.spot_cost_share == pytest.approx(G4_SPOT * half / f.total_cost)
    assert f.spot_pod_share == pytest.approx(1 / 3)
    assert f.gpu_mem_util == pytest.approx(8000 / T4_MIB)
    assert f.gpu_core_util == pytest.approx(0.30)
    assert f.pending.max == 100.0 and f.pending.p50 == 0.0
    assert (f.survived, f.hit, f.on_empty_nodes, len(f.interruptions)) == (1, 1, 1, 2)
    assert f.gpu_requested and f.spot_price_sources == {"g4dn.xlarge": "estimate"}
    assert (f.peak_nodes, f.nodes_seen, f.baseline_peak_nodes) == (2, 2, 2)
    assert f.savings == pytest.approx(1 - f.total_cost / f.baseline_total_cost)
    assert f.series.cost == (pytest.approx(M5L_OD), pytest.approx(M5L_OD + G4_SPOT))


def test_an_interruption_of_an_empty_node_is_neither_hit_nor_survived() -> None:
    empty = Interruption(100.0, "n1", "m5.large", "poisson", ())
    later = Sample(200.0, (), (), {})
    assert not recovered(empty, later)
    empty.recovered_at = 200.0  # even if something set it, it does not count as survived
    assert (empty.hit, empty.survived) == (False, False)


def test_spot_price_sources_keep_the_least_trustworthy_figure_per_type() -> None:
    samples = [Sample(0.0, (od("a"), spot("b"), gpu_node("g")), ()), Sample(60.0, (), ())]
    assert spot_price_sources(samples, CATALOG, REGION) == {
        "g4dn.xlarge": "estimate",
        "m5.large": "estimate",
    }
    assert spot_price_sources([Sample(0.0, (od("a"),), ())], CATALOG, REGION) == {}
