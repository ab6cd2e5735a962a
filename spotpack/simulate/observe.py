"""What the simulator samples each step: nodes and pods as small values, read from raw dicts.

Every figure of the report is computed from these samples, so they hold what
the figures need and nothing else: a node's type, zone, capacity type and
cards; a pod's workload, node, CPU/memory requests and GPU share. A pod's GPU
share is what the extender recorded at bind (``spotpack.io/gpu-assignment``,
per card MiB and cores) when it is bound, else what its normalized requests
ask for. A node's odd field reads as nothing (a node without readable cards
counts as having none), because one odd node must not end a run. A pod of
ours whose requests do not parse raises :class:`~spotpack.errors.InvalidInput`
instead: read as zero, it would be priced at nothing in both the run and the
baseline, and the figures would be wrong without saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spotpack.errors import InvalidInput
from spotpack.gpu.inventory import HAMI_REGISTER, parse_hami_register
from spotpack.gpu.usage import assignment_of_pod
from spotpack.interruption import SPOTPACK_TAINT
from spotpack.provisioning.demand import pod_resources
from spotpack.vgpu.model import as_mapping, read_demand

WORKLOAD_LABEL = "sim.spotpack.io/workload"
"""Label the simulator puts on every pod it creates: which scenario workload owns it."""

CAPACITY_LABEL = "karpenter.sh/capacity-type"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class NodeSample:
    """One node: what it costs (type, zone, capacity) and its GPU capacity (MiB, core %)."""

    name: str
    instance_type: str
    zone: str
    capacity: str
    cards: int = 0
    gpu_mem_mib: int = 0
    gpu_cores: int = 0
    interrupted: bool = False

    @property
    def spot(self) -> bool:
        return self.capacity == "spot"


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod of a workload: where it is and what it holds.

    ``vgpus`` slices with ``gpu_mem_mib``/``gpu_cores`` in total; ``whole_cards``
    when the pod asked for cards without a memory figure (it owns them whole).
    """

    key: str
    workload: str
    node: str | None
    cpu_m: int = 0
    mem_mib: int = 0
    vgpus: int = 0
    gpu_mem_mib: int = 0
    gpu_cores: int = 0
    whole_cards: bool = False

    @property
    def bound(self) -> bool:
        return self.node is not None


@dataclass(frozen=True, slots=True)
class Sample:
    """The cluster at simulated second ``t``; ``desired`` replicas per workload then."""

    t: float
    nodes: tuple[NodeSample, ...]
    pods: tuple[PodSample, ...]
    desired: Mapping[str, int] = field(default_factory=dict)


def _meta(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], str]:
    meta = as_mapping(obj.get("metadata"))
    return (
        as_mapping(meta.get("labels")),
        as_mapping(meta.get("annotations")),
        str(meta.get("name") or ""),
    )


def node_sample(node: Mapping[str, Any]) -> NodeSample:
    """Read a Node dict; its cards from HAMi's registration annotation (none: no GPUs)."""
    labels, annotations, name = _meta(node)
    cards: tuple[Any, ...] = ()
    raw = annotations.get(HAMI_REGISTER)
    if raw is not None:
        try:
            cards = parse_hami_register(raw)
        except ValueError:
            cards = ()
    taints = as_mapping(node.get("spec")).get("taints")
    interrupted = isinstance(taints, list) and any(
        isinstance(t, Mapping) and t.get("key") == SPOTPACK_TAINT for t in taints
    )
    return NodeSample(
        name=name,
        instance_type=str(labels.get(INSTANCE_TYPE_LABEL, "")),
        zone=str(labels.get(ZONE_LABEL, "")),
        capacity=str(labels.get(CAPACITY_LABEL, "on-demand")),
        cards=len(cards),
        gpu_mem_mib=sum(c.mem_mib for c in cards),
        gpu_cores=sum(c.cores for c in cards),
        interrupted=interrupted,
    )


def _gpu_share(pod: Mapping[str, Any]) -> tuple[int, int, int, bool]:
    """(vGPUs, MiB, core %, whole cards) of a pod: its assignment if bound, else its requests.

    Requests that do not parse raise :class:`InvalidInput`; an assignment that
    does not parse falls back to the requests.
    """
    demand = read_demand(pod)
    whole = any(c.request.mem_mib is None and c.request.mem_percent is None for c in demand.app)
    try:
        assignment = assignment_of_pod(pod) if as_mapping(pod.get("spec")).get("nodeName") else None
    except InvalidInput:
        assignment = None
    if assignment is not None and not assignment.is_empty:
        grants = list(assignment.grants())
        return len(grants), sum(g.mem_mib for g in grants), sum(g.cores for g in grants), whole
    vgpus = demand.total_vgpus
    mem = demand.effective(lambda r: r.count * (r.mem_mib or 0))
    cores = demand.effective(lambda r: r.count * (r.cores or 0))
    return vgpus, mem, cores, whole


def pod_sample(pod: Mapping[str, Any]) -> PodSample | None:
    """Read a Pod dict of ours (with :data:`WORKLOAD_LABEL`); None for anyone else's or done.

    Raises :class:`InvalidInput` naming the pod when its requests do not parse.
    """
    labels, _, name = _meta(pod)
    workload = labels.get(WORKLOAD_LABEL)
    meta = as_mapping(pod.get("metadata"))
    phase = as_mapping(pod.get("status")).get("phase")
    if not workload or meta.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
        return None
    try:
        res = pod_resources(pod)
        vgpus, gpu_mem, gpu_cores, whole = _gpu_share(pod)
    except InvalidInput as exc:
        key = f"{meta.get('namespace') or ''}/{name}"
        raise InvalidInput(f"pod {key}: cannot read its requests: {exc}") from exc
    cpu, mem = res.cpu_m, res.mem_mib
    node = as_mapping(pod.get("spec")).get("nodeName")
    return PodSample(
        key=f"{meta.get('namespace') or ''}/{name}",
        workload=str(workload),
        node=str(node) if node else None,
        cpu_m=cpu,
        mem_mib=mem,
        vgpus=vgpus,
        gpu_mem_mib=gpu_mem,
        gpu_cores=gpu_cores,
        whole_cards=whole and vgpus > 0,
    )


def take_sample(
    t: float,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    desired: Mapping[str, int],
) -> Sample:
    """One sample from raw lists, sorted by name so that equal clusters give equal samples."""
    node_samples = sorted((node_sample(n) for n in nodes), key=lambda n: n.name)
    pod_samples = sorted(
        (p for p in (pod_sample(raw) for raw in pods) if p is not None), key=lambda p: p.key
    )
    return Sample(t, tuple(node_samples), tuple(pod_samples), dict(desired))


__all__ = [
    "WORKLOAD_LABEL",
    "NodeSample",
    "PodSample",
    "Sample",
    "node_sample",
    "pod_sample",
    "take_sample",
]
