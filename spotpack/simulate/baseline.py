"""The baseline: the same live pods, all on-demand, whole GPUs, no binpacking.

What a cluster without spotpack would run for the pods the workloads have at
a sample (bound or still pending), computed pod by pod:

- **no binpacking**: every pod gets a node of its own;
- **all on-demand**: that node is the cheapest *on-demand* type of the region
  (catalog list price; of the architectures the provisioner buys, amd64 by
  default as ``SPOTPACK_PROVISIONER_ARCHITECTURES``) with ``vcpu * 1000 >= cpu_m`` and
  ``memory_mib >= mem_mib`` (the catalog's raw figures, not allocatable: a
  choice in the baseline's favour);
- **whole GPUs**: a GPU pod's vGPU slices are each rounded up to one whole
  card, so its node needs ``gpu.count >= vgpus`` cards of at least the
  per-slice memory (``gpu_mem_mib / vgpus``); pods without GPUs get types
  without GPUs.

Utilization of the baseline: the pod's own GPU memory and cores (the same
figures as spotpack's side) over the cards of its node, ``count * mem_mib``
and ``count * 100``; a pod that asked for whole cards without a memory figure
uses its cards' full memory. A pod no type can hold raises
:class:`BaselineError` rather than being priced at zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from spotpack.catalog.model import Catalog, InstanceType
from spotpack.errors import InvalidInput, SpotpackError
from spotpack.provisioning.demand import pod_resources
from spotpack.simulate.observe import PodSample, Sample
from spotpack.simulate.scenario import Scenario
from spotpack.simulate.workloads import pod_manifest
from spotpack.vgpu.model import read_demand

FULL_CORES = 100


class BaselineError(SpotpackError):
    """No on-demand type in the catalog can hold a pod alone."""


@dataclass(frozen=True, slots=True)
class BaselineNode:
    """The node a pod gets in the baseline."""

    instance_type: str
    price: float
    cards: int = 0
    card_mem_mib: int = 0


@dataclass(frozen=True, slots=True)
class BaselinePoint:
    """The baseline at one sample: $/h and GPU memory/cores allocated over capacity."""

    t: float
    cost_per_hour: float
    gpu_mem_alloc: int
    gpu_mem_total: int
    gpu_cores_alloc: int
    gpu_cores_total: int
    nodes: int


Chooser = Callable[[int, int, int, int], BaselineNode]
"""(cpu_m, mem_mib, cards, MiB per card) -> the node."""


DEFAULT_ARCHITECTURES = frozenset({"amd64"})
"""What the provisioner buys by default: the baseline compares like with like."""


def chooser(
    catalog: Catalog, region: str, architectures: frozenset[str] = DEFAULT_ARCHITECTURES
) -> Chooser:
    """The baseline node for a pod's shape, memoized (shapes repeat across samples)."""
    types = [
        t for t in catalog.types(region) if t.on_demand.get(region) and t.arch in architectures
    ]

    @lru_cache(maxsize=4096)
    def choose(cpu_m: int, mem_mib: int, cards: int, card_mem: int) -> BaselineNode:
        fits = [t for t in types if _fits(t, cpu_m, mem_mib, cards, card_mem)]
        if not fits:
            need = f"{cpu_m / 1000:g} CPU, {mem_mib} MiB memory" + (
                f", {cards} whole GPU(s) of {card_mem} MiB" if cards else ""
            )
            raise BaselineError(f"no on-demand type in {region} holds a pod of {need}")
        best = min(fits, key=lambda t: (t.on_demand[region], t.name))
        gpu = best.gpu
        return BaselineNode(
            best.name,
            best.on_demand[region],
            gpu.count if gpu and cards else 0,
            gpu.mem_mib if gpu and cards else 0,
        )

    return choose


def _fits(t: InstanceType, cpu_m: int, mem_mib: int, cards: int, card_mem: int) -> bool:
    if t.vcpu * 1000 < cpu_m or t.memory_mib < mem_mib:
        return False
    if cards == 0:
        return t.gpu is None
    return t.gpu is not None and t.gpu.count >= cards and t.gpu.mem_mib >= card_mem


def node_for(pod: PodSample, choose: Chooser) -> BaselineNode:
    """The node of one pod: whole cards for its slices, memory per slice as it asked."""
    if pod.vgpus <= 0:
        return choose(pod.cpu_m, pod.mem_mib, 0, 0)
    per_slice = 0 if pod.whole_cards else -(-pod.gpu_mem_mib // pod.vgpus)
    return choose(pod.cpu_m, pod.mem_mib, pod.vgpus, per_slice)


def baseline_point(sample: Sample, choose: Chooser) -> BaselinePoint:
    """The baseline of one sample (see the module docstring for the rule)."""
    cost = 0.0
    mem_alloc = mem_total = cores_alloc = cores_total = 0
    for pod in sample.pods:
        node = node_for(pod, choose)
        cost += node.price
        if pod.vgpus > 0:
            card_total = node.cards * node.card_mem_mib
            mem_total += card_total
            cores_total += node.cards * FULL_CORES
            if pod.whole_cards:
                mem_alloc += pod.vgpus * node.card_mem_mib
                cores_alloc += pod.vgpus * FULL_CORES
            else:
                mem_alloc += pod.gpu_mem_mib
                cores_alloc += pod.gpu_cores
    return BaselinePoint(
        sample.t, round(cost, 9), mem_alloc, mem_total, cores_alloc, cores_total, len(sample.pods)
    )


def check_capacity(scenario: Scenario, catalog: Catalog, source: str) -> None:
    """Before anything starts: every workload's pod fits some on-demand type of the region.

    The same rule the baseline applies at each sample (:func:`node_for`), on
    the pod as the scenario writes it (before the webhook; GPUs counted when
    written in the canonical ``nvidia.com/gpu*`` resources). A pod no type can
    hold would never run and, priced at nothing, would skew the figures; it
    is one :class:`InvalidInput` line naming the workload instead.
    """
    choose = chooser(catalog, scenario.region)
    types = [t for t in catalog.types(scenario.region) if t.on_demand.get(scenario.region)]
    for index, workload in enumerate(scenario.workloads):
        pod = pod_manifest(workload, 0, scenario.name)
        res = pod_resources(pod)
        try:
            demand = read_demand(pod)
            vgpus = demand.total_vgpus
            gpu_mem = demand.effective(lambda r: r.count * (r.mem_mib or 0))
            whole = any(
                c.request.mem_mib is None and c.request.mem_percent is None for c in demand.app
            )
        except InvalidInput:
            vgpus, gpu_mem, whole = 0, 0, False  # the webhook judges these
        sample = PodSample(
            "", workload.name, None, res.cpu_m, res.mem_mib, vgpus, gpu_mem, 0, whole and vgpus > 0
        )
        try:
            node_for(sample, choose)
        except BaselineError as exc:
            largest = (
                f"largest: {max(t.vcpu for t in types)} vCPU, "
                f"{max(t.memory_mib for t in types) // 1024} GiB"
                if types
                else "none priced"
            )
            raise InvalidInput(
                f"{source}: workloads[{index}] ({workload.name}): {exc} ({largest}); fix: "
                "lower its requests, or split it into more pods"
            ) from exc


__all__ = [
    "BaselineError",
    "BaselineNode",
    "BaselinePoint",
    "baseline_point",
    "check_capacity",
    "chooser",
    "node_for",
]
