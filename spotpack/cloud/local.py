"""A cloud that "launches" by registering a Node object: the provisioner without a cloud.

Like kwok, there is no machine: ``launch`` writes a Node that looks like the
one the instance would register (instance-type, zone, capacity-type and arch
labels, capacity from the catalog, ``Ready=True``), so the scheduler, the
extender and the provisioner's whole loop run against the dev cluster or a
kwok cluster with nothing else. GPU types get ``nvidia.com/gpu = cards x
split`` and HAMi's ``hami.io/node-nvidia-register`` annotation with synthetic
card UUIDs, exactly what HAMi's device plugin would publish, so vGPU packing
is exercised too. Nodes carry kwok's ``kwok.x-k8s.io/node: fake`` annotation,
so a real kwok controller adopts them and keeps them Ready.

The Node is the instance: ``find`` and ``list_owned`` read nodes by label,
``terminate`` deletes them. Instance ids are ``local-<claim>``. With a
``registration_delay`` the instance is *pending* for that long (by the
injected clock) and its Node is written when a timer fires after that delay
(a booting kubelet registers on its own), or on the first call after it
(:meth:`LocalProvider.tick`, or any other method), which is how a slow
kubelet looks to the loop. Pending launches live in memory only.

Nodes are written through :class:`NodeApi`, three calls; :class:`KubeNodeApi`
does them with the kubernetes client over HTTP (dev cluster, kwok, any
cluster) and :class:`StoreNodeApi` straight into a dev cluster's store.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from spotpack.catalog.model import Catalog, InstanceType
from spotpack.catalog.vgpu import DEFAULT_SPLIT
from spotpack.cloud.base import (
    CLAIM_TAG,
    MANAGED_LABEL,
    Instance,
    LaunchRefused,
    LaunchRequest,
    label_value,
)
from spotpack.errors import CloudError

log = logging.getLogger(__name__)

Obj = dict[str, Any]

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
HOSTNAME_LABEL = "kubernetes.io/hostname"
INSTANCE_ID_ANNOTATION = "spotpack.io/instance-id"
LAUNCHED_AT_ANNOTATION = "spotpack.io/launched-at"
HAMI_REGISTER = "hami.io/node-nvidia-register"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
MAX_PODS = 110
"""The kubelet's default ``maxPods``."""

_CARD_NAMESPACE = uuid.UUID("6f1c3b2e-8d4a-4f1e-9a57-2b1d0c9e7a41")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- node writes -----------------------------------------------------------------------------


class NodeApi(Protocol):
    """The three node operations the local provider needs."""

    def create_node(self, node: Obj) -> Obj: ...

    def delete_node(self, name: str) -> None:
        """Delete; a node that does not exist is not an error."""
        ...

    def list_nodes(self, label_selector: str) -> list[Obj]: ...


class NodeExists(CloudError):  # noqa: N818
    """A node of that name exists already (a race with another launch of the claim)."""


class KubeNodeApi:
    """:class:`NodeApi` over the kubernetes client (``CoreV1Api``), plain dicts in and out."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._timeout = timeout

    def create_node(self, node: Obj) -> Obj:
        raw = self._call("create", self._core.create_node, body=node)
        created: Obj = orjson.loads(raw)
        return created

    def delete_node(self, name: str) -> None:
        self._call("delete", self._core.delete_node, name, missing_ok=True)

    def list_nodes(self, label_selector: str) -> list[Obj]:
        raw = self._call("list", self._core.list_node, label_selector=label_selector)
        items = orjson.loads(raw).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def _call(
        self, verb: str, method: Callable[..., Any], *args: Any, missing_ok: bool = False, **kw: Any
    ) -> bytes:
        from kubernetes.client.exceptions import ApiException

        try:
            response = method(*args, **kw, _preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return b"{}"
            if exc.status == 409:
                raise NodeExists(f"node {verb}: already exists", code="AlreadyExists") from exc
            retryable = exc.status in (429, 500, 502, 503, 504)
            raise CloudError(
                f"node {verb} refused ({exc.status}): {exc.reason}",
                code=str(exc.status),
                retryable=retryable,
            ) from exc
        except OSError as exc:  # urllib3's errors are OSErrors too
            raise CloudError(
                f"node {verb}: cannot reach the API server ({exc})",
                code="ConnectionError",
                retryable=True,
            ) from exc
        try:
            data: bytes = response.data
        finally:
            response.release_conn()
        return data


class StoreNodeApi:
    """:class:`NodeApi` straight over a dev cluster ``Store`` (no HTTP)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def create_node(self, node: Obj) -> Obj:
        from spotpack.devcluster.errors import ApiError

        try:
            created: Obj = self._store.create("nodes", node)
        except ApiError as exc:
            if exc.code == 409:
                raise NodeExists(f"node create: {exc}", code="AlreadyExists") from exc
            raise CloudError(f"node create: {exc}", code=str(exc.code)) from exc
        return created

    def delete_node(self, name: str) -> None:
        from spotpack.devcluster.errors import ApiError

        try:
            self._store.delete("nodes", name)
        except ApiError as exc:
            if exc.code != 404:
                raise CloudError(f"node delete: {exc}", code=str(exc.code)) from exc

    def list_nodes(self, label_selector: str) -> list[Obj]:
        from spotpack.devcluster.selectors import parse_label_selector

        items, _ = self._store.list("nodes", selector=parse_label_selector(label_selector))
        return list(items)


