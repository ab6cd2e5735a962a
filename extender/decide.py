"""Filter and prioritize: the per-node verdicts, over the cluster state.

Read-only over :class:`~extender.state.ClusterState`, under its lock for the
length of one request (microseconds per node), with everything that depends
only on the node precomputed in its :class:`~spotpack.nodeview.NodeView` and
its entry (risk score, usage summary).

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

Both loops run for every candidate node of every pod, so the common vGPU shape
and the score mixing are written out (see :func:`simple_shape`); a property
test checks they answer what the core's general functions answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from extender.columns import (
    Candidates,
    FilterMasks,
    Gathered,
    K,
    answer_parts,
    filter_masks,
    passed_candidates,
    pick,
    pick_by,
    rows_for,
    vector_scores,
)
from extender.state import NO_GPUS, ClusterState, NodeEntry
from spotpack.gpu import ContainerKind, PreparedDemand, prepare
from spotpack.gpu.fit import sure_load
from spotpack.nodeview import NodeView
from spotpack.podview import PodView
from spotpack.policy import GPUPolicy
from spotpack.scoring.binpack import node_binpack
from spotpack.scoring.combine import MAX_SCORE
from spotpack.scoring.price import NEUTRAL
from spotpack.vgpu.model import PodGPUDemand

NOT_CACHED = "node is not in the extender's cache yet"
NOT_SPOT_OK = "pod must not run on spot capacity and the node is spot"
SPOT_ONLY = "pod requires spot capacity and the node is not spot"
Row = tuple[float | None, float, float | None]
"""(GPU term or None, risk score, hourly price or None) of one candidate node."""


@dataclass(frozen=True, slots=True)
class Verdicts:
    passed: list[str]
    failed: dict[str, str]
    unresolvable: dict[str, str]
    candidates: Candidates | None = None
    """The passed nodes' rows, for the pod's prioritize call (vector path only)."""


@dataclass(frozen=True, slots=True)
class Weights:
    gpu: float = 3.0
    risk: float = 2.0
    price: float = 1.0


@lru_cache(maxsize=4096)
def _prepared(
    demand: PodGPUDemand, policy: GPUPolicy, include: tuple[str, ...], exclude: tuple[str, ...]
) -> PreparedDemand:
    return prepare(demand, policy=policy, include=include, exclude=exclude)


def prepared_demand(pod: PodView) -> PreparedDemand:
    """One prepared demand per distinct pod shape: the per-node fit memo is keyed by it, so
    filter, prioritize and bind of a pod (and of its identical replicas) share one fit."""
    return _prepared(pod.demand, pod.gpu_policy, pod.gpu_include, pod.gpu_exclude)


def simple_shape(prepared: PreparedDemand) -> tuple[int, int] | None:
    """(count, MiB) when the demand is the common shape the hot loops special-case: one
    app container of ``count`` vGPUs of a fixed size, no cores asked, no GPU type filter.

    For that shape :func:`spotpack.gpu.fit.sure_load` reduces to one comparison on the
    node summary, ``free_desc[count - 1] >= MiB``, and the binpack term to three
    multiplications; the loops below inline both.
    """
    steps = prepared.steps
    if len(steps) != 1 or prepared.filtered:
        return None
    step = steps[0]
    if step.kind is not ContainerKind.APP or step.cores != 0 or step.mem_mib < 0:
        return None
    return step.count, step.mem_mib


def capacity_problem(pod: PodView, view: NodeView) -> str | None:
    """Why the node's capacity type or state rules it out for this pod, if it does."""
    if view.interrupted:
        return f"node is being interrupted: {view.interrupted}"
    if pod.needs_on_demand and view.spot:
        return NOT_SPOT_OK
    if pod.needs_spot and not view.spot:
        return SPOT_ONLY
    return None


def _surely_fits(entry: NodeEntry, prepared: PreparedDemand) -> bool:
    gpus, usage = entry.view.gpus, entry.usage
    return gpus is not None and usage is not None and sure_load(prepared, gpus, usage) is not None


