"""Pod fixtures for tests: realistic pods as the API server sends them to a webhook."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "protocol"


def golden(name: str) -> dict[str, Any]:
    """A captured request body from ``shared/data/protocol`` as a dict."""
    data: dict[str, Any] = orjson.loads((PROTOCOL_DIR / name).read_bytes())
    return data


def golden_bytes(name: str) -> bytes:
    return (PROTOCOL_DIR / name).read_bytes()


def pod(
    *,
    name: str = "p",
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: str | None = None,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod in the shape the API server admits: defaults filled, volumes mounted."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner,
                "name": f"{name}-owner",
                "uid": "u-1",
                "controller": True,
            }
        ]
    body: dict[str, Any] = {
        "containers": containers
        or [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "500m"}}}],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "priority": 0,
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
    }
    if init_containers is not None:
        body["initContainers"] = init_containers
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body}


def review(
    obj: dict[str, Any],
    *,
    uid: str = "uid-1",
    namespace: str | None = None,
    operation: str = "CREATE",
) -> dict[str, Any]:
    """Wrap a pod into an AdmissionReview v1 request like the API server's."""
    ns = namespace or obj.get("metadata", {}).get("namespace", "default")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": obj.get("metadata", {}).get("name", ""),
            "namespace": ns,
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:masters"]},
            "object": copy.deepcopy(obj),
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }
