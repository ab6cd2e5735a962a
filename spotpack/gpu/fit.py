"""Does a pod's vGPU demand fit a node's cards, and on which cards?

Rules (HAMi's, so that HAMi's device plugin and our accounting agree):

- each container's N vGPUs go on N *different* healthy cards whose model the
  pod allows: ``gpu-include`` / ``gpu-exclude`` are case-insensitive substring
  matches on the card model (HAMi's ``CheckType``);
- a card takes a vGPU when it has a free slot (``used < split count``), enough
  free memory (``mem_mib``; or ``mem_percent`` of the card, rounded down; or,
  for a whole-card request, all of it), and cores: ``cores >= 100`` is
  exclusive (the card must have no other user), otherwise ``used + cores <=
  capacity`` and the card's compute must not be exhausted (a card whose cores
  are all reserved takes no one, not even a 0-core request). A request without
  cores takes ``VGPURequest.cores_or_default``: 0, or 100 for a whole card;
- the containers of one pod add up, in spec order: sidecars (init containers
  with ``restartPolicy: Always``) and app containers are placed cumulatively;
  a plain init container is checked on its own against what is already there
  plus the sidecars declared before it, and is not added, because it finishes
  before the next container starts. :mod:`spotpack.gpu.usage` counts a placed
  pod with the same rule, so successive fits never over-commit a card;
- ``binpack`` picks, among the fitting cards, those with the least free memory
  (already most used), ``spread`` those with the most; ties go to the lowest
  card index. Deterministic.

The filter calls this for ~500 nodes per pod, so per node: a memo lookup (the
answer is kept on the node's :class:`NodeUsage` until its usage changes, so a
burst of identical pods re-fits only the node that took the last one); else a
pre-check against the summary :class:`NodeUsage` keeps (free memory of the
open cards, sorted), which rejects most full nodes with a reason and no card
loop; else one loop over the cards, with no copies for a one-container pod.
Call :func:`prepare` once per pod and :func:`fit_prepared` per node;
:func:`fit` does both (with a cache keyed by the demand) for convenience.

A failure says why in words a person can act on, and whether preemption could
help (``unresolvable=False``: freeing pods would make room) or not (type
mismatch, fewer healthy cards than the count, a card too small).
"""

from __future__ import annotations

from functools import lru_cache

from spotpack.gpu.assignment import ContainerKind, DeviceGrant
from spotpack.gpu.demand import FitResult, PreparedDemand, Step, prepare
from spotpack.gpu.explain import State, explain, from_summary, type_reason
from spotpack.gpu.inventory import FULL_CORES, NodeGPUs
from spotpack.gpu.usage import Load, NodeUsage, card_loads, open_columns
from spotpack.policy import GPUPolicy
from spotpack.vgpu.model import PodGPUDemand

_prepare_cached = lru_cache(maxsize=4096)(prepare)

_NOTHING = FitResult(True, "", (), False)


def fit(
    demand: PodGPUDemand,
    gpus: NodeGPUs,
    usage: NodeUsage,
    *,
    policy: GPUPolicy = GPUPolicy.BINPACK,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    default_cores: int = 0,
) -> FitResult:
    """Fit ``demand`` on ``gpus`` given ``usage`` (see the module docstring for the rules)."""
    prepared = _prepare_cached(
        demand, policy=policy, include=include, exclude=exclude, default_cores=default_cores
    )
    return fit_prepared(prepared, gpus, usage)


