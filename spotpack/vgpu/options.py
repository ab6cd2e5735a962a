"""Settings of the vGPU normalizer (a value, passed in; never a module global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from spotpack.errors import ConfigError
from spotpack.vgpu.model import DEFAULT_NAMES, ResourceNames
from spotpack.vgpu.rules import DEFAULT_MAX_VGPUS
from spotpack.vgpu.unknown import ALSO_KNOWN, Unknown, classify

SOURCE_ANNOTATION = "spotpack.io/vgpu-source"


@dataclass(frozen=True, slots=True)
class NormalizeOptions:
    """How to read and write vGPU requests.

    - ``names``: the canonical resource names written (HAMi's by default);
    - ``max_vgpus_per_container``: the largest vGPU count one container may ask;
    - ``gpushare_unit``: the unit of ``aliyun.com/gpu-mem``, as the gpushare
      device plugin's ``--memory-unit`` flag (``GiB`` by default, or ``MiB``);
    - ``volcano_memory_factor``: Volcano's ``gpuMemoryFactor`` (a
      ``volcano.sh/vgpu-memory`` of 1 means this many MiB; 1 by default);
    - ``source_annotation``: the pod annotation that records which dialects
      were translated.
    """

    names: ResourceNames = DEFAULT_NAMES
    max_vgpus_per_container: int = DEFAULT_MAX_VGPUS
    gpushare_unit: Literal["GiB", "MiB"] = "GiB"
    volcano_memory_factor: int = 1
    source_annotation: str = SOURCE_ANNOTATION
    _owners: dict[str, str] = field(init=False, repr=False, compare=False, hash=False)
    _known: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.max_vgpus_per_container < 1:
            raise ConfigError(
                f"max_vgpus_per_container must be >= 1, got {self.max_vgpus_per_container}"
            )
        if self.gpushare_unit not in ("GiB", "MiB"):
            raise ConfigError(f"gpushare_unit must be 'GiB' or 'MiB', got {self.gpushare_unit!r}")
        if self.volcano_memory_factor < 1:
            raise ConfigError(
                f"volcano_memory_factor must be >= 1, got {self.volcano_memory_factor}"
            )
        if len(set(self.names.keys)) != 4:
            raise ConfigError(f"resource names must be four different keys, got {self.names}")
        from spotpack.vgpu.dialects import key_owners

        owners = key_owners(self.names)
        object.__setattr__(self, "_owners", owners)
        object.__setattr__(self, "_known", frozenset(owners) | set(DEFAULT_NAMES.keys) | ALSO_KNOWN)

    @property
    def key_owners(self) -> dict[str, str]:
        """Every GPU resource key we read, mapped to its dialect; computed once.

        The webhook checks a container's keys against this map first, so a pod
        without GPU keys costs a few dictionary look-ups.
        """
        return self._owners

    @property
    def known_resources(self) -> frozenset[str]:
        """Every GPU resource name that is not a typo: the ones we read, HAMi's default
        names, and real names we pass through (:data:`spotpack.vgpu.unknown.ALSO_KNOWN`)."""
        return self._known

    def unknown(self, key: str) -> Unknown | None:
        """``key`` as an unknown GPU resource (a likely typo), or None; cached per key."""
        return classify(key, self._known)
