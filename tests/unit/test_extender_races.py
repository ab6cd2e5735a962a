"""The extender's decisions under change: node numbers read under the state's lock, and the
filter -> prioritize hints against node churn."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.columns import NodeColumns
from extender.decide import (
    Weights,
    _loop_filter,
    _loop_scores,
    filter_nodes,
    prepared_demand,
    prioritize_scores,
)
from extender.state import Claim, ClusterState, NodeEntry
from spotpack.gpu import pod_layout
from spotpack.interruption import SPOTPACK_TAINT
from spotpack.podview import pod_view
from tests.extender.support import gpu_node, gpu_pod, new_state
from tests.unit.test_extender_columns import CPU_POD, WEIGHTS


class Repriced(NodeEntry):
    """A node whose price an informer update changes once lo/hi are read from it: what
    ``upsert_node`` does, under the lock, while a request reads the entry without it."""

    def __init__(self, entry: NodeEntry, new_price: float) -> None:
        super().__init__(entry.view, entry.usage, entry.risk, None, entry.priorities)
        self.__dict__["prices"] = [entry.price, entry.price, new_price]  # lo/hi read it twice

    @property  # type: ignore[override]
    def price(self) -> float | None:
        prices = self.__dict__["prices"]
        return prices.pop(0) if len(prices) > 1 else prices[0]

    @price.setter
    def price(self, value: float | None) -> None:
        pass


def two_node_state() -> ClusterState:
    state = new_state()
    state.upsert_node(gpu_node("cheap", instance_type="g5.xlarge"))
    state.upsert_node(gpu_node("dear", instance_type="g5.12xlarge", cards=4))
    assert state.nodes["cheap"].price != state.nodes["dear"].price
    return state


def test_loop_scores_read_each_node_under_the_lock() -> None:
    # cores=30: not the simple shape, so prioritize takes the per-node loop. It read
    # each entry's price twice after releasing the lock (for lo/hi, then for the score):
    # an update in between put the node outside [lo, hi], the score went far below 0
    # and priorities[score] raised IndexError (small negatives pick another score's JSON)
    state = two_node_state()
    pod = pod_view(gpu_pod("probe", mem=1000, cores=30), state.scheme)
    with state.lock:
        state.nodes["dear"] = Repriced(state.nodes["dear"], 1e6)
    names = ["cheap", "dear"]
    scores, parts = prioritize_scores(state, pod, names, Weights())
    assert all(0 <= score <= 10 for score in scores), scores
    for name, score, part in zip(names, scores, parts, strict=True):
        assert part == state.nodes[name].priorities[score]


def test_a_hint_is_not_used_after_its_rows_went_to_other_nodes() -> None:
    state = two_node_state()
    pod = pod_view(gpu_pod("probe", mem=1000), state.scheme)
    names = ["cheap", "dear"]
    hint = filter_nodes(state, pod, names).candidates
    assert hint is not None and hint.names == names
    # both nodes go away and come back in the other order: rows swap, names do not
    nodes: dict[str, Any] = {n: {"metadata": {"name": n}} for n in names}
    for name in names:
        state.delete_node(nodes[name])
    state.upsert_node(gpu_node("dear", instance_type="g5.12xlarge", cards=4))
    state.upsert_node(gpu_node("cheap", instance_type="g5.xlarge"))
    with_hint = prioritize_scores(state, pod, names, Weights(), hint)
    assert with_hint == prioritize_scores(state, pod, names, Weights())


# --- random churn: the columns (and hints) against the node-by-node path -----------------

NAMES = [f"n{i}" for i in range(6)]
TYPES = ["g5.xlarge", "g5.12xlarge", "g4dn.xlarge", "unknown.type"]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("upsert"),
            st.sampled_from(NAMES),
            st.integers(1, 3),
            st.booleans(),
            st.sampled_from(TYPES),
            st.booleans(),
        ),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("reserve"), st.integers(0, 9), st.sampled_from(NAMES)),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("decide"), st.lists(st.sampled_from(NAMES), unique=True)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.sampled_from([None, 0, 4000, 12000]))
def test_columns_and_hints_follow_random_churn(sequence: list[Any], mem: int | None) -> None:
    """Nodes come, change, go and come back (rows freed, reused, grown past capacity 2);
    cards are reserved and released; filter runs now and then, and its hint is used by
    prioritize after every later change, as a slow scheduling cycle would."""
    state = new_state()
    state.columns = NodeColumns(capacity=2)
    raw_pod = CPU_POD if mem == 0 else gpu_pod("probe", mem=mem)
    pod = pod_view(raw_pod, state.scheme)
    last: tuple[list[str], Any] | None = None
    for op in sequence:
        kind = op[0]
        if kind == "upsert":
            _, name, cards, spot, itype, tainted = op
            taints = [{"key": SPOTPACK_TAINT, "effect": "NoSchedule"}] if tainted else []
            node = gpu_node(name, cards=cards, spot=spot, instance_type=itype, taints=taints)
            state.upsert_node(node)
        elif kind == "delete":
            state.delete_node({"metadata": {"name": op[1]}})
        elif kind == "reserve":
            other = gpu_pod(f"p{op[1]}", mem=4000, uid=f"u{op[1]}")
            view = pod_view(other, state.scheme)
            claim = Claim(view.uid, view.key, view.demand, prepared_demand(view), pod_layout(other))
            state.reserve(claim, op[2])
        elif kind == "release":
            state.release(f"u{op[1]}")
        else:
            names = [*op[1], "ghost"]
            verdicts = filter_nodes(state, pod, names)
            loop = _loop_filter(state, pod, names)
            assert verdicts.passed == loop.passed
            assert set(verdicts.failed) == set(loop.failed)
            assert set(verdicts.unresolvable) == set(loop.unresolvable)
            last = (verdicts.passed, verdicts.candidates)
        if last is not None:
            passed, hint = last
            expected = _loop_scores(state, pod, passed, WEIGHTS)
            assert prioritize_scores(state, pod, passed, WEIGHTS, hint) == expected
