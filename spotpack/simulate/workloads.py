"""The workload controllers the simulator plays: pods from templates, and how many to make (pure).

A Deployment's ReplicaSet, a Job, a StatefulSet or the Spark driver keeps a
number of pods alive: when one is evicted or its node deleted, a new pod is
created (with a new name, as a ReplicaSet would); when fewer are wanted,
pending pods go first, then the newest. :func:`reconcile` decides that;
:func:`pod_manifest` builds the pod the controller would create, before the
webhook sees it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spotpack.simulate.observe import WORKLOAD_LABEL
from spotpack.simulate.scenario import Workload

OWNER_KIND = {"deployment": "ReplicaSet", "statefulset": "StatefulSet", "job": "Job"}
OWNER_API = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}


def _uid(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def pod_name(workload: Workload, seq: int) -> str:
    return f"{workload.name}-{seq}"


def pod_manifest(workload: Workload, seq: int, scenario: str) -> dict[str, Any]:
    """Pod number ``seq`` of ``workload`` as its controller would create it."""
    template = workload.template
    meta: dict[str, Any] = {
        "name": pod_name(workload, seq),
        "namespace": workload.namespace,
        "labels": {**template.labels, WORKLOAD_LABEL: workload.name},
        "annotations": dict(template.annotations),
    }
    owner = OWNER_KIND.get(workload.kind)
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": OWNER_API[owner],
                "kind": owner,
                "name": workload.name,
                "uid": _uid(scenario, workload.namespace, workload.name),
                "controller": True,
            }
        ]
    containers = []
    for c in template.containers:
        resources: dict[str, Any] = {}
        if c.resources.requests:
            resources["requests"] = dict(c.resources.requests)
        if c.resources.limits:
            resources["limits"] = dict(c.resources.limits)
        containers.append({"name": c.name, "image": c.image, "resources": resources})
    spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Never"}
    if workload.kind in ("deployment", "statefulset"):
        spec["restartPolicy"] = "Always"
    if template.node_selector:
        spec["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        spec["tolerations"] = [t.manifest() for t in template.tolerations]
    if template.priority_class_name:
        spec["priorityClassName"] = template.priority_class_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@dataclass(frozen=True, slots=True)
class LivePod:
    """A pod of a workload as the controller sees it."""

    name: str
    seq: int
    bound: bool


@dataclass(frozen=True, slots=True)
class Reconcile:
    """What the controller does this step: create ``create`` pods, delete these."""

    create: int
    delete: tuple[str, ...]


def reconcile(desired: int, live: Sequence[LivePod]) -> Reconcile:
    """Make ``len(live)`` equal ``desired``: create the missing; delete pending, then newest."""
    if len(live) < desired:
        return Reconcile(desired - len(live), ())
    surplus = len(live) - desired
    order = sorted(live, key=lambda p: (p.bound, -p.seq))
    return Reconcile(0, tuple(p.name for p in order[:surplus]))


def seq_of(name: str, workload: Workload) -> int:
    """The sequence number in a pod name made by :func:`pod_name` (-1 if not ours)."""
    prefix = f"{workload.name}-"
    tail = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else -1


__all__ = ["LivePod", "Reconcile", "pod_manifest", "pod_name", "reconcile", "seq_of"]
