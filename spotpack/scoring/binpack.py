"""GPU binpack and spread: how full a node's cards are once the pod is placed.

HAMi's node score (``pkg/scheduler/policy/node_policy.go``), summed over all
cards of the node, *after* adding the pod::

    raw = 10 * (used_slots / total_slots + used_cores / total_cores + used_mem / total_mem)

Each ratio is 0..1, so ``raw`` is 0..30 (HAMi's binpack policy prefers the
highest, spread the lowest). Normalized to our 0..100 terms::

    binpack = raw / 30 * 100
    spread  = 100 - binpack

A ratio with a zero total is 0 (HAMi would divide by zero) and a ratio above 1
(a node over-committed by someone else) counts as 1, so the terms stay in range.
Packing the fullest nodes first keeps whole nodes empty for whole-card jobs and
for scale-down; spreading lowers the blast radius of one spot interruption.

Terms are snapped to 1e-9 (:func:`snap`): the fast form (inverse totals, summed
ratios) and the reference form (divisions) differ in the last bits, and a term
of 29.999999999999986 instead of 30 would turn an integer score at a .5
boundary from 7 into 6.
"""

from __future__ import annotations

import math

from spotpack.gpu.inventory import NodeGPUs
from spotpack.gpu.usage import Load, NodeUsage

WEIGHT = 10
"""HAMi's ``Weight``."""
MAX_RAW = 3 * WEIGHT


SNAP = 1e9
"""Terms are kept to 1e-9 (see the module docstring)."""


def snap(term: float) -> float:
    """``floor(term * 1e9 + 0.5) / 1e9``: plain IEEE operations, so an array version
    (``numpy.floor`` of the same expression) gives bit-identical results."""
    return math.floor(term * SNAP + 0.5) / SNAP


def _ratio(used: float, total: float) -> float:
    if total <= 0 or used <= 0:
        return 0.0
    return min(used / total, 1.0)


def hami_node_score(
    *,
    used_slots: float,
    total_slots: float,
    used_cores: float,
    total_cores: float,
    used_mem: float,
    total_mem: float,
) -> float:
    """HAMi's raw node score, 0..30 (see the module docstring)."""
    return WEIGHT * (
        _ratio(used_slots, total_slots)
        + _ratio(used_cores, total_cores)
        + _ratio(used_mem, total_mem)
    )


def binpack_term(
    *,
    used_slots: float,
    total_slots: float,
    used_cores: float,
    total_cores: float,
    used_mem: float,
    total_mem: float,
) -> float:
    """0..100, higher for fuller nodes."""
    raw = hami_node_score(
        used_slots=used_slots,
        total_slots=total_slots,
        used_cores=used_cores,
        total_cores=total_cores,
        used_mem=used_mem,
        total_mem=total_mem,
    )
    return snap(raw / MAX_RAW * 100)


def spread_term(
    *,
    used_slots: float,
    total_slots: float,
    used_cores: float,
    total_cores: float,
    used_mem: float,
    total_mem: float,
) -> float:
    """0..100, higher for emptier nodes: ``100 - binpack_term``."""
    return 100 - binpack_term(
        used_slots=used_slots,
        total_slots=total_slots,
        used_cores=used_cores,
        total_cores=total_cores,
        used_mem=used_mem,
        total_mem=total_mem,
    )


def node_binpack(gpus: NodeGPUs, usage: NodeUsage, added: Load) -> float:
    """:func:`binpack_term` of a node after adding ``added`` (``FitResult.added``); O(1).

    Computed from the node's precomputed ratio sum (``usage.fill``) and inverse
    totals rather than through :func:`binpack_term`, since prioritize calls it
    for every candidate of every pod. Equal to :func:`binpack_term` whenever the
    pod fits (no ratio passes 1); a table test checks both agree.
    """
    inv_slots, inv_mem, inv_cores = gpus.inverse_totals
    raw = usage.fill + added[0] * inv_slots + added[1] * inv_mem + added[2] * inv_cores
    return snap(min(max(raw, 0.0), 3.0) * (100.0 / 3.0))


__all__ = [
    "MAX_RAW",
    "SNAP",
    "WEIGHT",
    "binpack_term",
    "hami_node_score",
    "node_binpack",
    "snap",
    "spread_term",
]
