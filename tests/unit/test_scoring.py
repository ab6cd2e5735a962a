"""Scoring terms, each table-driven next to its formula, and the 0..10 mix."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs
from spotpack.gpu.usage import Assignment, DeviceGrant, NodeUsage
from spotpack.scoring.binpack import (
    binpack_term,
    hami_node_score,
    node_binpack,
    snap,
    spread_term,
)
from spotpack.scoring.combine import combine, to_extender_score
from spotpack.scoring.price import price_bounds, price_score, price_scores
from spotpack.scoring.risk import (
    advisor_probability,
    exposure_months,
    interruption_risk,
    risk_score,
)

# --- binpack ---------------------------------------------------------------------------------

# used_slots, total_slots, used_cores, total_cores, used_mem, total_mem -> raw HAMi, binpack
BINPACK_ROWS = [
    ((0, 10, 0, 100, 0, 1000), 0.0, 0.0),
    ((10, 10, 100, 100, 1000, 1000), 30.0, 100.0),
    ((5, 10, 0, 100, 500, 1000), 10.0, 100 / 3),
    ((1, 40, 30, 400, 6000, 91552), 10 * (1 / 40 + 30 / 400 + 6000 / 91552), None),
    ((3, 0, 0, 0, 10, 0), 0.0, 0.0),  # zero totals: ratio 0, not a division by zero
    ((20, 10, 0, 100, 0, 1000), 10.0, 100 / 3),  # over-committed by someone else: capped
]


@pytest.mark.parametrize(("args", "raw", "term"), BINPACK_ROWS)
def test_binpack_formula(args: tuple[int, ...], raw: float, term: float | None) -> None:
    names = ("used_slots", "total_slots", "used_cores", "total_cores", "used_mem", "total_mem")
    kwargs = dict(zip(names, args, strict=True))
    assert hami_node_score(**kwargs) == pytest.approx(raw)
    expected = raw / 30 * 100 if term is None else term
    assert binpack_term(**kwargs) == pytest.approx(expected)
    assert spread_term(**kwargs) == pytest.approx(100 - expected)


def test_node_binpack_counts_the_pod_being_placed() -> None:
    cards = tuple(Card(f"GPU-{i}", i, 10_000, 100, 10) for i in range(2))
    gpus = NodeGPUs(cards, InventorySource.HAMI)
    usage = NodeUsage(gpus)
    usage.add(Assignment("n", ((DeviceGrant("GPU-0", "m", 5000, 50),),)))
    # after adding (1 slot, 5000 MiB, 50 cores): 2/20 + 100/200 + 10000/20000
    assert node_binpack(gpus, usage, (1, 5000, 50)) == pytest.approx((0.1 + 0.5 + 0.5) / 3 * 100)
    assert node_binpack(gpus, NodeUsage(gpus), (0, 0, 0)) == 0.0


@pytest.mark.parametrize(
    ("mem", "slots", "added", "term"),
    [
        # a whole card on an empty one-card node: 1/10 + 1 + 1 = 2.1 -> 70, in every form
        (15360, 10, (1, 15360, 100), 70.0),
        (22888, 10, (1, 22888, 100), 70.0),
        (40960, 7, (3, 40960, 100), (3 / 7 + 1 + 1) / 3 * 100),
    ],
)
def test_fast_and_reference_binpack_agree_to_the_bit(
    mem: int, slots: int, added: tuple[int, int, int], term: float
) -> None:
    """Inverse totals and divisions differ in the last bits (29.999999999999986 for a 30
    spread term): both forms are snapped to 1e-9, so an integer score at a .5 boundary
    cannot differ between the extender's fast path and the core."""
    gpus = NodeGPUs((Card("GPU-0", 0, mem, 100, slots),), InventorySource.HAMI)
    fast = node_binpack(gpus, NodeUsage(gpus), added)
    reference = binpack_term(
        used_slots=added[0], total_slots=slots, used_cores=added[2], total_cores=100,
        used_mem=added[1], total_mem=mem,
    )  # fmt: skip
    assert fast == reference == pytest.approx(term)
    assert 100 - fast == 100 - reference


def test_snap_keeps_nine_decimals() -> None:
    assert snap(29.999999999999986) == 30.0
    assert snap(12.3456789014) == 12.345678901
    assert snap(0.0) == 0.0


# --- risk ------------------------------------------------------------------------------------

ADVISOR_ROWS = [(0, 0.025), (1, 0.075), (2, 0.125), (3, 0.175), (4, 0.25), (7, 0.25), (-1, 0.25)]


@pytest.mark.parametrize(("bucket", "prior"), ADVISOR_ROWS)
def test_advisor_bucket_midpoints(bucket: int, prior: float) -> None:
    assert advisor_probability(bucket) == prior


# spot, prior, events, exposure (instance-months), k -> risk
RISK_ROWS = [
    (False, 0.25, 9, 1.0, 10, 0.0),  # on-demand: no interruption risk
    (True, 0.025, 0, 0.0, 10, 0.025),  # nothing observed: the prior
    (True, 0.025, 1, 1.0, 10, (0.25 + 1) / 11),  # one early interruption raises it at once
    (True, 0.125, 0, 90.0, 10, 1.25 / 100),  # a long quiet record lowers it
    (True, 0.075, 3, 10.0, 10, (0.75 + 3) / 20),
    (True, 0.1, 0, 0.0, 0, 0.1),  # k=0 and nothing observed: the prior, no 0/0
    (True, 0.1, 50, 1.0, 0, 1.0),  # capped at 1
    (True, float("nan"), 0, 0.0, 10, 0.25),  # unusable prior: the worst bucket
    (True, 0.1, -3, -5.0, 10, 0.1),  # negative counts are ignored
]


