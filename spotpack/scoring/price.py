"""Price: cheaper nodes score higher, relative to the nodes being compared.

Over the candidate nodes of one prioritize call with a known hourly price
(finite, >= 0), ``lo`` and ``hi`` are the cheapest and dearest::

    score = 100 * (hi - price) / (hi - lo)      cheapest 100, dearest 0
    score = 100                                 when hi == lo (all equal)
    score = 50                                  price unknown (neutral)

Relative, not absolute: what matters to the scheduler is which of *these*
nodes is cheaper, and an absolute scale would need a currency and a ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

NEUTRAL = 50.0


def _known(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price >= 0


def price_bounds(prices: Iterable[float | None]) -> tuple[float, float] | None:
    """(cheapest, dearest) known price, None when no price is known."""
    known = [p for p in prices if p is not None and _known(p)]
    if not known:
        return None
    return min(known), max(known)


def price_score(price: float | None, bounds: tuple[float, float] | None) -> float:
    """0..100 for one node, given :func:`price_bounds` of the candidates."""
    if price is None or bounds is None or not _known(price):
        return NEUTRAL
    lo, hi = bounds
    if hi <= lo:
        return 100.0
    return min(max(100.0 * (hi - price) / (hi - lo), 0.0), 100.0)


def price_scores(prices: Mapping[str, float | None]) -> dict[str, float]:
    """Score of every node of ``prices`` (node -> hourly price or None)."""
    bounds = price_bounds(prices.values())
    return {node: price_score(price, bounds) for node, price in prices.items()}


__all__ = ["NEUTRAL", "price_bounds", "price_score", "price_scores"]
