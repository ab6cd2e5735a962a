"""GPU decisions of the scheduler extender, pure: inventory, usage, per-card fit.

- :mod:`~spotpack.gpu.inventory`: a node's cards (HAMi registration, GPU
  feature discovery labels, or the catalog);
- :mod:`~spotpack.gpu.assignment` and :mod:`~spotpack.gpu.hami`: which cards a
  pod got, in our versioned annotation and in HAMi's;
- :mod:`~spotpack.gpu.usage`: what is taken per card, rebuilt from pods;
- :mod:`~spotpack.gpu.demand`: a pod's demand resolved once for the node loop;
- :mod:`~spotpack.gpu.fit`: whether a demand fits and on which cards;
- :mod:`~spotpack.gpu.explain`: why not, and whether preemption would help.

No I/O and no logging here: problems are returned for the caller to log.
"""

from spotpack.gpu.assignment import (
    GPU_ASSIGNMENT,
    Assignment,
    ContainerKind,
    DeviceGrant,
    InvalidAssignment,
    build_assignment,
    decode_assignment,
    encode_assignment,
    pod_layout,
)
from spotpack.gpu.fit import FitResult, PreparedDemand, could_fit, fit, fit_prepared, prepare
from spotpack.gpu.hami import assignment_from_hami, hami_annotations
from spotpack.gpu.inventory import (
    Card,
    GPUSpec,
    InventoryResult,
    InventorySource,
    NodeGPUs,
    inventory_from_node,
)
from spotpack.gpu.usage import NodeUsage, assignment_of_pod, card_loads, is_terminated

__all__ = [
    "GPU_ASSIGNMENT",
    "Assignment",
    "Card",
    "ContainerKind",
    "DeviceGrant",
    "FitResult",
    "GPUSpec",
    "InvalidAssignment",
    "InventoryResult",
    "InventorySource",
    "NodeGPUs",
    "NodeUsage",
    "PreparedDemand",
    "assignment_from_hami",
    "assignment_of_pod",
    "build_assignment",
    "card_loads",
    "could_fit",
    "decode_assignment",
    "encode_assignment",
    "fit",
    "fit_prepared",
    "hami_annotations",
    "inventory_from_node",
    "is_terminated",
    "pod_layout",
    "prepare",
]
