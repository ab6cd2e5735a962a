"""Nodes and pods as the provisioner's decisions see them: small frozen values read once.

The informers hand over raw dicts; every decision (what is pending, what is
empty, what may be disrupted, which node an instance is) reads these values
instead, so the rules live in one place and tests build them from plain
manifests. Reading never raises: a malformed quantity counts as zero and a
missing field as absent, because one bad object must not stop the loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spotpack.capacity import LabelScheme
from spotpack.cloud.base import CLAIM_TAG, MANAGED_LABEL
from spotpack.errors import InvalidInput
from spotpack.interruption import SPOTPACK_TAINT
from spotpack.policy import OPT_OUT
from spotpack.provisioning.demand import ARCH_LABEL, pod_resources
from spotpack.provisioning.model import Resources
from spotpack.quantity import bytes_of, cpu_millis
from spotpack.vgpu.model import as_mapping

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SPARK_ROLE = "spark-role"
SPARK_ROLES = frozenset({"driver", "executor"})
DO_NOT_DISRUPT = ("spotpack.io/do-not-disrupt", "karpenter.sh/do-not-disrupt")
"""Annotations (value ``"true"``) that keep a pod's node, or a node, from being disrupted."""
DONE_PHASES = frozenset({"Succeeded", "Failed"})
_TRUE = frozenset({"true", "yes", "1"})
MIB = 1024 * 1024


def _strings(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in as_mapping(value).items()}


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def do_not_disrupt(annotations: Mapping[str, str]) -> bool:
    return any(_truthy(annotations.get(key)) for key in DO_NOT_DISRUPT)


