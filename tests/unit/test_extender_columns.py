"""The node columns prioritize scores over (``extender/columns.py``) follow the state.

Each test changes the cluster the way informers and binds do (nodes added,
changed, deleted; cards reserved and released; an interruption seen) and
checks the vector pass against the node-by-node path over the same state,
which reads the entries directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from extender.columns import NodeColumns
from extender.decide import (
    Weights,
    _loop_filter,
    _loop_scores,
    filter_nodes,
    prepared_demand,
    prioritize_scores,
)
from extender.state import Claim, ClusterState
from spotpack.gpu import pod_layout
from spotpack.interruption import SPOTPACK_TAINT
from spotpack.podview import pod_view
from tests.extender.support import gpu_node, gpu_pod, new_state

WEIGHTS = Weights()
CPU_POD: dict[str, Any] = {
    "metadata": {"name": "cpu", "namespace": "default", "uid": "uid-cpu"},
    "spec": {"containers": [{"name": "c", "image": "x"}]},
}


def scores(state: ClusterState, raw_pod: dict[str, Any], names: list[str]) -> list[int]:
    """Vector scores, after checking they (and the filter) equal the loop's over the same state."""
    pod = pod_view(raw_pod, state.scheme)
    vector_verdicts, loop_verdicts = (
        filter_nodes(state, pod, names),
        _loop_filter(state, pod, names),
    )
    assert vector_verdicts.passed == loop_verdicts.passed
    # Same buckets; the vector pass words "full" reasons without per-node figures.
    assert set(vector_verdicts.failed) == set(loop_verdicts.failed)
    assert set(vector_verdicts.unresolvable) == set(loop_verdicts.unresolvable)
    vector, fragments = prioritize_scores(state, pod, names, WEIGHTS)
    loop, loop_fragments = _loop_scores(state, pod, names, WEIGHTS)
    assert vector == loop
    assert fragments == loop_fragments
    return vector


def reserve(state: ClusterState, raw_pod: dict[str, Any], node: str) -> None:
    view = pod_view(raw_pod, state.scheme)
    claim = Claim(view.uid, view.key, view.demand, prepared_demand(view), pod_layout(raw_pod))
    assert not isinstance(state.reserve(claim, node), str)


@pytest.fixture
def state() -> ClusterState:
    state = new_state()
    state.columns = NodeColumns(capacity=2)  # every test grows the arrays
    types = ["g5.xlarge", "g5.12xlarge", "p4d.24xlarge", "g4dn.xlarge", "unknown.type"]
    for i, itype in enumerate(types):
        state.upsert_node(gpu_node(f"n{i}", cards=1 + i % 4, spot=i % 2 == 0, instance_type=itype))
    cpu_node = gpu_node("cpu0", spot=False, instance_type="m5.xlarge")
    del cpu_node["metadata"]["annotations"]["hami.io/node-nvidia-register"]
    del cpu_node["status"]["allocatable"]["nvidia.com/gpu"]
    state.upsert_node(cpu_node)
    return state


NAMES = ["n0", "n1", "ghost", "n2", "n3", "n4", "cpu0"]


def test_rows_grow_and_every_cached_name_gets_one(state: ClusterState) -> None:
    scores(state, gpu_pod("p", mem=4000), NAMES)
    assert sorted(state.columns.rows) == ["cpu0", "n0", "n1", "n2", "n3", "n4"]
    assert len(set(state.columns.rows.values())) == 6
    assert len(state.columns.num) >= 6


def test_unknown_names_score_zero_and_get_no_fragment(state: ClusterState) -> None:
    pod = pod_view(gpu_pod("p", mem=4000), state.scheme)
    result, fragments = prioritize_scores(state, pod, NAMES, WEIGHTS)
    assert result[2] == 0 and fragments[2] is None
    assert all(f is not None for i, f in enumerate(fragments) if i != 2)


def test_reserved_cards_change_the_gpu_term(state: ClusterState) -> None:
    probe = gpu_pod("probe", mem=20000)
    before = scores(state, probe, NAMES)
    reserve(state, gpu_pod("big", mem=20000, uid="u-big"), "n0")  # n0's only card is now full
    after = scores(state, probe, NAMES)
    assert after[0] < before[0]
    state.release("u-big")
    assert scores(state, probe, NAMES) == before


def test_deleted_node_scores_zero_and_its_row_is_reused(state: ClusterState) -> None:
    state.delete_node({"metadata": {"name": "n1"}})
    assert scores(state, CPU_POD, NAMES)[1] == 0
    assert "n1" not in state.columns.rows
    state.upsert_node(gpu_node("n9", cards=2, spot=False, instance_type="g5.12xlarge"))
    result = scores(state, gpu_pod("p", mem=4000), ["n9", "n1", *NAMES])
    assert result[0] > 0 and result[1] == 0
    assert len(state.columns.rows) == 6


