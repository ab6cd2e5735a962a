"""In-memory collaborators for testing the loop without an API server (like ``cloud.fake``).

- :class:`ManualClock`: epoch seconds that move only when told;
- :class:`FakeCluster`: nodes and pods as dicts, both the loop's
  :class:`~provisioner.loop.ClusterView` and its :class:`~provisioner.kubeapi.ClusterApi`,
  recording every write; evictions can be refused (a PodDisruptionBudget);
- :class:`FakeLeases`: a :class:`~provisioner.leader.LeaseApi` with
  resourceVersions and 409s, shared by several electors.

Nothing here is used by the service itself.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner.kubeapi import Conflict, Evicted
from spotpack.errors import ClusterUnavailable

Obj = dict[str, Any]


@dataclass
class ManualClock:
    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


@dataclass
class FakeCluster:
    """Nodes and pods in memory; records patches, deletions, evictions and events."""

    nodes_by_name: dict[str, Obj] = field(default_factory=dict)
    pods_by_key: dict[str, Obj] = field(default_factory=dict)
    is_synced: bool = True
    refuse: Callable[[Obj], bool] | None = None
    patches: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    deleted_nodes: list[str] = field(default_factory=list)
    evictions: list[tuple[str, str]] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    fail_events: bool = False
    _rv: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- arranging -----------------------------------------------------------------------

    def _stamp(self, obj: Obj) -> Obj:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return obj

    def add_node(self, node: Obj) -> Obj:
        with self._lock:
            stored = self._stamp(copy.deepcopy(node))
            self.nodes_by_name[stored["metadata"]["name"]] = stored
            return stored

    def add_pod(self, pod: Obj) -> Obj:
        with self._lock:
            stored = self._stamp(copy.deepcopy(pod))
            meta = stored["metadata"]
            self.pods_by_key[f"{meta.get('namespace', 'default')}/{meta['name']}"] = stored
            return stored

    def edit_node(self, name: str, edit: Callable[[Obj], None]) -> None:
        """Change a stored node in place, with a new resourceVersion (as any write has)."""
        with self._lock:
            node = self.nodes_by_name[name]
            edit(node)
            self._stamp(node)

    def remove_pod(self, key: str) -> None:
        with self._lock:
            self.pods_by_key.pop(key, None)

    def bind(self, key: str, node: str) -> None:
        with self._lock:
            pod = self.pods_by_key[key]
            pod.setdefault("spec", {})["nodeName"] = node
            pod.setdefault("status", {})["conditions"] = [
                {"type": "PodScheduled", "status": "True"}
            ]
            pod["status"]["phase"] = "Running"
            self._stamp(pod)

    # --- ClusterView ---------------------------------------------------------------------

    def nodes(self) -> list[Obj]:
        with self._lock:
            return list(self.nodes_by_name.values())

    def pods(self) -> list[Obj]:
        with self._lock:
            return list(self.pods_by_key.values())

    def synced(self) -> bool:
        return self.is_synced

    # --- ClusterApi ----------------------------------------------------------------------

    def read_node(self, name: str) -> Obj | None:
        with self._lock:
            node = self.nodes_by_name.get(name)
            return copy.deepcopy(node) if node is not None else None

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> Obj:
        with self._lock:
            node = self.nodes_by_name.get(name)
            if node is None:
                raise ClusterUnavailable(f"patch node {name}: not found")
            want = (patch.get("metadata") or {}).get("resourceVersion")
            if want and want != node["metadata"]["resourceVersion"]:
                raise Conflict(f"node {name} changed")
            self.patches.append((name, copy.deepcopy(dict(patch))))
            body = {k: v for k, v in patch.items() if k != "metadata"}
            merged = self._stamp(_merge(node, body))
            self.nodes_by_name[name] = merged
            return copy.deepcopy(merged)

    def delete_node(self, name: str) -> None:
        with self._lock:
            self.deleted_nodes.append(name)
            self.nodes_by_name.pop(name, None)

    def pods_on_node(self, name: str) -> list[Obj]:
        with self._lock:
            return [
                copy.deepcopy(p)
                for p in self.pods_by_key.values()
                if (p.get("spec") or {}).get("nodeName") == name
            ]

    def evict(self, namespace: str, name: str) -> Evicted:
        key = f"{namespace}/{name}"
        with self._lock:
            self.evictions.append((namespace, name))
            pod = self.pods_by_key.get(key)
            if pod is None:
                return Evicted.GONE
            if self.refuse is not None and self.refuse(pod):
                return Evicted.BLOCKED
            del self.pods_by_key[key]
            return Evicted.EVICTED

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        if self.fail_events:
            raise ClusterUnavailable("events refused")
        with self._lock:
            self.events.append(copy.deepcopy(dict(event)))

    def events_about(self, name: str, reason: str | None = None) -> list[Obj]:
        return [
            e
            for e in self.events
            if e["involvedObject"]["name"] == name and (reason is None or e["reason"] == reason)
        ]


@dataclass
class FakeLeases:
    """Leases with resourceVersions: a stale replace is a 409, as the API server does."""

    leases: dict[tuple[str, str], Obj] = field(default_factory=dict)
    down: bool = False
    writes: int = 0
    _rv: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _check(self) -> None:
        if self.down:
            raise ClusterUnavailable("the API server is down")

    def get(self, namespace: str, name: str) -> Obj | None:
        self._check()
        with self._lock:
            found = self.leases.get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def create(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        self._check()
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            if key in self.leases:
                raise Conflict("lease exists")
            return self._store(key, body)

    def replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> Obj:
        self._check()
        with self._lock:
            current = self.leases.get((namespace, name))
            if current is None:
                raise ClusterUnavailable("lease not found")
            want = (body.get("metadata") or {}).get("resourceVersion")
            if want != current["metadata"]["resourceVersion"]:
                raise Conflict("lease changed")
            return self._store((namespace, name), body)

    def _store(self, key: tuple[str, str], body: Mapping[str, Any]) -> Obj:
        self._rv += 1
        self.writes += 1
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        self.leases[key] = stored
        return copy.deepcopy(stored)


__all__ = ["FakeCluster", "FakeLeases", "ManualClock"]


# --- manifests -----------------------------------------------------------------------------


def pod_manifest(
    name: str,
    *,
    namespace: str = "default",
    cpu: str = "500m",
    memory: str = "512Mi",
    node: str | None = None,
    pending: bool = True,
    capacity: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: str | None = None,
    owner_uid: str = "owner-1",
    gpus: int = 0,
    phase: str | None = None,
) -> Obj:
    """A pod as the API server holds it: Unschedulable when ``pending``, else bound to ``node``."""
    notes = dict(annotations or {})
    if capacity is not None:
        notes["spotpack.io/capacity"] = capacity
    resources: Obj = {"requests": {"cpu": cpu, "memory": memory}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": dict(labels or {}),
        "annotations": notes,
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": owner,
                "name": f"{name}-owner",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    status: Obj
    if pending and node is None:
        status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available",
                    "lastTransitionTime": "2023-11-14T22:13:20Z",
                }
            ],
        }
    else:
        status = {
            "phase": phase or "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
        }
    spec: Obj = {"containers": [{"name": "main", "image": "busybox", "resources": resources}]}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def node_manifest(
    name: str,
    *,
    instance_type: str = "m5.xlarge",
    zone: str = "us-east-1a",
    capacity: str = "spot",
    cpu: str = "4",
    memory: str = "16Gi",
    managed: bool = True,
    ready: bool = True,
    instance_id: str | None = None,
    claim_id: str | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: list[Obj] | None = None,
    provider: str = "fake",
) -> Obj:
    """A registered node, ours (``spotpack.io/managed``) unless ``managed`` is False."""
    labels = {
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/zone": zone,
        "karpenter.sh/capacity-type": capacity,
        "kubernetes.io/arch": "amd64",
    }
    if managed:
        labels["spotpack.io/managed"] = "true"
    if claim_id:
        labels["spotpack.io/claim"] = claim_id
    spec: Obj = {"taints": list(taints or [])}
    if instance_id:
        spec["providerID"] = f"{provider}:///{zone}/{instance_id}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"uid-node-{name}",
            "labels": labels,
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


# --- a controller wired to fakes -----------------------------------------------------------


@dataclass
class Harness:
    """A :class:`~provisioner.loop.Controller` on fakes, with a hand-moved clock."""

    clock: ManualClock
    cluster: FakeCluster
    cloud: Any
    controller: Any
    leader: list[bool]
    notices: Any

    def register(self, instance_id: str, *, ready: bool = True, **kwargs: Any) -> Obj:
        """The instance's node appears, as its kubelet would register it."""
        instance = self.cloud.instances[instance_id]
        return self.cluster.add_node(
            node_manifest(
                instance.node_name,
                instance_type=instance.instance_type,
                zone=instance.zone,
                capacity=instance.capacity,
                instance_id=instance_id,
                claim_id=instance.claim_id,
                ready=ready,
                **kwargs,
            )
        )

    def tick(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.controller.tick()

    def launches(self) -> list[Any]:
        return list(self.cloud.calls_to("launch"))

    def live(self) -> list[Any]:
        return [i for i in self.cloud.instances.values() if i.state in ("pending", "running")]


def harness(
    *,
    offerings: Any = None,
    zones: tuple[str, ...] = ("us-east-1a", "us-east-1b"),
    leader: bool = True,
    clock: ManualClock | None = None,
    cluster: FakeCluster | None = None,
    cloud: Any = None,
    **config: Any,
) -> Harness:
    """A controller on a :class:`FakeCluster` and a ``FakeCloud``; ``config`` -> LoopConfig.

    Pass another harness' ``clock``, ``cluster`` and ``cloud`` to start a second
    controller on the same world: a restart (empty claim book) or another replica.
    """
    from datetime import UTC, datetime

    from provisioner.batcher import Batcher
    from provisioner.capacity import Facts
    from provisioner.events import EventRecorder
    from provisioner.loop import Collaborators, Controller, LoopConfig
    from provisioner.metrics import create_metrics
    from spotpack.capacity import SCHEMES
    from spotpack.catalog import load_catalog
    from spotpack.cloud.base import OfferingCache
    from spotpack.cloud.fake import FakeCloud, FakeNotices

    clock = clock if clock is not None else ManualClock()
    cluster = cluster if cluster is not None else FakeCluster()
    now = clock
    if cloud is None:
        cloud = FakeCloud(clock=lambda: datetime.fromtimestamp(now.now, UTC))
    notices = FakeNotices(clock=lambda: datetime.fromtimestamp(now.now, UTC))
    facts = Facts.from_catalog(load_catalog(), "us-east-1", zones)
    if offerings is not None:
        facts = Facts(offerings, facts.gpu_spec)
    state = [leader]
    config.setdefault("labels", {"spotpack.io/managed": "true"})
    config.setdefault("scan_interval", 0.0)
    controller = Controller(
        LoopConfig(**config),
        Collaborators(
            view=cluster,
            api=cluster,
            provider=cloud,
            facts=facts,
            scheme=SCHEMES["karpenter"],
            metrics=create_metrics(),
            events=EventRecorder(cluster, clock=clock),
            cache=OfferingCache(180.0, clock=clock),
            is_leader=lambda: state[0],
            notices=notices,
            known_zones=zones,
        ),
        batcher=Batcher(1.0, 10.0, clock=clock),
        clock=clock,
    )
    return Harness(clock, cluster, cloud, controller, state, notices)