def parse_time(value: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod: identity, where it runs, and the facts the rules read."""

    key: str
    namespace: str
    name: str
    uid: str
    node_name: str | None
    phase: str
    deleting: bool
    daemonset: bool
    mirror: bool
    job: bool
    spark: bool
    do_not_disrupt: bool
    unschedulable: bool
    nominated: bool
    resources: Resources
    unschedulable_since: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminated(self) -> bool:
        return self.phase in DONE_PHASES

    @property
    def pending(self) -> bool:
        """Provisionable: the scheduler said Unschedulable and nothing else will place it.

        Pods being preempted for (``nominatedNodeName``), DaemonSet and mirror
        pods, finished and deleting pods are someone else's business.
        """
        return (
            self.unschedulable
            and not self.node_name
            and not self.nominated
            and not self.terminated
            and not self.deleting
            and not self.daemonset
            and not self.mirror
        )

    @property
    def runs(self) -> bool:
        """Bound and not finished: it holds room on its node."""
        return bool(self.node_name) and not self.terminated

    @property
    def infrastructure(self) -> bool:
        """DaemonSet and mirror pods run on every node by design; they never keep one alive."""
        return self.daemonset or self.mirror

    @property
    def blocks_disruption(self) -> str | None:
        """Why this running pod must not be evicted for a scale-down, or None."""
        if self.do_not_disrupt:
            return f"pod {self.key} is annotated do-not-disrupt"
        if self.job:
            return f"pod {self.key} belongs to a Job"
        if self.spark:
            return f"pod {self.key} is a Spark driver or executor"
        return None


def _owner_kinds(meta: Mapping[str, Any]) -> list[str]:
    owners = meta.get("ownerReferences")
    if not isinstance(owners, list):
        return []
    return [str(o.get("kind", "")) for o in owners if isinstance(o, Mapping)]


def _scheduled_condition(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "PodScheduled":
            return condition
    return {}


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """Read a raw Pod dict (never raises)."""
    meta = as_mapping(pod.get("metadata"))
    spec = as_mapping(pod.get("spec"))
    status = as_mapping(pod.get("status"))
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"))
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    kinds = _owner_kinds(meta)
    condition = _scheduled_condition(status)
    unschedulable = (
        condition.get("status") == "False" and condition.get("reason") == "Unschedulable"
    )
    try:
        resources = pod_resources(pod)
    except InvalidInput:
        resources = Resources(0, 0, 1)
    node = spec.get("nodeName")
    return PodInfo(
        key=f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        node_name=str(node) if node else None,
        phase=str(status.get("phase") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        daemonset="DaemonSet" in kinds,
        mirror=MIRROR_ANNOTATION in annotations,
        job="Job" in kinds,
        spark=labels.get(SPARK_ROLE, "").lower() in SPARK_ROLES,
        do_not_disrupt=do_not_disrupt(annotations),
        unschedulable=unschedulable,
        nominated=bool(status.get("nominatedNodeName")),
        resources=resources,
        unschedulable_since=parse_time(condition.get("lastTransitionTime"))
        if unschedulable
        else None,
        raw=pod,
    )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node: identity, what it is (type, zone, capacity type), its state and protections."""

    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    unschedulable: bool
    ready: bool
    allocatable: Resources
    provider_id: str
    instance_id: str
    claim_id: str
    instance_type: str
    zone: str
    arch: str
    capacity: str
    resource_version: str = ""
    created: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def managed(self) -> bool:
        """Launched by spotpack (our label); only such nodes are ever removed."""
        return self.labels.get(MANAGED_LABEL) == "true"

    @property
    def interrupted(self) -> bool:
        return any(t.get("key") == SPOTPACK_TAINT for t in self.taints)

    @property
    def protected(self) -> str | None:
        """Why the node must never be removed by a scale-down, or None."""
        if _truthy(self.annotations.get(OPT_OUT)):
            return f"node annotated {OPT_OUT}"
        if do_not_disrupt(self.annotations):
            return "node annotated do-not-disrupt"
        return None

    @property
    def hard_tainted(self) -> bool:
        """A NoSchedule/NoExecute taint: its room is not counted (tolerations are not modelled)."""
        return any(t.get("effect") in ("NoSchedule", "NoExecute") for t in self.taints)


def instance_id_of(provider_id: str) -> str:
    """The instance id at the end of a providerID (``aws:///us-east-1a/i-0abc`` -> ``i-0abc``)."""
    if "://" not in provider_id:
        return ""
    return provider_id.rstrip("/").rsplit("/", 1)[-1]


def _allocatable(status: Mapping[str, Any]) -> Resources:
    alloc = as_mapping(status.get("allocatable"))
    try:
        cpu = cpu_millis(alloc["cpu"]) if "cpu" in alloc else 0
        mem = bytes_of(alloc["memory"]) // MIB if "memory" in alloc else 0
        pods = int(str(alloc.get("pods", "0")))
    except (InvalidInput, ValueError):
        return Resources()
    return Resources(cpu, mem, pods)


def _ready(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def node_info(node: Mapping[str, Any], scheme: LabelScheme) -> NodeInfo:
    """Read a raw Node dict (never raises)."""
    meta = as_mapping(node.get("metadata"))
    spec = as_mapping(node.get("spec"))
    status = as_mapping(node.get("status"))
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"))
    provider_id = str(spec.get("providerID") or "")
    taints = tuple(t for t in spec.get("taints") or [] if isinstance(t, Mapping))
    return NodeInfo(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        labels=labels,
        annotations=annotations,
        taints=taints,
        unschedulable=bool(spec.get("unschedulable")),
        ready=_ready(status),
        allocatable=_allocatable(status),
        provider_id=provider_id,
        instance_id=instance_id_of(provider_id),
        claim_id=annotations.get(CLAIM_TAG) or labels.get(CLAIM_TAG, ""),
        instance_type=labels.get(INSTANCE_TYPE_LABEL, ""),
        zone=labels.get(ZONE_LABEL, ""),
        arch=labels.get(ARCH_LABEL, "amd64"),
        capacity="spot" if scheme.is_spot(labels) else "on-demand",
        resource_version=str(meta.get("resourceVersion") or ""),
        created=parse_time(meta.get("creationTimestamp")),
        raw=node,
    )


class InfoCache:
    """``PodInfo``/``NodeInfo`` kept across snapshots by key and resourceVersion.

    Reading 50,000 pods afresh every tick costs seconds; between two ticks only
    the few that changed have a new resourceVersion. Used by one thread.
    """

    def __init__(self) -> None:
        self._pods: dict[str, tuple[str, PodInfo]] = {}
        self._nodes: dict[str, tuple[str, NodeInfo]] = {}

    def pod(self, raw: Mapping[str, Any]) -> PodInfo:
        meta = as_mapping(raw.get("metadata"))
        key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        rv = str(meta.get("resourceVersion") or "")
        hit = self._pods.get(key)
        if hit is not None and rv and hit[0] == rv:
            return hit[1]
        info = pod_info(raw)
        self._pods[key] = (rv, info)
        return info

    def node(self, raw: Mapping[str, Any], scheme: LabelScheme) -> NodeInfo:
        meta = as_mapping(raw.get("metadata"))
        key = str(meta.get("name") or "")
        rv = str(meta.get("resourceVersion") or "")
        hit = self._nodes.get(key)
        if hit is not None and rv and hit[0] == rv:
            return hit[1]
        info = node_info(raw, scheme)
        self._nodes[key] = (rv, info)
        return info

    def keep_only(self, pods: Iterable[str], nodes: Iterable[str]) -> None:
        """Forget objects that are gone (called with the keys of the last snapshot)."""
        live_pods, live_nodes = set(pods), set(nodes)
        if len(live_pods) < len(self._pods):
            self._pods = {k: v for k, v in self._pods.items() if k in live_pods}
        if len(live_nodes) < len(self._nodes):
            self._nodes = {k: v for k, v in self._nodes.items() if k in live_nodes}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Nodes and pods at one moment, indexed the ways the loop looks them up."""

    nodes: Mapping[str, NodeInfo]
    pods: Mapping[str, PodInfo]
    pods_by_node: Mapping[str, tuple[PodInfo, ...]]
    node_by_instance: Mapping[str, str]
    node_by_claim: Mapping[str, str]

    @classmethod
    def build(
        cls,
        nodes: Iterable[Mapping[str, Any]],
        pods: Iterable[Mapping[str, Any]],
        scheme: LabelScheme,
        cache: InfoCache | None = None,
    ) -> Snapshot:
        cache = cache if cache is not None else InfoCache()
        node_map: dict[str, NodeInfo] = {}
        by_instance: dict[str, str] = {}
        by_claim: dict[str, str] = {}
        for raw in nodes:
            info = cache.node(raw, scheme)
            if not info.name:
                continue
            node_map[info.name] = info
            if info.instance_id:
                by_instance[info.instance_id] = info.name
            if info.claim_id:
                by_claim[info.claim_id] = info.name
        pod_map: dict[str, PodInfo] = {}
        by_node: dict[str, list[PodInfo]] = {}
        for raw in pods:
            pod = cache.pod(raw)
            if not pod.name:
                continue
            pod_map[pod.key] = pod
            if pod.node_name:
                by_node.setdefault(pod.node_name, []).append(pod)
        cache.keep_only(pod_map, node_map)
        return cls(
            nodes=node_map,
            pods=pod_map,
            pods_by_node={name: tuple(found) for name, found in by_node.items()},
            node_by_instance=by_instance,
            node_by_claim=by_claim,
        )

    def on_node(self, name: str) -> tuple[PodInfo, ...]:
        return self.pods_by_node.get(name, ())

    def node_for(
        self, instance_id: str, claim_id: str = "", node_name: str | None = None
    ) -> NodeInfo | None:
        """The node an instance registered as: by providerID, claim label, then name."""
        name = self.node_by_instance.get(instance_id) or self.node_by_claim.get(claim_id)
        if name is None and node_name:
            name = node_name
        return self.nodes.get(name) if name else None


__all__ = [
    "DO_NOT_DISRUPT",
    "MIRROR_ANNOTATION",
    "InfoCache",
    "NodeInfo",
    "PodInfo",
    "Snapshot",
    "do_not_disrupt",
    "instance_id_of",
    "node_info",
    "parse_time",
    "pod_info",
]
