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
from extender.decide import Weights, _loop_scores, prepared_demand, prioritize_scores
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
    """Vector scores, after checking they equal the loop's over the same state."""
    pod = pod_view(raw_pod, state.scheme)
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
        state.upsert_node(
            gpu_node(f"n{i}", cards=1 + i % 4, spot=i % 2 == 0, instance_type=itype)
        )
    return state


NAMES = ["n0", "n1", "ghost", "n2", "n3", "n4"]


def test_rows_grow_and_every_cached_name_gets_one(state: ClusterState) -> None:
    scores(state, gpu_pod("p", mem=4000), NAMES)
    assert sorted(state.columns.rows) == ["n0", "n1", "n2", "n3", "n4"]
    assert len(set(state.columns.rows.values())) == 5
    assert len(state.columns.price) >= 5


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
    assert len(state.columns.rows) == 5


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
