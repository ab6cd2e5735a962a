"""Offerings from the catalog: every instance type x zone x capacity type, with allocatable.

What a pod can request on a new node is less than the instance's size. We
follow EKS's kubelet defaults (the ones Karpenter also assumes), simplified::

    max_pods     = min(110, 15 * vcpu - 1)
                   (close to EKS's ENI limits of the common Nitro sizes,
                    large 29 and xlarge 58; capped at kubelet's default 110)
    memory       = mem_mib - ceil(mem_mib * 0.075)
                   (Karpenter's VM memory overhead: the OS sees ~7.5% less)
    kube cpu     = 6% of the first core + 1% of the second + 0.5% of cores 3-4
                   + 0.25% of every core above 4            (millicores, rounded up)
    kube memory  = 255 MiB + 11 MiB * max_pods
    eviction     = 100 MiB                                   (memory.available hard)
    allocatable  = capacity - kube reserve - eviction - daemonset overhead

so an m5.xlarge (4 vCPU, 16 GiB) offers 3920m, 14,151 MiB and 59 pods before
daemonsets. ``overhead`` is what the cluster's daemonsets request on
every node (its ``pods`` is how many daemonset pods there are). GPU nodes run
more daemonsets (device plugin, DCGM exporter); pass ``gpu_overhead`` for them.

Spot figures come from the catalog with their ``source`` (mostly estimates in
the packaged data); a type without a spot figure in a zone (or its region) has
no spot offering there, a type without an on-demand price no on-demand one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from spotpack.catalog.model import Catalog, InstanceType
from spotpack.catalog.vgpu import DEFAULT_SPLIT, vgpu_capacity
from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs
from spotpack.gpu.usage import NodeUsage
from spotpack.provisioning.model import (
    ON_DEMAND,
    SPOT,
    ZERO,
    CapacityType,
    NodeCapacity,
    Offering,
    Resources,
)

MAX_PODS_CAP = 110
VM_MEMORY_OVERHEAD = 0.075
EVICTION_MIB = 100


def max_pods(vcpu: int) -> int:
    """Pods a node of ``vcpu`` cores takes (see the module docstring)."""
    return max(1, min(MAX_PODS_CAP, 15 * vcpu - 1))


def kube_reserved_cpu_m(vcpu: int) -> int:
    """kubelet's CPU reserve in millicores: 6% / 1% / 0.5% x2 / 0.25% per extra core."""
    tenths = 0  # in units of 0.1 millicore, to stay exact
    for core in range(1, vcpu + 1):
        if core == 1:
            tenths += 600
        elif core == 2:
            tenths += 100
        elif core <= 4:
            tenths += 50
        else:
            tenths += 25
    return math.ceil(tenths / 10)


def kube_reserved_mem_mib(pods: int) -> int:
    """kubelet's memory reserve: 255 MiB + 11 MiB per pod."""
    return 255 + 11 * pods


def allocatable(vcpu: int, mem_mib: int, overhead: Resources = ZERO) -> Resources:
    """What pods can request on a new node of this size (see the module docstring)."""
    pods = max_pods(vcpu)
    memory = mem_mib - math.ceil(mem_mib * VM_MEMORY_OVERHEAD)
    alloc = Resources(
        vcpu * 1000 - kube_reserved_cpu_m(vcpu),
        memory - kube_reserved_mem_mib(pods) - EVICTION_MIB,
        pods,
    )
    left = alloc - overhead
    return Resources(max(left.cpu_m, 0), max(left.mem_mib, 0), max(left.pods, 0))


def offerings_from_catalog(
    catalog: Catalog,
    region: str | None = None,
    zones: Iterable[str] | None = None,
    *,
    overhead: Resources = ZERO,
    gpu_overhead: Resources | None = None,
    split: int = DEFAULT_SPLIT,
    types: Iterable[str] | None = None,
    arches: Iterable[str] | None = None,
) -> list[Offering]:
    """One offering per type x zone x capacity type the catalog prices, sorted by price.

    ``zones`` default to the region's zones in the catalog; ``types`` restricts
    the instance types (for a NodePool's allow-list), ``arches`` their CPU
    architectures (the nodes the cloud can boot: one image per architecture).
    Types whose allocatable is empty after the overhead are left out: nothing
    could run on them.
    """
    region = region or catalog.region
    zone_list = sorted(zones) if zones is not None else sorted(catalog.regions.get(region, ()))
    allowed = None if types is None else frozenset(types)
    allowed_arches = None if arches is None else frozenset(arches)
    out: list[Offering] = []
    for itype in catalog.types(region):
        if allowed is not None and itype.name not in allowed:
            continue
        if allowed_arches is not None and itype.arch not in allowed_arches:
            continue
        extra = gpu_overhead if (itype.gpu is not None and gpu_overhead is not None) else overhead
        alloc = allocatable(itype.vcpu, itype.memory_mib, extra)
        if alloc.cpu_m <= 0 or alloc.mem_mib <= 0 or alloc.pods <= 0:
            continue
        vgpu = vgpu_capacity(itype, split)
        slots = vgpu.split if vgpu is not None else 0
        for zone in zone_list:
            out.extend(
                _offerings_in_zone(
                    catalog, itype=itype, region=region, zone=zone, alloc=alloc, slots=slots
                )
            )
    out.sort(key=lambda o: o.sort_key)
    return out


