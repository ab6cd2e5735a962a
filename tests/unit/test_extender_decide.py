"""The extender's hot loops against the core's reference functions.

``filter_nodes`` and ``prioritize_nodes`` inline the common vGPU shape and the
score mixing for speed; here random clusters and pods check that they answer
exactly what the general path (per-card fit, ``binpack_term``, ``price_score``,
``combine``) answers.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.decide import Weights, filter_nodes, prepared_demand, prioritize_nodes
from extender.state import ClusterState
from spotpack.capacity import SCHEMES
from spotpack.gpu import fit_prepared
from spotpack.podview import pod_view
from spotpack.scoring.binpack import binpack_term
from spotpack.scoring.combine import combine
from spotpack.scoring.price import price_bounds, price_score
from tests.extender.support import gpu_node, gpu_pod, new_state

TYPES = ["g5.xlarge", "g5.12xlarge", "p4d.24xlarge", "g4dn.xlarge", "unknown.type"]


@st.composite
def clusters(draw):
    state = new_state()
    count = draw(st.integers(1, 6))
    names = []
    for i in range(count):
        name = f"n{i}"
        node = gpu_node(
            name,
            cards=draw(st.integers(1, 4)),
            mem=draw(st.sampled_from([15360, 22888, 40960])),
            spot=draw(st.booleans()),
            instance_type=draw(st.sampled_from(TYPES)),
        )
        state.upsert_node(node)
        names.append(name)
    for j in range(draw(st.integers(0, 8))):
        pod = gpu_pod(f"u{j}", mem=draw(st.sampled_from([1000, 4000, 9000, 15000])), count=draw(st.integers(1, 2)))
        view = pod_view(pod, state.scheme)
        node = draw(st.sampled_from(names))
        from extender.state import Claim
        from spotpack.gpu import pod_layout

        state.reserve(Claim(view.uid, view.key, view.demand, prepared_demand(view), pod_layout(pod)), node)
    return state, [*names, "ghost"]


pods = st.builds(
    lambda mem, count, cores, policy, exclude, capacity: gpu_pod(
        "probe",
        mem=mem,
        count=count,
        cores=cores,
        annotations={
            **({"spotpack.io/gpu-policy": policy} if policy else {}),
            **({"spotpack.io/gpu-exclude": exclude} if exclude else {}),
            **({"spotpack.io/capacity-applied": capacity} if capacity else {}),
        },
    ),
    st.sampled_from([None, 500, 4000, 12000, 30000]),
    st.integers(1, 3),
    st.sampled_from([None, 0, 30, 100]),
    st.sampled_from([None, "binpack", "spread"]),
    st.sampled_from([None, "T4"]),
    st.sampled_from([None, "on-demand", "spot"]),
)


def reference_scores(state: ClusterState, pod, names, weights: Weights):
    prepared = prepared_demand(pod)
    rows = {}
    for name in names:
        entry = state.nodes.get(name)
        if entry is None:
            continue
        terms = {"risk": entry.risk}
        if pod.demand.is_gpu_pod and entry.view.gpus is not None:
            result = fit_prepared(prepared, entry.view.gpus, entry.usage)
            if result.ok:
                gpus, usage, added = entry.view.gpus, entry.usage, result.added
                packed = binpack_term(
                    used_slots=usage.sum_slots + added[0], total_slots=gpus.total_slots,
                    used_cores=usage.sum_cores + added[2], total_cores=gpus.total_cores,
                    used_mem=usage.sum_mem + added[1], total_mem=gpus.total_mem,
                )
                terms["gpu"] = 100 - packed if pod.gpu_policy.value == "spread" else packed
            else:
                terms["gpu"] = 0.0
        rows[name] = (terms, entry.view.price)
    bounds = price_bounds(price for _, price in rows.values())
    mix = {"gpu": weights.gpu, "risk": weights.risk, "price": weights.price}
    out = []
    for name in names:
        if name not in rows:
            out.append((name, 0))
            continue
        terms, price = rows[name]
        terms = {**terms, "price": price_score(price, bounds)}
        out.append((name, combine(terms, {k: mix[k] for k in terms})))
    return out


@settings(max_examples=150, deadline=None)
@given(clusters(), pods, st.sampled_from([Weights(), Weights(1, 1, 1), Weights(0, 2, 1), Weights(5, 0, 0)]))
def test_hot_loops_agree_with_the_core(cluster, raw_pod, weights) -> None:
    state, names = cluster
    pod = pod_view(raw_pod, SCHEMES["karpenter"])
    verdicts = filter_nodes(state, pod, names)
    prepared = prepared_demand(pod)
    for name in names:
        entry = state.nodes.get(name)
        expected = entry is not None and not (
            entry.view.interrupted or (pod.needs_on_demand and entry.view.spot) or (pod.needs_spot and not entry.view.spot)
        )
        if expected and pod.demand.is_gpu_pod:
            expected = entry.view.gpus is not None and fit_prepared(prepared, entry.view.gpus, entry.usage).ok
        assert (name in verdicts.passed) == expected, name
        assert sum(name in bucket for bucket in (verdicts.passed, verdicts.failed, verdicts.unresolvable)) == 1
    assert prioritize_nodes(state, pod, names, weights) == reference_scores(state, pod, names, weights)