@pytest.mark.parametrize(("spot", "prior", "events", "exposure", "k", "risk"), RISK_ROWS)
def test_interruption_risk(
    spot: bool, prior: float, events: float, exposure: float, k: float, risk: float
) -> None:
    got = interruption_risk(spot=spot, prior=prior, events=events, exposure=exposure, k=k)
    assert got == pytest.approx(risk)


def test_exposure_in_instance_months() -> None:
    assert exposure_months(730) == 1.0
    assert exposure_months(-5) == 0.0


# risk, max_risk -> score
RISK_SCORE_ROWS = [
    (0.0, 0.25, 100.0),
    (0.25, 0.25, 0.0),
    (0.125, 0.25, 50.0),
    (0.5, 0.25, 0.0),  # above the scale: clipped
    (0.025, 0.25, 90.0),
    (0.1, 0.0, 0.0),  # no scale: worst
    (float("nan"), 0.25, 0.0),
]


@pytest.mark.parametrize(("risk", "max_risk", "score"), RISK_SCORE_ROWS)
def test_risk_score(risk: float, max_risk: float, score: float) -> None:
    assert risk_score(risk, max_risk) == pytest.approx(score)


# --- price -----------------------------------------------------------------------------------

PRICE_ROWS = [
    ({"a": 1.0, "b": 2.0, "c": 1.5}, {"a": 100.0, "b": 0.0, "c": 50.0}),
    ({"a": 1.0, "b": 1.0}, {"a": 100.0, "b": 100.0}),  # all equal: all cheapest
    ({"a": 1.0, "b": None, "c": 3.0}, {"a": 100.0, "b": 50.0, "c": 0.0}),  # unknown: neutral
    ({"a": None, "b": None}, {"a": 50.0, "b": 50.0}),
    ({"a": float("inf"), "b": -1.0, "c": 2.0}, {"a": 50.0, "b": 50.0, "c": 100.0}),
    ({"only": 0.526}, {"only": 100.0}),
    ({}, {}),
]


@pytest.mark.parametrize(("prices", "scores"), PRICE_ROWS)
def test_price_scores(prices: dict[str, float | None], scores: dict[str, float]) -> None:
    assert price_scores(prices) == pytest.approx(scores)


def test_price_score_outside_the_bounds_is_clipped() -> None:
    assert price_bounds([None, 2.0, 1.0]) == (1.0, 2.0)
    assert price_bounds([None]) is None
    assert price_score(5.0, (1.0, 2.0)) == 0.0
    assert price_score(0.5, (1.0, 2.0)) == 100.0
    assert price_score(1.0, None) == 50.0


# --- combine ---------------------------------------------------------------------------------

COMBINE_ROWS = [
    ({"binpack": 100, "risk": 100}, {"binpack": 1, "risk": 1}, 10),
    ({"binpack": 0, "risk": 0}, {"binpack": 1, "risk": 1}, 0),
    ({"binpack": 45, "risk": 45}, {"binpack": 1, "risk": 1}, 5),  # 4.5 rounds half up
    ({"binpack": 44.9}, {"binpack": 1}, 4),
    ({"binpack": 100, "risk": 0}, {"binpack": 3, "risk": 1}, 8),  # 7.5 -> 8
    ({"binpack": 100, "risk": 0}, {"binpack": 1, "risk": 0}, 10),  # zero weight ignored
    ({"binpack": 100}, {"binpack": 0, "risk": 0}, 0),  # all weights zero
    ({"binpack": 100}, {}, 0),
    ({"binpack": 250, "risk": -40}, {"binpack": 1, "risk": 1}, 5),  # terms clipped to 0..100
    ({"binpack": 100}, {"binpack": 1, "price": 1}, 5),  # a weighted term missing counts as 0
    ({"binpack": float("nan")}, {"binpack": 1}, 0),
    ({"binpack": 80}, {"binpack": -2, "risk": float("nan")}, 0),  # bad weights ignored
    ({"a": 95, "b": 94}, {"a": 1, "b": 1}, 9),  # 9.45 -> 9
    ({"a": 95}, {"a": 1}, 10),  # 9.5 -> 10
]


@pytest.mark.parametrize(("terms", "weights", "score"), COMBINE_ROWS)
def test_combine(terms: dict[str, float], weights: dict[str, float], score: int) -> None:
    got = combine(terms, weights)
    assert got == score
    assert type(got) is int


@given(
    st.dictionaries(st.sampled_from("abcd"), st.floats(allow_nan=True, allow_infinity=True)),
    st.dictionaries(st.sampled_from("abcd"), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_combine_is_always_an_int_from_0_to_10(
    terms: dict[str, float], weights: dict[str, float]
) -> None:
    got = combine(terms, weights)
    assert type(got) is int
    assert 0 <= got <= 10


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0.01, max_value=1e6))
def test_combine_of_one_term_is_its_tenth_rounded(term: float, weight: float) -> None:
    got = combine({"t": term}, {"t": weight})
    assert abs(got - term / 10) <= 0.5 + 1e-9
    if abs(term / 10 - math.floor(term / 10) - 0.5) > 1e-9:  # away from the .5 boundary
        assert got == math.floor(term / 10 + 0.5)


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (0.0, 0),
        (4.99, 0),
        (5.0, 1),
        (45.0, 5),
        (94.9, 9),
        (95.0, 10),
        (100.0, 10),
        (250.0, 10),
        (-3.0, 0),
        (float("nan"), 0),
        (float("inf"), 0),
    ],
)
def test_to_extender_score(value: float, score: int) -> None:
    got = to_extender_score(value)
    assert got == score
    assert type(got) is int