def node_api_for(target: Any) -> NodeApi:
    """A :class:`NodeApi` for a NodeApi, a kubernetes ``ApiClient`` or a dev cluster ``Store``."""
    if all(hasattr(target, m) for m in ("create_node", "delete_node", "list_nodes")):
        api: NodeApi = target
        return api
    if hasattr(target, "call_api"):
        return KubeNodeApi(target)
    if all(hasattr(target, m) for m in ("create", "delete", "list", "snapshot")):
        return StoreNodeApi(target)
    raise TypeError(f"cannot write nodes through a {type(target).__name__}")


# --- the node manifest (pure) ----------------------------------------------------------------


def node_name_for(instance_id: str) -> str:
    """A DNS label (<= 63, lower case) for the instance: its id when that is one already."""
    cleaned = _NOT_DNS.sub("-", instance_id.lower()).strip("-")
    if cleaned == instance_id and len(cleaned) <= 63:
        return cleaned
    digest = hashlib.sha256(instance_id.encode()).hexdigest()[:10]
    prefix = cleaned[:52].strip("-")
    return f"{prefix}-{digest}" if prefix else f"node-{digest}"


def card_uuid(node_name: str, index: int) -> str:
    """A stable, NVIDIA-shaped (``GPU-<uuid>``) card id for synthetic card ``index``."""
    return f"GPU-{uuid.uuid5(_CARD_NAMESPACE, f'{node_name}/{index}')}"


def hami_register(node_name: str, itype: InstanceType, split: int) -> str | None:
    """HAMi's JSON registration for the type's cards, None for a type without GPUs."""
    gpu = itype.gpu
    if gpu is None or gpu.count < 1:
        return None
    cards = [
        {
            "id": card_uuid(node_name, i),
            "index": i,
            "count": split,
            "devmem": gpu.mem_mib,
            "devcore": 100,
            "type": f"{gpu.manufacturer}-{gpu.model}",
            "numa": 0,
            "mode": "hami-core",
            "health": True,
        }
        for i in range(gpu.count)
    ]
    return orjson.dumps(cards).decode()


