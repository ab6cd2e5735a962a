"""Risk-adjusted hourly cost of a node: its price plus the work an interruption would lose.

For an offering and the pods packed on it::

    p_hour = monthly_rate / 730                      (0 for on-demand)
    risk   = p_hour * sum(rerun_cost of the pods)    USD per hour
    cost   = price_per_hour + risk

``monthly_rate`` is the representative monthly interruption rate of the
offering's Spot Advisor bucket (:data:`spotpack.catalog.model.BUCKET_RATES`:
0.025, 0.075, 0.125, 0.175, 0.30), read as a Poisson rate ``lambda`` per
instance-month, as :mod:`spotpack.scoring.risk` does. The exact probability of
at least one interruption in an hour is ``1 - exp(-lambda / 730)``, which is
below ``lambda / 730`` by a relative ``lambda / 1460`` at most (0.02 percent
for the worst bucket): the linear form is slightly pessimistic and, above all,
linear in the pods, which the packer and the lower bound (:mod:`.bound`) both
need. A node's interruption loses the work of every pod on it, so the pods'
re-run costs add up.

Worked examples (table-tested):

=========  ======  =====  =========  ===================
price/h    bucket  rate   rerun $    risk-adjusted $/h
=========  ======  =====  =========  ===================
0.0432     1       0.075  0          0.0432
0.0432     1       0.075  73.0       0.0432 + 0.0075
0.1578     2       0.125  146.0      0.1578 + 0.025
0.096      (OD)    0      1000.0     0.096
=========  ======  =====  =========  ===================
"""

from __future__ import annotations

from collections.abc import Iterable

from spotpack.catalog.model import BUCKET_RATES, MAX_BUCKET
from spotpack.provisioning.model import Offering

HOURS_PER_MONTH = 730.0


def hourly_probability(monthly_rate: float) -> float:
    """``monthly_rate / 730``: the linear hourly interruption probability (see module docstring)."""
    return max(monthly_rate, 0.0) / HOURS_PER_MONTH


def bucket_rate(bucket: int | None) -> float:
    """The monthly rate of a Spot Advisor bucket; an unknown bucket counts as the worst."""
    if bucket is None or not 0 <= bucket <= MAX_BUCKET:
        return BUCKET_RATES[MAX_BUCKET]
    return BUCKET_RATES[bucket]


def risk_cost(offering: Offering, rerun_total: float) -> float:
    """Expected interruption loss per hour of ``offering`` holding pods worth ``rerun_total``."""
    return hourly_probability(offering.interruption_rate) * max(rerun_total, 0.0)


def risk_adjusted_cost(offering: Offering, rerun_costs: Iterable[float] = ()) -> float:
    """``price + monthly_rate / 730 * sum(rerun_costs)``, USD per hour."""
    return offering.price_per_hour + risk_cost(offering, sum(rerun_costs))


__all__ = [
    "HOURS_PER_MONTH",
    "bucket_rate",
    "hourly_probability",
    "risk_adjusted_cost",
    "risk_cost",
]
