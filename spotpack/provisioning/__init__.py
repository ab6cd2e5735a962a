"""The provisioner's pure core: pending pods and offerings in, a plan of new nodes out.

- :mod:`.model`: the values (:class:`Resources`, :class:`PodDemand`,
  :class:`Offering`, :class:`NodeCapacity`, :class:`PlannedNode`, :class:`Plan`,
  :class:`Limits`);
- :mod:`.demand`: a raw Pod dict -> :class:`PodDemand`;
- :mod:`.offerings`: the catalog -> :class:`Offering` list, with allocatable;
- :mod:`.risk`: risk-adjusted hourly cost;
- :mod:`.plan`: the planner (:func:`plan`);
- :mod:`.bound`: a MILP lower bound and the all-on-demand baseline, for the
  benchmark. It needs scipy (a development dependency) and is not imported here.

No I/O, no Kubernetes client, no cloud SDK.
"""

from spotpack.provisioning.demand import estimate_rerun_cost, pod_demand
from spotpack.provisioning.model import (
    NO_LIMITS,
    CapacityNeed,
    CapacityType,
    Limits,
    NodeCapacity,
    Offering,
    Plan,
    PlannedNode,
    PodDemand,
    Resources,
)
from spotpack.provisioning.offerings import allocatable, in_flight_node, offerings_from_catalog
from spotpack.provisioning.plan import plan
from spotpack.provisioning.risk import risk_adjusted_cost

__all__ = [
    "NO_LIMITS",
    "CapacityNeed",
    "CapacityType",
    "Limits",
    "NodeCapacity",
    "Offering",
    "Plan",
    "PlannedNode",
    "PodDemand",
    "Resources",
    "allocatable",
    "estimate_rerun_cost",
    "in_flight_node",
    "offerings_from_catalog",
    "plan",
    "pod_demand",
    "risk_adjusted_cost",
]