def could_fit(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> bool:
    """Cheap necessary condition from the node summary: False means the fit fails too.

    For every container, its ``count``-th largest free memory among the open
    cards (healthy, a free slot, cores left) must cover one vGPU's memory, an
    exclusive container needs ``count`` unused cards, and a node whose only
    model the pod does not allow is out. O(containers), no card loop.
    """
    if not prepared.steps:
        return True
    return _type_ok(prepared, gpus) and _short_step(prepared, gpus, usage) is None


def sure_load(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> Load | None:
    """A sufficient condition from the node summary, O(1): the (slots, MiB, cores) the pod
    would add when it surely fits, else None (the full fit decides).

    Covers the common shape, one app container of ``count`` vGPUs of a known size:

    * no cores asked (0): any ``count`` open cards with the memory free will do,
      which ``free_desc[count - 1] >= need`` says;
    * exclusive (100 cores): ``count`` idle cards, every one big enough (same-size cards).

    The filter then answers without choosing cards; bind runs the full fit.
    """
    steps = prepared.steps
    if len(steps) != 1 or (prepared.filtered and not _uniform_allowed(prepared, gpus)):
        return None
    step = steps[0]
    if step.kind is not ContainerKind.APP:
        return None
    if step.cores == 0:
        return _sure_shared(step, gpus, usage)
    if step.exclusive:
        return _sure_exclusive(step, gpus, usage)
    return None


def _sure_shared(step: Step, gpus: NodeGPUs, usage: NodeUsage) -> Load | None:
    """No cores asked: ``count`` open cards with the memory free surely take it."""
    if step.mem_mib < 0 and gpus.uniform_mem is None:
        return None
    need, count, free = step.floor_need(gpus), step.count, usage.free_desc
    if count <= len(free) and free[count - 1] >= need:
        return (count, need * count, 0)
    return None


def _sure_exclusive(step: Step, gpus: NodeGPUs, usage: NodeUsage) -> Load | None:
    """Whole cards: ``count`` idle cards of one size that holds the need surely take it."""
    size, cores = gpus.uniform_mem, gpus.uniform_cores
    if size is None or cores is None:
        return None
    need, count = step.floor_need(gpus), step.count
    if count <= usage.idle_cards and need <= size:
        return (count, need * count, cores * count)
    return None


def _uniform_allowed(prepared: PreparedDemand, gpus: NodeGPUs) -> bool:
    uniform = gpus.uniform_model
    return uniform is not None and prepared.model_ok(uniform)


def _type_ok(prepared: PreparedDemand, gpus: NodeGPUs) -> bool:
    uniform = gpus.uniform_model
    return not (prepared.filtered and uniform is not None and not prepared.model_ok(uniform))


def _short_step(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> Step | None:
    """The first container the node summary already rules out, if any."""
    free_desc = usage.free_desc
    for step in prepared.steps:
        count = step.count
        if (
            count > len(free_desc)
            or free_desc[count - 1] < step.floor_need(gpus)
            or (step.cores >= FULL_CORES and count > usage.idle_cards)
        ):
            return step
    return None


def _allowed(prepared: PreparedDemand, gpus: NodeGPUs) -> tuple[bool, ...] | None:
    """Per card position, whether the pod allows its model; None when all are allowed."""
    if not prepared.filtered:
        return None
    uniform = gpus.uniform_model
    if uniform is not None:
        return None if prepared.model_ok(uniform) else (False,) * len(gpus.cards)
    return tuple(prepared.model_ok(m) for m in gpus.models_lower)


def _choose(
    step: Step,
    gpus: NodeGPUs,
    columns: tuple[list[int], list[int], list[int]],
    allowed: tuple[bool, ...] | None,
    binpack: bool,
) -> list[int] | None:
    """Positions of the ``step.count`` cards to use, best first; None when too few fit.

    ``columns`` are (used slots, free MiB of open cards, free cores) as made by
    :func:`~spotpack.gpu.usage.open_columns`: closed cards are -1.
    """
    used_slots, free_open, free_cores = columns
    mem = gpus.mem
    fixed, percent, cores = step.mem_mib, step.percent, step.cores
    exclusive = cores >= FULL_CORES
    single = step.count == 1
    best, best_free = -1, 0
    found: list[tuple[int, int]] = []
    for i, free in enumerate(free_open):
        if free < 0 or (allowed is not None and not allowed[i]):
            continue
        if free < (fixed if fixed >= 0 else mem[i] * percent // 100):
            continue
        if exclusive:
            if used_slots[i]:
                continue
        elif free_cores[i] < cores:
            continue
        if single:
            if best < 0 or (free < best_free if binpack else free > best_free):
                best, best_free = i, free
        else:
            found.append((free if binpack else -free, i))
    if single:
        return None if best < 0 else [best]
    if len(found) < step.count:
        return None
    found.sort()
    return [i for _, i in found[: step.count]]


def _grants(step: Step, gpus: NodeGPUs, picks: list[int]) -> tuple[DeviceGrant, ...]:
    cards = gpus.cards
    if len(picks) == 1:
        card = cards[picks[0]]
        return (DeviceGrant(card.uuid, card.model, step.need_on(card.mem_mib), step.cores),)
    return tuple(
        DeviceGrant(cards[i].uuid, cards[i].model, step.need_on(cards[i].mem_mib), step.cores)
        for i in picks
    )


MEMO_SIZE = 32
"""Memoized results per node (distinct pod shapes in flight between two changes of the node)."""


def fit_prepared(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> FitResult:
    """:func:`fit` for a demand resolved once with :func:`prepare`.

    Results are memoized on ``usage`` per prepared demand until the node's
    usage changes: a burst of identical pods re-checks only the node that took
    the previous one. ``usage`` must be ``gpus``'s usage (no memo otherwise)
    and change only through ``add``/``remove``. Concurrent readers are safe
    under the GIL: a result computed while the usage changed is stored under
    the old version and never served.
    """
    if not prepared.steps:
        return _NOTHING
    if gpus is not usage.gpus:
        return _verdict(prepared, gpus, usage)
    key = id(prepared)
    version = usage.version
    hit = usage.memo.get(key)
    if hit is not None and hit[0] is prepared and hit[1] == version:
        return hit[2]  # type: ignore[return-value]
    result = _verdict(prepared, gpus, usage)
    memo = usage.memo
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = (prepared, version, result)
    return result


def _verdict(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> FitResult:
    """:func:`_fit`, with a "resolvable" failure checked against the empty node.

    Preemption only helps when the pod fits once pods are gone. A failure the
    per-container checks call resolvable may still not fit an empty node (two
    containers that together outgrow a card; a count of large vGPUs on a node
    with cards of mixed sizes): then it is unresolvable, or the scheduler would
    evict pods for nothing. The empty-node answer is memoized on ``gpus``.
    """
    result = _fit(prepared, gpus, usage)
    if result.ok or result.unresolvable or _fits_empty(prepared, gpus):
        return result
    return FitResult(False, f"{result.reason} (not even with the node empty)", None, True)


def _fits_empty(prepared: PreparedDemand, gpus: NodeGPUs) -> bool:
    memo = gpus.fit_memo
    hit = memo.get(id(prepared))
    if hit is not None and hit[0] is prepared:
        return hit[1]
    empty = gpus.empty_usage
    if not isinstance(empty, NodeUsage):  # first check on this node: build it once
        empty = NodeUsage(gpus)
        object.__setattr__(gpus, "empty_usage", empty)
    fits = sure_load(prepared, gpus, empty) is not None or _fit(prepared, gpus, empty).ok
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[id(prepared)] = (prepared, fits)
    return fits


def _fit(prepared: PreparedDemand, gpus: NodeGPUs, usage: NodeUsage) -> FitResult:
    """Summary pre-check, then the card loop (one container: no copies, no extra lists)."""
    if prepared.filtered and not _type_ok(prepared, gpus):
        everything = list(range(len(gpus.cards)))
        return FitResult(False, type_reason(prepared, gpus, everything), None, True)
    short = _short_step(prepared, gpus, usage)
    if short is not None:
        return from_summary(prepared, short, gpus, usage)
    allowed = _allowed(prepared, gpus) if prepared.filtered else None
    steps = prepared.steps
    step = steps[0]
    if len(steps) > 1 or step.kind is ContainerKind.INIT:
        return _fit_many(
            prepared, gpus, (usage.used_slots, usage.used_mem, usage.used_cores), allowed
        )
    columns = (usage.used_slots, usage.free_open, usage.free_cores)
    picks = _choose(step, gpus, columns, allowed, prepared.binpack)
    if picks is None:
        return explain(prepared, step, gpus, (usage.used_slots, usage.used_mem, usage.used_cores))
    grants = _grants(step, gpus, picks)
    if len(picks) == 1:
        pick = picks[0]
        cores = gpus.cores[pick] if step.cores >= FULL_CORES else step.cores
        return FitResult(True, "", (grants,), False, (1, grants[0].mem_mib, cores))
    cores = sum(gpus.cores[i] for i in picks) if step.exclusive else step.cores * len(picks)
    added = (len(picks), sum(g.mem_mib for g in grants), cores)
    return FitResult(True, "", (grants,), False, added)


def _fit_many(
    prepared: PreparedDemand,
    gpus: NodeGPUs,
    state: State,
    allowed: tuple[bool, ...] | None,
) -> FitResult:
    """Several containers (or an init container): place on a working copy of the usage."""
    work = (list(state[0]), list(state[1]), list(state[2]))
    devices: list[tuple[DeviceGrant, ...]] = []
    for step in prepared.steps:
        free_open, free_cores = open_columns(gpus, *work)
        picks = _choose(step, gpus, (work[0], free_open, free_cores), allowed, prepared.binpack)
        if picks is None:
            return explain(prepared, step, gpus, work)
        devices.append(_grants(step, gpus, picks))
        if step.kind is ContainerKind.INIT:
            continue
        for i, grant in zip(picks, devices[-1], strict=True):
            work[0][i] += 1
            work[1][i] += grant.mem_mib
            work[2][i] += gpus.cores[i] if step.exclusive else step.cores
    kinds = tuple(s.kind for s in prepared.steps)
    loads, _ = card_loads(gpus, tuple(devices), kinds)
    added = (
        sum(v[0] for v in loads.values()),
        sum(v[1] for v in loads.values()),
        sum(v[2] for v in loads.values()),
    )
    return FitResult(True, "", tuple(devices), False, added)


# --- reasons (the failure path: clarity over speed) ------------------------------------------


__all__ = [
    "FitResult",
    "PreparedDemand",
    "Step",
    "could_fit",
    "fit",
    "fit_prepared",
    "prepare",
]