def _offerings_in_zone(
    catalog: Catalog,
    *,
    itype: InstanceType,
    region: str,
    zone: str,
    alloc: Resources,
    slots: int,
) -> list[Offering]:
    found: list[Offering] = []
    od = catalog.on_demand_price(itype.name, region)
    if od is not None and ON_DEMAND in itype.usage_classes:
        found.append(
            _offering(
                itype,
                zone=zone,
                alloc=alloc,
                slots=slots,
                capacity=ON_DEMAND,
                price=od,
                rate=0.0,
                source="list",
                bucket=None,
            )
        )
    offer = catalog.spot_offer(itype.name, zone)
    if offer is not None:
        rate = offer.interruption_rate
        found.append(
            _offering(
                itype,
                zone=zone,
                alloc=alloc,
                slots=slots,
                capacity=SPOT,
                price=offer.price,
                rate=rate,
                source=offer.source,
                bucket=offer.bucket,
            )
        )
    return found


def _offering(
    itype: InstanceType,
    *,
    zone: str,
    alloc: Resources,
    slots: int,
    capacity: CapacityType,
    price: float,
    rate: float,
    source: str,
    bucket: int | None,
) -> Offering:
    return Offering(
        instance_type=itype.name,
        zone=zone,
        capacity=capacity,
        price_per_hour=price,
        interruption_rate=rate,
        vcpu=itype.vcpu,
        mem_mib=itype.memory_mib,
        arch=itype.arch,
        gpu=itype.gpu,
        allocatable=alloc,
        vgpu_slots_per_card=slots,
        source=source,
        bucket=bucket,
    )


def arch_refusal(arch: frozenset[str] | None, allowed: Iterable[str]) -> str | None:
    """Why a pod pinned to ``arch`` gets no new node when only ``allowed`` may launch, or None.

    A pod that pins no architecture (None) takes any allowed one; a pod pinned
    to some of them keeps only those (the offerings have no others).
    """
    permitted = frozenset(allowed)
    if arch is None or arch & permitted:
        return None
    asked = "/".join(sorted(arch)) or "no architecture"
    return f"asks kubernetes.io/arch {asked}; new nodes may be {'/'.join(sorted(permitted))}"


def offering_gpus(offering: Offering, node: str = "new") -> NodeGPUs | None:
    """The cards a new node of ``offering`` registers (HAMi split as slots); None without GPUs."""
    spec = offering.gpu
    if spec is None or spec.count <= 0:
        return None
    slots = max(offering.vgpu_slots_per_card, 1)
    cards = tuple(
        Card(uuid=f"{node}/gpu{i}", index=i, mem_mib=spec.mem_mib, slots=slots, model=spec.model)
        for i in range(spec.count)
    )
    return NodeGPUs(cards, InventorySource.CATALOG)


def in_flight_node(name: str, offering: Offering) -> NodeCapacity:
    """An in-flight claim as capacity: the offering's allocatable, all of it free."""
    gpus = offering_gpus(offering, name)
    return NodeCapacity(
        name=name,
        instance_type=offering.instance_type,
        zone=offering.zone,
        capacity=offering.capacity,
        arch=offering.arch,
        free=offering.allocatable,
        gpus=gpus,
        usage=NodeUsage(gpus) if gpus is not None else None,
        in_flight=True,
        price_per_hour=offering.price_per_hour,
    )


__all__ = [
    "EVICTION_MIB",
    "MAX_PODS_CAP",
    "VM_MEMORY_OVERHEAD",
    "allocatable",
    "arch_refusal",
    "in_flight_node",
    "kube_reserved_cpu_m",
    "kube_reserved_mem_mib",
    "max_pods",
    "offering_gpus",
    "offerings_from_catalog",
]
