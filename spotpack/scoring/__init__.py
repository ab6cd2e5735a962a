"""Node scoring for the extender's prioritize verb: one module per idea.

Every term is a float from 0 (worst) to 100 (best), its formula in its module's
docstring; :func:`~spotpack.scoring.combine.combine` mixes the terms with
configurable weights into the integer 0..10 the scheduler extender protocol
requires. Pure functions over numbers: no I/O.

- :mod:`~spotpack.scoring.binpack`: GPU binpack / spread (HAMi's node score);
- :mod:`~spotpack.scoring.risk`: spot interruption risk per (type, zone);
- :mod:`~spotpack.scoring.price`: hourly price within the candidate set;
- :mod:`~spotpack.scoring.combine`: weighted mean -> 0..10 (:func:`to_extender_score`).
"""

from spotpack.scoring.binpack import binpack_term, hami_node_score, node_binpack, spread_term
from spotpack.scoring.combine import combine, to_extender_score
from spotpack.scoring.price import price_bounds, price_score, price_scores
from spotpack.scoring.risk import advisor_probability, interruption_risk, risk_score

__all__ = [
    "advisor_probability",
    "binpack_term",
    "combine",
    "hami_node_score",
    "interruption_risk",
    "node_binpack",
    "price_bounds",
    "price_score",
    "price_scores",
    "risk_score",
    "spread_term",
    "to_extender_score",
]
