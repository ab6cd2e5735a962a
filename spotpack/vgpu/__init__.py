"""vGPU requests: the canonical (HAMi) model and the normalization of every dialect.

Pure core, no I/O. The webhook calls :func:`normalize_pod` on every pod
create; the extender and the provisioner read a pod's demand with
:func:`read_demand`.
"""

from spotpack.vgpu.model import (
    DEFAULT_NAMES,
    ContainerVGPU,
    PodGPUDemand,
    ResourceNames,
    VGPURequest,
    read_demand,
)
from spotpack.vgpu.normalize import (
    ContainerChange,
    Normalization,
    NormalizeOptions,
    annotation_ops,
    normalize_pod,
    resource_ops,
    to_json_patch,
)

__all__ = [
    "DEFAULT_NAMES",
    "ContainerChange",
    "ContainerVGPU",
    "Normalization",
    "NormalizeOptions",
    "PodGPUDemand",
    "ResourceNames",
    "VGPURequest",
    "annotation_ops",
    "normalize_pod",
    "read_demand",
    "resource_ops",
    "to_json_patch",
]