def test_refusals_share_one_reason_per_situation_as_the_scheduler_counts_them(
    state: ClusterState,
) -> None:
    state.upsert_node(gpu_node("t4", mem=15360, model="Tesla T4", instance_type="g4dn.xlarge"))
    for uid, node in (("u-0", "n0"), ("u-4", "n4")):
        reserve(state, gpu_pod(uid, mem=20000, uid=uid), node)
    names = [*NAMES, "t4"]
    full = filter_nodes(state, pod_view(gpu_pod("p", mem=20000), state.scheme), names)
    assert full.failed == {
        "ghost": "node is not in the extender's cache yet",
        "n0": "no card with 20000 MiB free",
        "n4": "no card with 20000 MiB free",
    }
    assert full.unresolvable == {
        "t4": "needs 20000 MiB per card, cards have 15360 MiB",
        "cpu0": "node has no GPUs",
    }
    reserve(state, gpu_pod("u-1", mem=20000, uid="u-1"), "n1")  # one of its two cards
    two = filter_nodes(state, pod_view(gpu_pod("q", mem=20000, count=2), state.scheme), names)
    assert two.failed["n1"] == "needs 2 cards with 20000 MiB free"
    assert two.unresolvable["n0"] == (
        "needs 2 cards with 20000 MiB free (not even with the node empty)"
    )


@pytest.mark.parametrize("capacity", ["on-demand", "spot"])
def test_filter_refuses_capacity_mismatches_and_full_cards_with_reasons(
    state: ClusterState, capacity: str
) -> None:
    reserve(state, gpu_pod("big", mem=20000, uid="u-big"), "n0")
    pod = gpu_pod("p", mem=20000, annotations={"spotpack.io/capacity-applied": capacity})
    scores(state, pod, NAMES)  # vector and loop verdicts agree
    verdicts = filter_nodes(state, pod_view(pod, state.scheme), NAMES)
    assert verdicts.failed["ghost"] == "node is not in the extender's cache yet"
    spot_nodes = {"n0", "n2", "n4"}
    wrong = spot_nodes if capacity == "on-demand" else {"n1", "n3", "cpu0"}
    assert wrong <= set(verdicts.unresolvable)
    assert not wrong & set(verdicts.passed)
    if capacity == "on-demand":
        assert verdicts.unresolvable["cpu0"] == "node has no GPUs"


def test_an_interruption_seen_lowers_the_score_of_nodes_of_that_type_and_zone(
    state: ClusterState,
) -> None:
    state.upsert_node(gpu_node("twin", cards=1, spot=True, instance_type="g5.xlarge"))
    before = scores(state, CPU_POD, ["twin", *NAMES])
    taint = [{"key": SPOTPACK_TAINT, "value": "spot-interruption", "effect": "NoSchedule"}]
    state.upsert_node(gpu_node("n0", cards=1, spot=True, instance_type="g5.xlarge", taints=taint))
    after = scores(state, CPU_POD, ["twin", *NAMES])
    assert state.nodes["twin"].risk < 100
    assert after[0] <= before[0]


@pytest.mark.parametrize("policy", ["binpack", "spread"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_gpu_shapes_agree_with_the_loop(state: ClusterState, policy: str, count: int) -> None:
    reserve(state, gpu_pod("a", mem=9000, uid="u-a"), "n1")
    reserve(state, gpu_pod("b", mem=3000, uid="u-b", count=2), "n3")
    pod = gpu_pod("p", mem=5000, count=count, annotations={"spotpack.io/gpu-policy": policy})
    result = scores(state, pod, NAMES)
    assert any(result)


def test_prioritize_reuses_the_filter_rows_only_while_they_are_valid(state: ClusterState) -> None:
    pod = pod_view(gpu_pod("p", mem=4000), state.scheme)
    verdicts = filter_nodes(state, pod, NAMES)
    hint = verdicts.candidates
    assert hint is not None and hint.names == verdicts.passed
    plain = prioritize_scores(state, pod, verdicts.passed, WEIGHTS)
    assert prioritize_scores(state, pod, verdicts.passed, WEIGHTS, hint) == plain
    # other names than the filter passed: looked up, not taken from the hint
    other = ["n4", "n0"]
    assert prioritize_scores(state, pod, other, WEIGHTS, hint) == prioritize_scores(
        state, pod, other, WEIGHTS
    )
    # a node deleted and another added between filter and prioritize: rows were reassigned
    state.delete_node({"metadata": {"name": verdicts.passed[0]}})
    state.upsert_node(gpu_node("newcomer", cards=4, spot=True, instance_type="p4d.24xlarge"))
    scores, parts = prioritize_scores(state, pod, verdicts.passed, WEIGHTS, hint)
    assert scores[0] == 0 and parts[0] is None  # the deleted node is unknown now
    assert (scores, parts) == prioritize_scores(state, pod, verdicts.passed, WEIGHTS)
