"""Spot interruption risk per (instance type, zone), and its score.

**Prior.** The AWS Spot Instance Advisor gives, per region and type, a bucket
of the monthly interruption frequency. We take each bucket's midpoint as the
monthly probability (the open top bucket ``>20%`` is given 25%):

======  ===========  ========
bucket  advisor      prior
======  ===========  ========
0       ``<5%``      0.025
1       ``5-10%``    0.075
2       ``10-15%``   0.125
3       ``15-20%``   0.175
4       ``>20%``     0.25
======  ===========  ========

An unknown bucket counts as the worst one.

**Update.** Interruptions of one (type, zone) are a Poisson process with rate
``lambda`` per instance-month. A Gamma prior with mean ``prior`` worth ``k``
instance-months of observation (shape ``prior * k``, rate ``k``) updated with
``events`` interruptions seen over ``exposure`` instance-months (node-hours /
730) has the posterior mean::

    risk = (prior * k + events) / (k + exposure)

so a few early interruptions raise the risk at once, while a quiet record needs
many instance-months to pull it below the advisor's figure. ``k`` defaults to
10 instance-months. For the small rates involved the monthly probability
``1 - exp(-lambda)`` is close to ``lambda``; we use ``lambda`` (slightly
pessimistic) capped at 1. On-demand capacity has risk 0.

**Score.** ``score = 100 * (1 - risk / max_risk)``, clipped to 0..100, with
``max_risk`` = 0.25 by default: on-demand scores 100, the worst bucket 0.
"""

from __future__ import annotations

import math

ADVISOR_MIDPOINTS: dict[int, float] = {0: 0.025, 1: 0.075, 2: 0.125, 3: 0.175, 4: 0.25}
MAX_RISK = 0.25
PRIOR_MONTHS = 10.0
"""``k``: how many instance-months of our own observation the advisor's figure is worth."""
HOURS_PER_MONTH = 730.0


def advisor_probability(bucket: int) -> float:
    """The prior monthly interruption probability of a Spot Advisor bucket (0..4)."""
    return ADVISOR_MIDPOINTS.get(bucket, MAX_RISK)


def exposure_months(node_hours: float) -> float:
    """Instance-months of exposure from node-hours observed."""
    return max(node_hours, 0.0) / HOURS_PER_MONTH


def interruption_risk(
    *,
    spot: bool,
    prior: float,
    events: float = 0.0,
    exposure: float = 0.0,
    k: float = PRIOR_MONTHS,
) -> float:
    """Monthly interruption risk 0..1 (see the module docstring); 0 for on-demand."""
    if not spot:
        return 0.0
    prior = min(max(prior, 0.0), 1.0) if math.isfinite(prior) else MAX_RISK
    events = max(events, 0.0)
    exposure = max(exposure, 0.0)
    k = max(k, 0.0)
    if k + exposure <= 0:
        return prior
    return min((prior * k + events) / (k + exposure), 1.0)


def risk_score(risk: float, max_risk: float = MAX_RISK) -> float:
    """0..100, higher for safer capacity: ``100 * (1 - risk / max_risk)``, clipped."""
    if not math.isfinite(risk) or max_risk <= 0:
        return 0.0
    return min(max(100.0 * (1.0 - risk / max_risk), 0.0), 100.0)


__all__ = [
    "ADVISOR_MIDPOINTS",
    "HOURS_PER_MONTH",
    "MAX_RISK",
    "PRIOR_MONTHS",
    "advisor_probability",
    "exposure_months",
    "interruption_risk",
    "risk_score",
]
