"""Helpers for extender tests: states built from real node objects, a recording binder."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from extender.app import create_app
from extender.cache import catalog_facts
from extender.settings import ExtenderSettings
from extender.state import ClusterState
from spotpack.capacity import SCHEMES
from spotpack.catalog.load import load_catalog
from spotpack.errors import SpotpackError
from tests.pods import golden

FACTS = catalog_facts(load_catalog(), "us-east-1")


def settings(**overrides: Any) -> ExtenderSettings:
    return ExtenderSettings(cert_file=None, key_file=None, **overrides)


def new_state(**kwargs: Any) -> ClusterState:
    return ClusterState(SCHEMES["karpenter"], FACTS, **kwargs)


def golden_nodes() -> list[dict[str, Any]]:
    return golden("extender-filter-fullnodes.json")["Nodes"]["items"]


def gpu_node(
    name: str,
    *,
    cards: int = 1,
    mem: int = 22888,
    split: int = 10,
    spot: bool = True,
    model: str = "NVIDIA A10G",
    instance_type: str = "g5.xlarge",
    zone: str = "us-east-1a",
    taints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A node registered by HAMi's device plugin, as in the golden fixtures."""
    register = [
        {"id": f"GPU-{name}-{i}", "index": i, "count": split, "devmem": mem, "devcore": 100, "type": model, "numa": 0, "mode": "hami-core", "health": True}
        for i in range(cards)
    ]
    import orjson

    return {
        "metadata": {
            "name": name,
            "labels": {
                "karpenter.sh/capacity-type": "spot" if spot else "on-demand",
                "node.kubernetes.io/instance-type": instance_type,
                "topology.kubernetes.io/zone": zone,
                "kubernetes.io/hostname": name,
            },
            "annotations": {"hami.io/node-nvidia-register": orjson.dumps(register).decode()},
        },
        "spec": {"taints": taints or []},
        "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": str(cards * split), "pods": "110"}},
    }


def gpu_pod(name: str, *, mem: int | None = 6000, count: int = 1, uid: str | None = None, namespace: str = "default", annotations: dict[str, str] | None = None, cores: int | None = None, **spec: Any) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(count)}
    if mem is not None:
        limits["nvidia.com/gpumem"] = str(mem)
    if cores is not None:
        limits["nvidia.com/gpucores"] = str(cores)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}", "resourceVersion": "1", "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": limits, "requests": dict(limits)}}], **spec},
        "status": {"phase": "Pending"},
    }


class RecordingBinder:
    """A Binder that records calls and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str, dict[str, str]]] = []
        self.fail_with: str | None = None
        self.lock = threading.Lock()

    def bind(self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]) -> None:
        if self.fail_with:
            raise SpotpackError(self.fail_with)
        with self.lock:
            self.calls.append((namespace, name, uid, node, dict(annotations)))


def client_for(state: ClusterState, binder: RecordingBinder | None = None, pods: dict[str, dict[str, Any]] | None = None, **overrides: Any):
    known = pods or {}
    app = create_app(
        settings(**overrides),
        state=state,
        binder=binder or RecordingBinder(),
        fetch_pod=lambda ns, name: copy.deepcopy(known.get(f"{ns}/{name}")),
    )
    return app.test_client()
