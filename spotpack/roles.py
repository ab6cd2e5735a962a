"""Workload role detection: what part of which framework a pod plays.

The role decides the default capacity: a Spark driver lost to a spot
interruption kills the whole application, an executor lost costs one task
retry. Detection reads labels and owner references that the frameworks set
themselves, so users write nothing.

Detectors are tried in order, most specific first: framework labels (Spark,
KServe, KubeRay, Flink, Kubeflow training, Dask, LeaderWorkerSet, Argo) before
generic owner rules (StatefulSet, ReplicaSet, Job), because a Spark executor is
also owned by nothing and a KServe predictor is also owned by a ReplicaSet.
Critical pods (priority >= 2e9 or a ``system-*-critical`` class) are detected
before everything: they must never land on spot, whatever else they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CRITICAL_PRIORITY = 2_000_000_000
CRITICAL_CLASSES = frozenset({"system-cluster-critical", "system-node-critical"})


class RoleClass(StrEnum):
    """What a role means for placement; policies are configured per class."""

    COORDINATOR = "coordinator"
    """Holds the application's state (Spark driver, Ray head, ...): losing it loses the job."""
    WORKER = "worker"
    """Replaceable compute (executors, workers, task managers, batch steps)."""
    REPLICA = "replica"
    """One of N identical serving replicas behind a load balancer."""
    STATEFUL = "stateful"
    """A StatefulSet member: identity and storage matter, policy is the operator's call."""
    CRITICAL = "critical"
    """Cluster-critical pods: never on spot."""
    STANDALONE = "standalone"
    """A bare pod or an owner spotpack does not know: left alone by default."""


ROLE_CLASS_VALUES = ", ".join(r.value for r in RoleClass)


@dataclass(frozen=True, slots=True)
class Role:
    """A detected role: ``workload`` (framework) and ``name`` as the framework calls it."""

    workload: str
    name: str
    role_class: RoleClass
    app: str | None = None
    """Identity of the application the pod belongs to (e.g. Spark app id), for grouping."""

    @property
    def label(self) -> str:
        """Short form used in annotations and metrics, e.g. ``spark/driver``."""
        return f"{self.workload}/{self.name}"


Pod = Mapping[str, Any]
Detector = Callable[[Pod, Mapping[str, str]], Role | None]


def _labels(pod: Pod) -> Mapping[str, str]:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _owner_kinds(pod: Pod) -> list[str]:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    if not isinstance(owners, list):
        return []
    return [str(o.get("kind", "")) for o in owners if isinstance(o, Mapping)]


def is_critical(pod: Pod) -> bool:
    """True for pods Kubernetes itself treats as critical (priority >= 2e9 or class)."""
    spec = pod.get("spec") or {}
    priority = spec.get("priority")
    if (
        isinstance(priority, int)
        and not isinstance(priority, bool)
        and priority >= CRITICAL_PRIORITY
    ):
        return True
    return spec.get("priorityClassName") in CRITICAL_CLASSES