def filter_nodes(state: ClusterState, pod: PodView, names: list[str]) -> Verdicts:
    """The filter verdict for every name (each name lands in exactly one bucket).

    CPU pods and the common vGPU shape are decided over the node columns in
    one vector pass, which also sorts the failures into reasons shared by every
    node in the same situation (not cached, wrong capacity type, no GPUs, cards
    too small, full: see :func:`full_reason`); only interrupted nodes are
    visited one by one, for the notice in their reason. Other shapes take the
    per-card fit node by node, with each node's own figures in the reason.
    """
    shape: tuple[int, int] | None = None
    if pod.demand.is_gpu_pod:
        shape = simple_shape(prepared_demand(pod))
        if shape is None or shape[0] > K:
            return _loop_filter(state, pod, names)
    columns = state.columns
    with state.lock:
        columns.sync(state.nodes)
        cols = columns.gather(columns.index(names), shape[0] if shape else None)
        masks = filter_masks(
            cols, on_demand=pod.needs_on_demand, spot=pod.needs_spot, need=shape and shape[1]
        )
        candidates = passed_candidates(cols, names, masks.ok, columns.generation)
        if masks.all_ok:
            return Verdicts(list(names), {}, {}, candidates)
        passed = pick(names, masks.ok)
        failed = dict.fromkeys(pick(names, masks.not_cached), NOT_CACHED)
        unresolvable = dict.fromkeys(
            pick(names, masks.wrong_type), NOT_SPOT_OK if pod.needs_on_demand else SPOT_ONLY
        )
        unresolvable.update(dict.fromkeys(pick(names, masks.no_gpus), NO_GPUS.reason))
        if shape is not None:
            full, small = _full_reasons(names, masks, cols, shape)
            failed.update(full)
            unresolvable.update(small)
        visit = pick(names, masks.interrupted)
        slow = _loop_filter(state, pod, visit) if visit else Verdicts([], {}, {})
    failed.update(slow.failed)
    unresolvable.update(slow.unresolvable)
    return Verdicts(passed, failed, unresolvable, replace(candidates, names=passed))


def full_reason(count: int, need: int) -> str:
    """Why a node with the pod's kind of cards cannot take it now (preemption may help).

    One text for every such node, without the node's own figures: kube-scheduler
    counts the reasons by text into the pod's FailedScheduling event, so 400
    full nodes read "400 ... no card with 17000 MiB free", not 400 lines.
    """
    if count == 1:
        return f"no card with {need} MiB free"
    return f"needs {count} cards with {need} MiB free"


def _full_reasons(
    names: list[str], masks: FilterMasks, cols: Gathered, shape: tuple[int, int]
) -> tuple[dict[str, str], dict[str, str]]:
    """(failed, unresolvable) reasons of the GPU nodes that refuse the simple shape,
    one text per situation (and card size), as the scheduler counts them."""
    count, need = shape
    failed = dict.fromkeys(pick(names, masks.full), full_reason(count, need))
    unresolvable: dict[str, str] = {}
    for size, group in pick_by(names, masks.too_small, cols.top_card).items():
        text = f"needs {need} MiB per card, cards have {size} MiB"
        unresolvable.update(dict.fromkeys(group, text))
    unresolvable.update(
        dict.fromkeys(
            pick(names, masks.too_few),
            f"{full_reason(count, need)} (not even with the node empty)",
        )
    )
    return failed, unresolvable


def _loop_filter(state: ClusterState, pod: PodView, names: list[str]) -> Verdicts:
    """:func:`filter_nodes` node by node, with the reason for each node that fails."""
    passed: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    prepared = prepared_demand(pod) if pod.demand.is_gpu_pod else None
    on_demand, spot = pod.needs_on_demand, pod.needs_spot
    nodes = state.nodes
    with state.lock:
        for name in names:
            entry = nodes.get(name)
            if entry is None:
                failed[name] = NOT_CACHED
                continue
            view = entry.view
            if view.interrupted or (on_demand and view.spot) or (spot and not view.spot):
                unresolvable[name] = capacity_problem(pod, view) or "capacity"
                continue
            if prepared is not None and not _surely_fits(entry, prepared):
                result = state.fit_on(entry, prepared)
                if not result.ok:
                    (unresolvable if result.unresolvable else failed)[name] = result.reason
                    continue
            passed.append(name)
    return Verdicts(passed, failed, unresolvable)


def _gpu_term(entry: NodeEntry, prepared: PreparedDemand, spread: bool) -> float | None:
    """HAMi's binpack score of the node with the pod on it (O(1) on the common shapes)."""
    gpus, usage = entry.view.gpus, entry.usage
    if gpus is None or usage is None:
        return None
    added = sure_load(prepared, gpus, usage)
    if added is None:
        result = ClusterState.fit_on(entry, prepared)
        if not result.ok:
            return 0.0
        added = result.added
    packed = node_binpack(gpus, usage, added)
    return 100.0 - packed if spread else packed


