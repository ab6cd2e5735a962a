"""Filter and prioritize: the per-node verdicts, over the cluster state.

Read-only over :class:`~extender.state.ClusterState`, under its lock for the
length of one request (microseconds per node), with everything that depends
only on the node precomputed in its :class:`~spotpack.nodeview.NodeView`.

Filter verdicts, in order (cheapest first):

1. node unknown to the cache -> failed (resolvable: the cache catches up);
2. node tainted for interruption -> unresolvable;
3. capacity type against the pod's need (a driver on spot) -> unresolvable;
4. GPU pods: per-card fit -> failed, or unresolvable when freeing pods could
   not help (wrong GPU model, too few healthy cards, cards too small).

Prioritize mixes three terms, each 0..100, by configurable weights, into the
integer 0..10 the protocol requires: GPU packing (HAMi's binpack formula after
placing the pod, or its inverse for ``spread``), spot interruption risk of the
node's (instance type, zone) raised by interruptions seen, and price relative
to the other candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from extender.state import ClusterState, NodeEntry
from spotpack.gpu import PreparedDemand, prepare
from spotpack.nodeview import NodeView
from spotpack.podview import PodView
from spotpack.policy import GPUPolicy
from spotpack.scoring.binpack import node_binpack
from spotpack.scoring.combine import to_extender_score
from spotpack.scoring.price import price_bounds, price_score
from spotpack.vgpu.model import PodGPUDemand

NOT_CACHED = "node is not in the extender's cache yet"


@dataclass(frozen=True, slots=True)
class Verdicts:
    passed: list[str]
    failed: dict[str, str]
    unresolvable: dict[str, str]


@lru_cache(maxsize=4096)
def _prepared(
    demand: PodGPUDemand, policy: GPUPolicy, include: tuple[str, ...], exclude: tuple[str, ...]
) -> PreparedDemand:
    return prepare(demand, policy=policy, include=include, exclude=exclude)


def prepared_demand(pod: PodView) -> PreparedDemand:
    """One prepared demand per distinct pod shape: the per-node fit memo is keyed by it, so
    filter, prioritize and bind of a pod (and of its identical replicas) share one fit."""
    return _prepared(pod.demand, pod.gpu_policy, pod.gpu_include, pod.gpu_exclude)


def capacity_problem(pod: PodView, view: NodeView) -> str | None:
    """Why the node's capacity type or state rules it out for this pod, if it does."""
    if view.interrupted:
        return f"node is being interrupted: {view.interrupted}"
    if pod.needs_on_demand and view.spot:
        return "pod must not run on spot capacity and the node is spot"
    if pod.needs_spot and not view.spot:
        return "pod requires spot capacity and the node is not spot"
    return None


def filter_nodes(state: ClusterState, pod: PodView, names: list[str]) -> Verdicts:
    """The filter verdict for every name (each name lands in exactly one bucket)."""
    passed: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    gpu = pod.demand.is_gpu_pod
    prepared = prepared_demand(pod) if gpu else None
    nodes = state.nodes
    with state.lock:
        for name in names:
            entry = nodes.get(name)
            if entry is None:
                failed[name] = NOT_CACHED
                continue
            problem = capacity_problem(pod, entry.view)
            if problem is not None:
                unresolvable[name] = problem
                continue
            if prepared is not None:
                result = state.fit_on(entry, prepared)
                if not result.ok:
                    (unresolvable if result.unresolvable else failed)[name] = result.reason
                    continue
            passed.append(name)
    return Verdicts(passed, failed, unresolvable)


@dataclass(frozen=True, slots=True)
class Weights:
    gpu: float = 3.0
    risk: float = 2.0
    price: float = 1.0


def _gpu_term(entry: NodeEntry, prepared: PreparedDemand, spread: bool) -> float | None:
    if entry.view.gpus is None or entry.usage is None:
        return None
    result = ClusterState.fit_on(entry, prepared)
    if not result.ok:
        return 0.0
    packed = node_binpack(entry.view.gpus, entry.usage, result.added)
    return 100.0 - packed if spread else packed


def prioritize_nodes(
    state: ClusterState, pod: PodView, names: list[str], weights: Weights
) -> list[tuple[str, int]]:
    """Integer scores 0..10 for every name, in input order (unknown nodes score 0).

    ``score = round_half_up(sum(w_t * term_t) / sum(w_t) / 10)`` over the terms
    the node has (a CPU-only node has no GPU term; it is left out, not counted
    as 0). The price term is 100 for the cheapest candidate and 0 for the
    dearest; unknown prices get 50 (see :mod:`spotpack.scoring.price`).
    """
    prepared = prepared_demand(pod) if pod.demand.is_gpu_pod else None
    spread = pod.gpu_policy is GPUPolicy.SPREAD
    rows: list[tuple[str, float | None, float, float | None] | None] = []
    with state.lock:
        for name in names:
            entry = state.nodes.get(name)
            if entry is None:
                rows.append(None)
                continue
            gpu = _gpu_term(entry, prepared, spread) if prepared is not None else None
            rows.append((name, gpu, entry.risk, entry.view.price))
    bounds = price_bounds(row[3] for row in rows if row is not None)
    scores = []
    for name, row in zip(names, rows, strict=True):
        if row is None:
            scores.append((name, 0))
            continue
        _, gpu, risk, price = row
        total = weights.risk * risk + weights.price * price_score(price, bounds)
        weight = weights.risk + weights.price
        if gpu is not None:
            total += weights.gpu * gpu
            weight += weights.gpu
        scores.append((name, to_extender_score(total / weight if weight > 0 else 0.0)))
    return scores
