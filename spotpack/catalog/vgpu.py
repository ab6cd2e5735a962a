"""vGPU capacity per instance type: what HAMi will advertise once the node is up.

HAMi's device plugin splits each physical card into ``split`` vGPUs (its
``deviceSplitCount``, default 10) and shares the card's memory (times
``deviceMemoryScaling``, default 1) and its SMs (100 percent per card) among
them. A provisioner that only knows the cloud's GPU count (Karpenter reads 1
for a g4dn.xlarge) cannot see that the new node will take ten pods asking for
``nvidia.com/gpu: 1`` and 2 GiB each, so it must be told by hand (a Karpenter
``NodeOverlay``, see :mod:`spotpack.catalog.nodeoverlay`). Per node::

    nvidia.com/gpu      = cards * split
    nvidia.com/gpumem   = cards * floor(card_mib * memory_scaling)
    nvidia.com/gpucores = cards * 100
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spotpack.catalog.model import InstanceType
from spotpack.vgpu.model import DEFAULT_NAMES, ResourceNames

DEFAULT_SPLIT = 10
"""HAMi's ``deviceSplitCount`` default: at most ten vGPUs (tasks) per card."""

MAX_SPLIT = 1000
CORES_PER_CARD = 100


@dataclass(frozen=True, slots=True)
class VGPUCapacity:
    """The vGPU resources one node of an instance type offers."""

    instance_type: str
    model: str
    cards: int
    split: int
    mem_mib_per_card: int
    cores_per_card: int = CORES_PER_CARD

    @property
    def vgpus(self) -> int:
        return self.cards * self.split

    @property
    def mem_mib(self) -> int:
        return self.cards * self.mem_mib_per_card

    @property
    def cores(self) -> int:
        return self.cards * self.cores_per_card

    def resources(self, names: ResourceNames = DEFAULT_NAMES) -> dict[str, str]:
        """Node capacity as extended resources (integers as strings), HAMi's names by default."""
        return {
            names.count: str(self.vgpus),
            names.memory: str(self.mem_mib),
            names.cores: str(self.cores),
        }


def vgpu_capacity(
    itype: InstanceType, split: int = DEFAULT_SPLIT, memory_scaling: float = 1.0
) -> VGPUCapacity | None:
    """The vGPU capacity of ``itype`` with HAMi's settings, None for a type without GPUs."""
    if not 1 <= split <= MAX_SPLIT:
        raise ValueError(f"split must be 1..{MAX_SPLIT}, got {split}")
    if not (math.isfinite(memory_scaling) and memory_scaling > 0):
        raise ValueError(f"memory_scaling must be a positive number, got {memory_scaling}")
    gpu = itype.gpu
    if gpu is None:
        return None
    return VGPUCapacity(
        instance_type=itype.name,
        model=gpu.model,
        cards=gpu.count,
        split=split,
        mem_mib_per_card=math.floor(gpu.mem_mib * memory_scaling),
    )
