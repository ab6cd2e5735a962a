"""Role detection, one row per row of the design's role table."""

from __future__ import annotations

import pytest

from spotpack.roles import RoleClass, detect_role, owned_by_daemonset
from tests.pods import pod

C, W, R, S, X, N = (
    RoleClass.COORDINATOR,
    RoleClass.WORKER,
    RoleClass.REPLICA,
    RoleClass.STATEFUL,
    RoleClass.CRITICAL,
    RoleClass.STANDALONE,
)

CASES = [
    # (id, labels, owner, spec extras, expected label, expected class, expected app)
    (
        "spark-driver",
        {"spark-role": "driver", "spark-app-selector": "s1"},
        None,
        {},
        "spark/driver",
        C,
        "s1",
    ),
    (
        "spark-executor",
        {"spark-role": "executor", "spark-app-selector": "s1"},
        None,
        {},
        "spark/executor",
        W,
        "s1",
    ),
    ("spark-connect", {"spark-role": "connect-server"}, None, {}, "spark/connect-server", C, None),
    (
        "spark-operator-driver",
        {
            "spark-role": "driver",
            "sparkoperator.k8s.io/app-name": "etl",
            "sparkoperator.k8s.io/launched-by-spark-operator": "true",
        },
        None,
        {},
        "spark-operator/driver",
        C,
        "etl",
    ),
    ("spark-unknown-role", {"spark-role": "shuffle"}, None, {}, "pod/standalone", N, None),
    (
        "kserve-predictor",
        {"serving.kserve.io/inferenceservice": "llm", "component": "predictor"},
        "ReplicaSet",
        {},
        "kserve/predictor",
        R,
        "llm",
    ),
    (
        "kserve-transformer",
        {"serving.kserve.io/inferenceservice": "llm", "component": "transformer"},
        None,
        {},
        "kserve/transformer",
        R,
        "llm",
    ),
    (
        "ray-head",
        {"ray.io/node-type": "head", "ray.io/cluster": "rc"},
        None,
        {},
        "ray/head",
        C,
        "rc",
    ),
    (
        "ray-worker",
        {"ray.io/node-type": "worker", "ray.io/cluster": "rc"},
        None,
        {},
        "ray/worker",
        W,
        "rc",
    ),
    (
        "flink-jm",
        {"type": "flink-native-kubernetes", "component": "jobmanager", "app": "f"},
        None,
        {},
        "flink/jobmanager",
        C,
        "f",
    ),
    (
        "flink-tm",
        {"type": "flink-native-kubernetes", "component": "taskmanager", "app": "f"},
        None,
        {},
        "flink/taskmanager",
        W,
        "f",
    ),
    ("flink-without-type", {"component": "jobmanager"}, None, {}, "pod/standalone", N, None),
    (
        "kubeflow-master",
        {"training.kubeflow.org/replica-type": "Master", "training.kubeflow.org/job-name": "j"},
        None,
        {},
        "kubeflow/master",
        C,
        "j",
    ),
    (
        "kubeflow-worker",
        {"training.kubeflow.org/replica-type": "worker"},
        None,
        {},
        "kubeflow/worker",
        W,
        None,
    ),
    (
        "kubeflow-launcher",
        {"training.kubeflow.org/replica-type": "launcher"},
        None,
        {},
        "kubeflow/launcher",
        C,
        None,
    ),
    ("kubeflow-ps", {"training.kubeflow.org/replica-type": "PS"}, None, {}, "kubeflow/ps", C, None),
    (
        "kubeflow-job-role",
        {"training.kubeflow.org/job-role": "master"},
        None,
        {},
        "kubeflow/master",
        C,
        None,
    ),
    ("dask-scheduler", {"dask.org/component": "scheduler"}, None, {}, "dask/scheduler", C, None),
    (
        "dask-worker",
        {"dask.org/component": "worker", "dask.org/cluster-name": "d"},
        None,
        {},
        "dask/worker",
        W,
        "d",
    ),
    (
        "lws-leader",
        {"leaderworkerset.sigs.k8s.io/worker-index": "0", "leaderworkerset.sigs.k8s.io/name": "l"},
        "StatefulSet",
        {},
        "lws/leader",
        C,
        "l",
    ),
    (
        "lws-worker",
        {"leaderworkerset.sigs.k8s.io/worker-index": "3"},
        "StatefulSet",
        {},
        "lws/worker",
        W,
        None,
    ),
    ("argo-step", {"workflows.argoproj.io/workflow": "wf"}, None, {}, "argo/step", W, "wf"),
    ("statefulset", {}, "StatefulSet", {}, "statefulset/member", S, None),
    ("deployment", {"app": "web"}, "ReplicaSet", {}, "deployment/replica", R, None),
    ("job", {}, "Job", {}, "job/task", W, None),
    ("bare", {"app": "x"}, None, {}, "pod/standalone", N, None),
    (
        "critical-priority",
        {"spark-role": "executor"},
        None,
        {"priority": 2_000_001_000},
        "kubernetes/critical",
        X,
        None,
    ),
    (
        "critical-class",
        {},
        "ReplicaSet",
        {"priorityClassName": "system-node-critical"},
        "kubernetes/critical",
        X,
        None,
    ),
    (
        "high-but-not-critical",
        {},
        "ReplicaSet",
        {"priority": 1_999_999_999},
        "deployment/replica",
        R,
        None,
    ),
]


@pytest.mark.parametrize(
    ("labels", "owner", "extra", "label", "role_class", "app"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_detect_role(labels, owner, extra, label, role_class, app) -> None:
    role = detect_role(pod(labels=labels, owner=owner, **extra))
    assert (role.label, role.role_class, role.app) == (label, role_class, app)


def test_daemonset_owner() -> None:
    assert owned_by_daemonset(pod(owner="DaemonSet"))
    assert not owned_by_daemonset(pod(owner="ReplicaSet"))


@pytest.mark.parametrize(
    "bad", [{"metadata": None}, {"metadata": {"labels": "x", "ownerReferences": "y"}}, {}]
)
def test_malformed_pods_are_standalone(bad) -> None:
    assert detect_role(bad).role_class is RoleClass.STANDALONE