def _critical(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    return Role("kubernetes", "critical", RoleClass.CRITICAL) if is_critical(pod) else None


_SPARK_ROLES = {
    "driver": RoleClass.COORDINATOR,
    "connect-server": RoleClass.COORDINATOR,
    "executor": RoleClass.WORKER,
}


def _spark(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    """Spark on Kubernetes labels every pod ``spark-role``; the operator adds its own keys."""
    role = labels.get("spark-role")
    if role is None:
        return None
    role_class = _SPARK_ROLES.get(role.lower())
    if role_class is None:
        return None
    app = labels.get("spark-app-selector") or labels.get("sparkoperator.k8s.io/app-name")
    workload = "spark-operator" if _has_prefix(labels, "sparkoperator.k8s.io/") else "spark"
    return Role(workload, role.lower(), role_class, app)


def _has_prefix(labels: Mapping[str, str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in labels)


def _kserve(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    """KServe sets ``serving.kserve.io/inferenceservice`` and ``component``."""
    isvc = labels.get("serving.kserve.io/inferenceservice")
    if isvc is None:
        return None
    component = labels.get("component", "predictor")
    return Role("kserve", component, RoleClass.REPLICA, isvc)


_RAY_ROLES = {"head": RoleClass.COORDINATOR, "worker": RoleClass.WORKER}


def _kuberay(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    node_type = labels.get("ray.io/node-type")
    if node_type is None or node_type.lower() not in _RAY_ROLES:
        return None
    return Role(
        "ray", node_type.lower(), _RAY_ROLES[node_type.lower()], labels.get("ray.io/cluster")
    )


_FLINK_ROLES = {"jobmanager": RoleClass.COORDINATOR, "taskmanager": RoleClass.WORKER}


def _flink(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    """Flink native Kubernetes: ``type=flink-native-kubernetes`` plus ``component``."""
    if labels.get("type") != "flink-native-kubernetes":
        return None
    component = labels.get("component", "").lower()
    if component not in _FLINK_ROLES:
        return None
    return Role("flink", component, _FLINK_ROLES[component], labels.get("app"))


_TRAINING_COORDINATORS = frozenset({"master", "chief", "ps", "launcher", "scheduler", "server"})


def _kubeflow(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    """Kubeflow training operator; the replica type's case varies by version (Worker/worker)."""
    replica = labels.get("training.kubeflow.org/replica-type") or labels.get("replica-type")
    if replica is None:
        if (
            labels.get("training.kubeflow.org/job-role") == "master"
            or labels.get("job-role") == "master"
        ):
            replica = "master"
        else:
            return None
    name = replica.lower()
    role_class = RoleClass.COORDINATOR if name in _TRAINING_COORDINATORS else RoleClass.WORKER
    app = labels.get("training.kubeflow.org/job-name") or labels.get("job-name")
    return Role("kubeflow", name, role_class, app)


_DASK_ROLES = {"scheduler": RoleClass.COORDINATOR, "worker": RoleClass.WORKER}


def _dask(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    component = labels.get("dask.org/component", "").lower()
    if component not in _DASK_ROLES:
        return None
    return Role("dask", component, _DASK_ROLES[component], labels.get("dask.org/cluster-name"))


def _lws(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    """LeaderWorkerSet: worker index "0" is the leader of its group."""
    index = labels.get("leaderworkerset.sigs.k8s.io/worker-index")
    if index is None:
        return None
    app = labels.get("leaderworkerset.sigs.k8s.io/name")
    if index == "0":
        return Role("lws", "leader", RoleClass.COORDINATOR, app)
    return Role("lws", "worker", RoleClass.WORKER, app)


def _argo(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    workflow = labels.get("workflows.argoproj.io/workflow")
    if workflow is None:
        return None
    return Role("argo", "step", RoleClass.WORKER, workflow)


_OWNER_ROLES = {
    "StatefulSet": ("statefulset", "member", RoleClass.STATEFUL),
    "ReplicaSet": ("deployment", "replica", RoleClass.REPLICA),
    "Job": ("job", "task", RoleClass.WORKER),
}


def _owner(pod: Pod, labels: Mapping[str, str]) -> Role | None:
    for kind in _owner_kinds(pod):
        if kind in _OWNER_ROLES:
            workload, name, role_class = _OWNER_ROLES[kind]
            return Role(workload, name, role_class)
    return None


DETECTORS: tuple[Detector, ...] = (
    _critical,
    _spark,
    _kserve,
    _kuberay,
    _flink,
    _kubeflow,
    _dask,
    _lws,
    _argo,
    _owner,
)
"""Order matters: critical first, frameworks next, generic owners last."""

STANDALONE = Role("pod", "standalone", RoleClass.STANDALONE)


def detect_role(pod: Pod) -> Role:
    """Classify a pod; pods no detector recognizes are ``standalone``."""
    labels = _labels(pod)
    for detector in DETECTORS:
        role = detector(pod, labels)
        if role is not None:
            return role
    return STANDALONE


def owned_by_daemonset(pod: Pod) -> bool:
    """DaemonSet pods run on every node by design; placing them is not our job."""
    return "DaemonSet" in _owner_kinds(pod)