def _internal_ip(node_name: str) -> str:
    digest = hashlib.sha256(node_name.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2] % 254 + 1}"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """What the manifest is made of; the provider fills it from the request and the catalog."""

    instance_id: str
    claim_id: str
    itype: InstanceType
    zone: str
    region: str | None
    capacity: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    launched_at: datetime
    split: int = DEFAULT_SPLIT


def node_manifest(spec: NodeSpec) -> Obj:
    """The Node the instance would register as, Ready, with capacity from the catalog."""
    name = node_name_for(spec.instance_id)
    itype = spec.itype
    now = spec.launched_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        **spec.labels,
        INSTANCE_TYPE_LABEL: itype.name,
        ZONE_LABEL: spec.zone,
        CAPACITY_TYPE_LABEL: spec.capacity,
        ARCH_LABEL: itype.arch,
        OS_LABEL: "linux",
        HOSTNAME_LABEL: name,
        CLAIM_TAG: label_value(spec.claim_id),
        MANAGED_LABEL: "true",
    }
    if spec.region:
        labels[REGION_LABEL] = spec.region
    annotations = {
        INSTANCE_ID_ANNOTATION: spec.instance_id,
        CLAIM_TAG: spec.claim_id,
        LAUNCHED_AT_ANNOTATION: now,
        KWOK_ANNOTATION: "fake",
        "node.alpha.kubernetes.io/ttl": "0",
    }
    capacity = {
        "cpu": str(itype.vcpu),
        "memory": f"{itype.memory_mib}Mi",
        "pods": str(MAX_PODS),
    }
    register = hami_register(name, itype, spec.split)
    if register is not None and itype.gpu is not None:
        capacity[GPU_RESOURCE] = str(itype.gpu.count * spec.split)
        annotations[HAMI_REGISTER] = register
    conditions = [
        _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", now),
        *(
            _condition(kind, "False", f"KubeletHas{reason}", "", now)
            for kind, reason in (
                ("MemoryPressure", "SufficientMemory"),
                ("DiskPressure", "NoDiskPressure"),
                ("PIDPressure", "SufficientPID"),
            )
        ),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "providerID": f"local:///{spec.zone}/{spec.instance_id}",
            "taints": [dict(t) for t in spec.taints],
        },
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": _internal_ip(name)},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": _node_info(name, itype.arch),
            "phase": "Running",
        },
    }


def _node_info(name: str, arch: str) -> Obj:
    """Every field of ``NodeSystemInfo``: typed clients refuse a node missing one."""
    machine = uuid.uuid5(_CARD_NAMESPACE, f"machine/{name}")
    return {
        "architecture": arch,
        "operatingSystem": "linux",
        "osImage": "spotpack local node",
        "kernelVersion": "0.0.0-local",
        "containerRuntimeVersion": "local://0.0.0",
        "kubeletVersion": "v0.0.0-local",
        "kubeProxyVersion": "v0.0.0-local",
        "machineID": machine.hex,
        "systemUUID": str(machine),
        "bootID": str(uuid.uuid5(_CARD_NAMESPACE, f"boot/{name}")),
    }


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def instance_from_node(node: Mapping[str, Any]) -> Instance | None:
    """The instance a node of ours stands for; None for a node that is not ours."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    name = meta.get("name")
    if labels.get(MANAGED_LABEL) != "true" or not isinstance(name, str):
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
        if isinstance(c, Mapping)
    )
    launched = _parse_time(annotations.get(LAUNCHED_AT_ANNOTATION)) or _parse_time(
        meta.get("creationTimestamp")
    )
    return Instance(
        instance_id=str(annotations.get(INSTANCE_ID_ANNOTATION) or name),
        instance_type=str(labels.get(INSTANCE_TYPE_LABEL, "")),
        zone=str(labels.get(ZONE_LABEL, "")),
        capacity=str(labels.get(CAPACITY_TYPE_LABEL, "")),
        claim_id=str(annotations.get(CLAIM_TAG) or labels.get(CLAIM_TAG, "")),
        state="running" if ready else "pending",
        launched_at=launched or datetime.fromtimestamp(0, UTC),
        node_name=name,
        private_dns=None,
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- the provider ----------------------------------------------------------------------------


class LocalProvider:
    """A ``CloudProvider`` whose instances are Node objects in the cluster."""

    name = "local"

    def __init__(
        self,
        store_or_api: Any,
        *,
        clock: Callable[[], datetime] = _utcnow,
        registration_delay: float = 0.0,
        catalog: Catalog | None = None,
        split: int = DEFAULT_SPLIT,
    ) -> None:
        if registration_delay < 0:
            raise ValueError(f"registration_delay must be >= 0, got {registration_delay}")
        self.nodes = node_api_for(store_or_api)
        self._clock = clock
        self.registration_delay = timedelta(seconds=registration_delay)
        if catalog is None:
            from spotpack.catalog import load_catalog

            catalog = load_catalog()
        self.catalog = catalog
        self.split = split
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[datetime, Obj, Instance]] = {}

    @staticmethod
    def instance_id_for(claim_id: str) -> str:
        return f"local-{claim_id}"

    def launch(self, req: LaunchRequest) -> Instance:
        """Register (or schedule) the Node of the first candidate the catalog knows."""
        existing = self.find(req.claim_id)
        if existing is not None:
            return existing
        chosen = next(
            (
                (itype, zone)
                for name, zone in req.candidates
                if (itype := self.catalog.instance(name)) is not None
            ),
            None,
        )
        if chosen is None:
            types = ", ".join(t for t, _ in req.candidates)
            raise LaunchRefused(
                f"claim {req.claim_id}: no candidate type is in the catalog ({types})",
                code="UnknownInstanceType",
            )
        itype, zone = chosen
        now = self._clock()
        instance_id = self.instance_id_for(req.claim_id)
        manifest = node_manifest(
            NodeSpec(
                instance_id=instance_id,
                claim_id=req.claim_id,
                itype=itype,
                zone=zone,
                region=self.catalog.region_of(zone),
                capacity=req.capacity,
                labels=req.labels,
                taints=req.taints,
                launched_at=now,
                split=self.split,
            )
        )
        pending = Instance(
            instance_id=instance_id,
            instance_type=itype.name,
            zone=zone,
            capacity=req.capacity,
            claim_id=req.claim_id,
            state="pending",
            launched_at=now,
            node_name=manifest["metadata"]["name"],
        )
        if self.registration_delay:
            with self._lock:
                self._pending[req.claim_id] = (now + self.registration_delay, manifest, pending)
            log.info("local instance pending", extra={"claim": req.claim_id, "type": itype.name})
            self._boot(self.registration_delay.total_seconds())
            return pending
        return self._register(req.claim_id, manifest) or pending

    def _boot(self, delay: float) -> None:
        """Register the node after ``delay`` on its own, as a booting kubelet would, not only
        when the provisioner next asks the cloud (a timer thread; with an injected clock
        that has not moved on, its tick registers nothing and the next call does)."""
        timer = threading.Timer(delay, self._tick_quietly)
        timer.daemon = True
        timer.start()

    def _tick_quietly(self) -> None:
        try:
            self.tick()
        except Exception:  # an API error here is retried by the next find/list_owned/tick
            log.warning("local node registration failed; retried later", exc_info=True)

    def tick(self) -> int:
        """Register the nodes whose delay has passed; returns how many."""
        now = self._clock()
        with self._lock:
            due = [(c, m) for c, (when, m, _) in self._pending.items() if when <= now]
            for claim_id, _ in due:
                del self._pending[claim_id]
        for claim_id, manifest in due:
            self._register(claim_id, manifest)
        return len(due)

    def _register(self, claim_id: str, manifest: Obj) -> Instance | None:
        try:
            created = self.nodes.create_node(manifest)
        except NodeExists:
            return self._find_registered(claim_id)
        log.info(
            "local node registered",
            extra={"claim": claim_id, "node": manifest["metadata"]["name"]},
        )
        return instance_from_node(created)

    def find(self, claim_id: str) -> Instance | None:
        self.tick()
        with self._lock:
            entry = self._pending.get(claim_id)
        if entry is not None:
            return entry[2]
        return self._find_registered(claim_id)

    def _find_registered(self, claim_id: str) -> Instance | None:
        nodes = self.nodes.list_nodes(f"{CLAIM_TAG}={label_value(claim_id)}")
        found = [i for i in map(instance_from_node, nodes) if i and i.claim_id == claim_id]
        found.sort(key=lambda i: (i.launched_at, i.instance_id))
        return found[0] if found else None

    def list_owned(self) -> list[Instance]:
        self.tick()
        nodes = self.nodes.list_nodes(f"{MANAGED_LABEL}=true")
        owned = [i for i in map(instance_from_node, nodes) if i is not None]
        with self._lock:
            return owned + [entry[2] for entry in self._pending.values()]

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Delete the instances' nodes (and forget pending ones); unknown ids are skipped."""
        wanted = set(instance_ids)
        with self._lock:
            for claim_id, (_, _, pending) in list(self._pending.items()):
                if pending.instance_id in wanted:
                    del self._pending[claim_id]
        for node in self.nodes.list_nodes(f"{MANAGED_LABEL}=true"):
            registered = instance_from_node(node)
            if registered and registered.instance_id in wanted and registered.node_name:
                self.nodes.delete_node(registered.node_name)
                log.info("local node deleted", extra={"node": registered.node_name})


__all__ = [
    "GPU_RESOURCE",
    "HAMI_REGISTER",
    "KubeNodeApi",
    "LocalProvider",
    "NodeApi",
    "NodeExists",
    "NodeSpec",
    "StoreNodeApi",
    "card_uuid",
    "hami_register",
    "instance_from_node",
    "node_api_for",
    "node_manifest",
    "node_name_for",
]