def prioritize_nodes(
    state: ClusterState, pod: PodView, names: list[str], weights: Weights
) -> list[tuple[str, int]]:
    """Integer scores 0..10 for every name, in input order (unknown nodes score 0)."""
    scores, _ = prioritize_scores(state, pod, names, weights)
    return list(zip(names, scores, strict=True))


Parts = list[bytes | None]


def prioritize_scores(
    state: ClusterState,
    pod: PodView,
    names: list[str],
    weights: Weights,
    hint: Candidates | None = None,
) -> tuple[list[int], Parts]:
    """The score of each name, in input order (unknown nodes score 0), and its ready JSON.

    ``score = round_half_up(sum(w_t * term_t) / sum(w_t) / 10)`` over the terms
    the node has (a CPU-only node has no GPU term; it is left out, not counted
    as 0): :func:`spotpack.scoring.combine.combine` of the GPU term, the node's
    risk score and :func:`spotpack.scoring.price.price_score`, written out.
    Prices are compared among these candidates only: ``price_term = 100 * (hi -
    price) / (hi - lo)`` with ``lo``/``hi`` the cheapest and dearest known
    prices of the names (node prices come from the validated catalog: finite,
    >= 0); an unknown price is neutral. All terms and weights are >= 0, so only
    the upper clamp at 10 can bite.

    CPU pods and the common vGPU shape (:func:`simple_shape`, at most
    :data:`~extender.columns.K` vGPUs) are scored over the node columns in one
    vector pass (:func:`~extender.columns.vector_scores`); other shapes go
    through the per-card fit, node by node. The second list is each node's
    ``{"Host", "Score"}`` JSON for its score (:attr:`NodeEntry.priorities`),
    None for names not cached. ``hint``, the pod's filter result, saves the
    name lookups when these are the names the filter passed.
    """
    shape: tuple[int, int] | None = None
    if pod.demand.is_gpu_pod:
        shape = simple_shape(prepared_demand(pod))
        if shape is None or shape[0] > K:
            return _loop_scores(state, pod, names, weights)
    columns = state.columns
    spread = pod.gpu_policy is GPUPolicy.SPREAD
    with state.lock:
        columns.sync(state.nodes)
        idx = rows_for(columns, names, hint)
        gathered = columns.gather(idx, shape[0] if shape is not None else None)
        scores = vector_scores(
            gathered, shape, spread, weights=(weights.gpu, weights.risk, weights.price)
        )
        parts = answer_parts(columns, idx, scores)
    return scores, parts


def _loop_scores(
    state: ClusterState, pod: PodView, names: list[str], weights: Weights
) -> tuple[list[int], Parts]:
    """:func:`prioritize_scores` node by node, for the shapes the columns do not cover."""
    get = state.nodes.get
    prepared = prepared_demand(pod)
    spread = pod.gpu_policy is GPUPolicy.SPREAD
    gpu_pod = pod.demand.is_gpu_pod
    with state.lock:  # every number read here: informers update entries in place
        entries = [get(name) for name in names]
        gpu_terms = [
            _gpu_term(e, prepared, spread) if e is not None and gpu_pod else None for e in entries
        ]
        rows = [(e.price, e.risk, e.priorities) if e is not None else None for e in entries]
    known = [row[0] for row in rows if row is not None and row[0] is not None]
    w_gpu, w_risk, w_price = weights.gpu, weights.risk, weights.price
    lo = min(known) if known else 0.0
    hi = max(known) if known else 0.0
    per_dollar = w_price * 100.0 / (hi - lo) if hi > lo else 0.0
    best, neutral = w_price * 100.0, w_price * NEUTRAL
    base = w_risk + w_price
    with_gpu = base + w_gpu
    scores: list[int] = []
    for row, gpu in zip(rows, gpu_terms, strict=True):
        if row is None:
            scores.append(0)
            continue
        price, risk, _ = row
        total = w_risk * risk + (neutral if price is None else best - (price - lo) * per_dollar)
        if gpu is None:
            mean = total / base if base > 0 else 0.0
        else:
            mean = (total + w_gpu * gpu) / with_gpu if with_gpu > 0 else 0.0
        score = int(mean * 0.1 + 0.5)  # rounds half up: mean >= 0
        scores.append(score if score < MAX_SCORE else MAX_SCORE)
    return scores, [
        row[2][score] if row is not None else None for row, score in zip(rows, scores, strict=True)
    ]
