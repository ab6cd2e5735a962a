"""The vGPU model: what a container, and a pod, ask of the GPUs.

The canonical form is HAMi's (the de-facto standard), per container, as
extended resources whose requests equal their limits:

- ``nvidia.com/gpu`` = N vGPUs, each on a different physical card;
- ``nvidia.com/gpumem`` = MiB per vGPU, or
  ``nvidia.com/gpumem-percentage`` = percent of each card's memory (one or the
  other; neither means the whole card's memory);
- ``nvidia.com/gpucores`` = percent of a card's SMs per vGPU (100 = exclusive).

Names are configurable through :class:`ResourceNames`. Everything here is pure:
values in, values out, no I/O. The webhook's normalizer turns every dialect into
this form; the extender and the provisioner read it with :func:`read_demand`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from spotpack.vgpu import rules


@dataclass(frozen=True, slots=True)
class ResourceNames:
    """The extended-resource names of the canonical form (HAMi's defaults)."""

    count: str = "nvidia.com/gpu"
    memory: str = "nvidia.com/gpumem"
    memory_percent: str = "nvidia.com/gpumem-percentage"
    cores: str = "nvidia.com/gpucores"

    @property
    def keys(self) -> tuple[str, str, str, str]:
        """(count, memory, memory_percent, cores), the order the normalizer writes them in."""
        return (self.count, self.memory, self.memory_percent, self.cores)


DEFAULT_NAMES = ResourceNames()


@dataclass(frozen=True, slots=True)
class VGPURequest:
    """One container's vGPU request: ``count`` vGPUs, each on a different card.

    ``mem_mib`` and ``mem_percent`` are per vGPU and exclusive; with neither,
    each vGPU takes its card's whole memory. ``cores`` is the percent of a
    card's SMs per vGPU, None when not given (see :meth:`cores_or_default`).
    Construct through the normalizer or :func:`read_demand`, which validate user
    input; the checks here only guard the invariants (a ``ValueError`` is a bug).
    """

    count: int
    mem_mib: int | None = None
    mem_percent: int | None = None
    cores: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.mem_mib is not None and self.mem_percent is not None:
            raise ValueError("mem_mib and mem_percent are exclusive")
        if self.mem_mib is not None and not 1 <= self.mem_mib <= rules.MAX_MEM_MIB:
            raise ValueError(f"mem_mib out of range: {self.mem_mib}")
        if self.mem_percent is not None and not 1 <= self.mem_percent <= 100:
            raise ValueError(f"mem_percent out of range: {self.mem_percent}")
        if self.cores is not None and not 0 <= self.cores <= 100:
            raise ValueError(f"cores out of range: {self.cores}")

    @property
    def is_whole_card(self) -> bool:
        """Each vGPU takes all of its card's memory: no memory given, or 100 percent."""
        return self.mem_mib is None and self.mem_percent in (None, 100)

    @property
    def is_bare(self) -> bool:
        """Only a count was given: N whole cards, said nothing about memory or cores."""
        return self.mem_mib is None and self.mem_percent is None and self.cores is None

    def memory_on(self, card_mib: int) -> int:
        """MiB one vGPU takes on a card with ``card_mib`` MiB of memory.

        ``mem_mib`` as given (it may exceed the card: then it does not fit);
        a percentage is ``card_mib * percent // 100``, rounded down as HAMi does
        so that our accounting and HAMi's agree; neither is the whole card.
        """
        if self.mem_mib is not None:
            return self.mem_mib
        percent = 100 if self.mem_percent is None else self.mem_percent
        return card_mib * percent // 100

    def cores_or_default(self, default: int = 0) -> int:
        """Percent of a card's SMs one vGPU reserves.

        ``cores`` when given; else 100 when the vGPU takes the whole card's
        memory (nothing else can share that card, and HAMi's webhook sets
        gpucores to 100 in that case); else ``default``, HAMi's ``defaultCores``
        (0: no SM reservation).
        """
        if self.cores is not None:
            return self.cores
        if self.is_whole_card:
            return 100
        return default

    def to_resources(self, names: ResourceNames = DEFAULT_NAMES) -> dict[str, str]:
        """The canonical extended resources, integers as strings, in canonical order."""
        out = {names.count: str(self.count)}
        if self.mem_mib is not None:
            out[names.memory] = str(self.mem_mib)
        if self.mem_percent is not None:
            out[names.memory_percent] = str(self.mem_percent)
        if self.cores is not None:
            out[names.cores] = str(self.cores)
        return out

    def describe(self, names: ResourceNames = DEFAULT_NAMES) -> str:
        """``nvidia.com/gpu=2, nvidia.com/gpumem=4096`` for messages."""
        return ", ".join(f"{k}={v}" for k, v in self.to_resources(names).items())


@dataclass(frozen=True, slots=True)
class ContainerVGPU:
    """A container's request with where it runs: app, init, or sidecar.

    A sidecar is an init container with ``restartPolicy: Always``: it starts in
    the init phase and keeps running beside the app containers.
    """

    name: str
    request: VGPURequest
    init: bool = False
    sidecar: bool = False


@dataclass(frozen=True, slots=True)
class PodGPUDemand:
    """The GPU requests of a pod's containers, in spec order (init containers first).

    Only containers that ask for a GPU are listed. The pod's effective demand
    follows Kubernetes' rule for pod resources. Init containers run one at a
    time, each to completion, before the app containers start; sidecars (init
    containers with ``restartPolicy: Always``) start in order and keep running::

        app_phase  = sum(app) + sum(all sidecars)
        init_peak  = max over plain init containers i of
                     (init_i + sum(sidecars declared before i))
        effective  = max(app_phase, init_peak)

    Without sidecars this is ``max(max(init), sum(app))``. The sum is over the
    chosen measure: vGPU count (:attr:`total_vgpus`) or memory on a card size
    (:meth:`memory_on`).
    """

    containers: tuple[ContainerVGPU, ...] = ()

    @property
    def is_gpu_pod(self) -> bool:
        return bool(self.containers)

    @property
    def app(self) -> tuple[ContainerVGPU, ...]:
        return tuple(c for c in self.containers if not c.init)

    @property
    def init(self) -> tuple[ContainerVGPU, ...]:
        """Init containers that ask for GPUs, sidecars included, in spec order."""
        return tuple(c for c in self.containers if c.init)

    def effective(self, measure: Callable[[VGPURequest], int]) -> int:
        """The pod's demand by ``measure`` (see the class docstring for the formula)."""
        sidecars_so_far = 0
        init_peak = 0
        for c in self.init:
            value = measure(c.request)
            if c.sidecar:
                sidecars_so_far += value
            else:
                init_peak = max(init_peak, sidecars_so_far + value)
        app_phase = sidecars_so_far + sum(measure(c.request) for c in self.app)
        return max(app_phase, init_peak)

    @property
    def total_vgpus(self) -> int:
        """vGPUs the pod holds at its peak."""
        return self.effective(lambda r: r.count)

    def memory_on(self, card_mib: int) -> int:
        """MiB the pod holds at its peak on cards of ``card_mib`` MiB each."""
        return self.effective(lambda r: r.count * r.memory_on(card_mib))

    @property
    def min_cards(self) -> int:
        """Cards a node needs at least: one container's vGPUs are all on different cards."""
        return max((c.request.count for c in self.containers), default=0)


@dataclass(frozen=True, slots=True)
class CanonicalRead:
    """A canonical request as read, with what was assumed: the normalizer warns of it."""

    request: VGPURequest | None
    count_defaulted: bool = False
    present: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    """``key=value`` as written, for messages."""


def parse_canonical(
    container: str,
    limits: Mapping[str, Any],
    requests: Mapping[str, Any],
    names: ResourceNames,
    max_count: int = rules.DEFAULT_MAX_VGPUS,
) -> CanonicalRead:
    """Read and validate one container's request written in ``names``.

    Rules (each violation is a :class:`~spotpack.errors.InvalidGPURequest`):

    - values are non-negative whole numbers, requests equal to limits;
    - memory and percentage together are rejected; cores alone (no count, no
      memory) are rejected;
    - memory or percentage without a count means one vGPU (HAMi's
      ``defaultGPUNum`` is 1): ``count_defaulted`` says so;
    - every key present being 0 (``nvidia.com/gpu: 0``) asks for no GPU:
      ``request`` is None, which is not an error;
    - ranges as in :mod:`spotpack.vgpu.rules`.
    """
    count_k, mem_k, pct_k, cores_k = names.keys
    values = {k: v for k in names.keys if (v := rules.side_value(container, limits, requests, k))}
    present = tuple(values)
    shown = tuple(f"{k}={raw}" for k, (raw, _) in values.items())
    if not values:
        return CanonicalRead(None)
    if all(v[1] == 0 for v in values.values()):
        return CanonicalRead(None, present=present, shown=shown)
    rules.check_shape(
        container,
        fields=names.keys,
        has_count=count_k in values,
        has_mem=mem_k in values,
        has_pct=pct_k in values,
        has_cores=cores_k in values,
    )
    defaulted = count_k not in values
    count = 1
    if not defaulted:
        count = rules.check_count(container, count_k, *values[count_k], max_count)
    mem = rules.check_mem_mib(container, mem_k, *values[mem_k]) if mem_k in values else None
    pct = rules.check_percent(container, pct_k, *values[pct_k]) if pct_k in values else None
    cores = rules.check_cores(container, cores_k, *values[cores_k]) if cores_k in values else None
    request = VGPURequest(count=count, mem_mib=mem, mem_percent=pct, cores=cores)
    return CanonicalRead(request, count_defaulted=defaulted, present=present, shown=shown)


_NOTHING: Mapping[str, Any] = MappingProxyType({})


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (a plain dict is checked first: fast)."""
    if type(value) is dict:
        return value
    if value is None or not isinstance(value, Mapping):
        return _NOTHING
    return value


def iter_containers(pod: Mapping[str, Any]) -> Iterator[tuple[bool, int, Mapping[str, Any]]]:
    """``(is_init, index, container)`` for init containers, then app containers.

    Entries that are not mappings are skipped (the API server never sends them;
    a malformed test document should not crash us).
    """
    spec = as_mapping(pod.get("spec"))
    for init, key in ((True, "initContainers"), (False, "containers")):
        items = spec.get(key)
        if not isinstance(items, list):
            continue
        for index, container in enumerate(items):
            if isinstance(container, Mapping):
                yield init, index, container


def container_name(container: Mapping[str, Any], init: bool, index: int) -> str:
    name = container.get("name")
    if isinstance(name, str) and name:
        return name
    return f"{'initContainers' if init else 'containers'}[{index}]"


def resource_maps(container: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(limits, requests)`` of a container; empty mappings when absent."""
    resources = as_mapping(container.get("resources"))
    return as_mapping(resources.get("limits")), as_mapping(resources.get("requests"))


def read_demand(
    pod: Mapping[str, Any],
    names: ResourceNames = DEFAULT_NAMES,
    *,
    max_vgpus: int = rules.DEFAULT_MAX_VGPUS,
) -> PodGPUDemand:
    """Read the canonical vGPU requests of a pod dict (camelCase, as the API serves it).

    Limits win; requests are read when limits lack the key; both present and
    different is a :class:`~spotpack.errors.InvalidGPURequest`, as is any request the
    normalizer would reject. Memory without a count reads as one vGPU, as HAMi
    does. Dialects other than the canonical one are not read here: the webhook
    translates them at admission.
    """
    found: list[ContainerVGPU] = []
    for init, index, container in iter_containers(pod):
        limits, requests = resource_maps(container)
        if not limits and not requests:
            continue
        name = container_name(container, init, index)
        read = parse_canonical(name, limits, requests, names, max_vgpus)
        if read.request is None:
            continue
        sidecar = init and container.get("restartPolicy") == "Always"
        found.append(ContainerVGPU(name, read.request, init=init, sidecar=sidecar))
    return PodGPUDemand(tuple(found))


__all__ = [
    "DEFAULT_NAMES",
    "CanonicalRead",
    "ContainerVGPU",
    "PodGPUDemand",
    "ResourceNames",
    "VGPURequest",
    "as_mapping",
    "container_name",
    "iter_containers",
    "parse_canonical",
    "read_demand",
    "resource_maps",
]
