"""Mix 0..100 terms into the integer 0..10 the scheduler extender protocol requires.

::

    mean  = sum(w_t * clip(term_t, 0, 100)) / sum(w_t)     over terms with w_t > 0
    score = clamp(floor(mean / 10 + 0.5), 0, 10)           round half up

The extender's ``HostPriority.Score`` is an ``int64``: a float such as ``5.0``
breaks the Go decoder, and the scheduler multiplies it by the extender's
weight (and by 10) without clamping, so an out-of-range score would outweigh
every in-tree plugin. Terms with a weight of zero (or negative, or missing)
are ignored; a weighted term that is missing or not a finite number counts as
0; all weights zero gives 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

MAX_SCORE = 10


def combine(terms: Mapping[str, float], weights: Mapping[str, float]) -> int:
    """The weighted mean of ``terms`` as an integer 0..10 (see the module docstring)."""
    total = weighted = 0.0
    for name, weight in weights.items():
        if not weight > 0 or not math.isfinite(weight):
            continue
        value = terms.get(name, 0.0)
        value = min(max(value, 0.0), 100.0) if math.isfinite(value) else 0.0
        total += weight
        weighted += weight * value
    if total <= 0:
        return 0
    return to_extender_score(weighted / total)


def to_extender_score(mean: float) -> int:
    """A 0..100 mean as the protocol's integer 0..10: ``floor(mean / 10 + 0.5)``, clamped."""
    if not math.isfinite(mean):
        return 0
    return min(max(math.floor(mean / 10 + 0.5), 0), MAX_SCORE)


__all__ = ["MAX_SCORE", "combine", "to_extender_score"]
