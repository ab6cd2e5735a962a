"""Wiring the cluster state to the Kubernetes API: informers, binder, pod lookup.

Nodes and pods are watched (list, watch, relist on 410, reconnect with
backoff, periodic resync) through :class:`spotpack.kube.informer.Informer`.
The stored copies are cut down to what the decisions read, so 50,000 pods fit
in a few tens of MB: for pods, identity, the GPU annotations, the node and the
phase; for nodes, labels, the GPU annotations, taints and allocatable.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extender.binder import KubeBinder
from extender.settings import ExtenderSettings
from extender.state import ClusterState
from spotpack.catalog.load import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.errors import ClusterUnavailable, ConfigError
from spotpack.gpu.inventory import GPUSpec
from spotpack.nodeview import NodeFacts
from spotpack.scoring.risk import MAX_RISK, advisor_probability

log = logging.getLogger(__name__)
NODE_ANNOTATIONS = ("hami.io/node-nvidia-register", "spotpack.io/gpu-cordon")
POD_ANNOTATION_PREFIXES = ("spotpack.io/", "hami.io/")


def node_transform(node: dict[str, Any]) -> dict[str, Any]:
    """Keep what the node view reads: labels, GPU annotations, taints, allocatable."""
    metadata = node.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    status = node.get("status") or {}
    spec = node.get("spec") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "resourceVersion": metadata.get("resourceVersion"),
            "labels": metadata.get("labels") or {},
            "annotations": {k: annotations[k] for k in NODE_ANNOTATIONS if k in annotations},
        },
        "spec": {
            "taints": spec.get("taints") or [],
            "unschedulable": spec.get("unschedulable", False),
        },
        "status": {"allocatable": status.get("allocatable") or {}},
    }


def pod_transform(pod: dict[str, Any]) -> dict[str, Any]:
    """Keep what usage is rebuilt from: identity, GPU annotations, node, phase."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {
                k: v for k, v in annotations.items() if k.startswith(POD_ANNOTATION_PREFIXES)
            },
        },
        "spec": {"nodeName": (pod.get("spec") or {}).get("nodeName")},
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }


def catalog_facts(catalog: Catalog, region: str) -> NodeFacts:
    """What node views need from the catalog: GPUs by type, price, interruption prior."""

    def gpu_spec(name: str) -> GPUSpec | None:
        spec = catalog.gpu_spec(name)
        return GPUSpec(spec.count, spec.model, spec.mem_mib) if spec is not None else None

    def price(name: str, zone: str | None, spot: bool) -> float | None:
        if spot:
            offer = catalog.spot_offer(name, zone or region)
            return offer.price if offer is not None else None
        return catalog.on_demand_price(name, region)

    def risk(name: str, zone: str | None) -> float:
        bucket = catalog.interruption_bucket(name, zone or region)
        return advisor_probability(bucket) if bucket is not None else MAX_RISK

    return NodeFacts(gpu_spec=gpu_spec, price=price, risk=risk)


@dataclass
class Wiring:
    """The live collaborators of the app, and how to stop them."""

    binder: KubeBinder
    fetch_pod: Callable[[str, str], Mapping[str, Any] | None]
    ready: Callable[[], bool]
    stop: Callable[[], None]


def load_facts(settings: ExtenderSettings) -> NodeFacts:
    return catalog_facts(load_catalog(override=settings.catalog_file), settings.region)


def connect(settings: ExtenderSettings, state: ClusterState) -> Wiring:
    """Start the informers feeding ``state``; a missing cluster is a clear start-up error."""
    from kubernetes import client

    from spotpack.kube.config import api_client_for_url, load_api_client
    from spotpack.kube.informer import Informer

    local = None
    if settings.local:
        local = _local_cluster(settings)
        api_client = api_client_for_url(local.url, pool_maxsize=settings.threads * 2)
    else:
        try:
            api_client = load_api_client(settings.kubeconfig, pool_maxsize=settings.threads * 2)
        except ClusterUnavailable as exc:
            raise ConfigError(
                f"{exc}; the extender needs a cluster (set SPOTPACK_EXTENDER_KUBECONFIG) "
                "or SPOTPACK_EXTENDER_LOCAL=true for the embedded local cluster"
            ) from exc
    core = client.CoreV1Api(api_client)
    resync = settings.resync_seconds or None
    nodes = Informer(
        core.list_node,
        name="nodes",
        transform=node_transform,
        resync_period=resync,
        on_add=state.upsert_node,
        on_update=lambda _old, new: state.upsert_node(new),
        on_delete=state.delete_node,
    ).start()
    pods = Informer(
        core.list_pod_for_all_namespaces,
        name="pods",
        transform=pod_transform,
        resync_period=resync,
        on_add=state.upsert_pod,
        on_update=lambda _old, new: state.upsert_pod(new),
        on_delete=state.delete_pod,
    ).start()

    def stop() -> None:
        nodes.stop()
        pods.stop()
        api_client.close()
        if local is not None:
            local.stop()

    return Wiring(
        binder=KubeBinder(api_client, settings.bind_timeout_seconds),
        fetch_pod=lambda ns, name: _read_pod(api_client, ns, name),
        ready=_FreezeWhenSynced(lambda: nodes.has_synced and pods.has_synced),
        stop=stop,
    )


class _FreezeWhenSynced:
    """Readiness that, the first time the caches are synced, moves the objects loaded so
    far out of the garbage collector's reach (``gc.freeze``).

    A synced cache of 50,000 pods is millions of long-lived objects; without this
    every full collection walks them all, a pause of 100 ms or more that lands on
    some unlucky filter call (p99). The cache's later changes are small.
    """

    def __init__(self, synced: Callable[[], bool]) -> None:
        self._synced = synced
        self._frozen = False

    def __call__(self) -> bool:
        if not self._synced():
            return False
        if not self._frozen:
            self._frozen = True
            gc.collect()
            gc.freeze()
            log.info("caches synced", extra={"frozen_objects": gc.get_freeze_count()})
        return True


def _read_pod(api_client: Any, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        response = api_client.call_api(
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            "GET",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise ClusterUnavailable(f"cannot read pod {namespace}/{name}: {exc.reason}") from exc
    raw = response[0] if isinstance(response, tuple) else response
    try:
        pod: dict[str, Any] = orjson.loads(raw.data)
    finally:
        raw.release_conn()
    return pod


def _local_cluster(settings: ExtenderSettings) -> Any:
    """The embedded in-memory cluster of local mode, seeded from YAML when asked."""
    from pathlib import Path

    from spotpack.devcluster import DevCluster

    seeds = sorted(Path(settings.local_seed).glob("*.yaml")) if settings.local_seed else []
    log.warning(
        "local mode: serving from an embedded in-memory cluster", extra={"seed_files": len(seeds)}
    )
    return DevCluster(seed_files=seeds).start()
