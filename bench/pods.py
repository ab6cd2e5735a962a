"""Realistic pods for benchmarks: what Spark, KServe and GPU workloads really send.

Sizes matter for a webhook's latency (parsing is per byte), so these pods carry
what real ones carry: managedFields, a few dozen env vars, projected volumes,
probes. Each is 5-10 KB of JSON.
"""

from __future__ import annotations

import copy
from typing import Any


def _env(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"name": f"{prefix}_{i}", "value": f"value-{i}-" + "x" * 40} for i in range(n)]


def _managed_fields() -> list[dict[str, Any]]:
    fields = {
        f"f:{k}": {} for k in ("image", "imagePullPolicy", "name", "resources", "env", "ports")
    }
    return [
        {
            "manager": "spark-operator",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-11-23T19:48:47Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:containers": {'k:{"name":"main"}': fields}}},
        }
    ]


def _base(name: str, labels: dict[str, str], resources: dict[str, Any], env: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "analytics",
            "labels": labels,
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "4040"},
            "managedFields": _managed_fields(),
        },
        "spec": {
            "volumes": [
                {"name": "spark-local-dir-1", "emptyDir": {}},
                {
                    "name": "spark-conf-volume",
                    "configMap": {"name": f"{name}-conf", "defaultMode": 420},
                },
                {
                    "name": "kube-api-access-abcde",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                        "defaultMode": 420,
                    },
                },
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example.com/data/spark:3.5.1-python3.11",
                    "args": ["executor"],
                    "ports": [{"name": "blockmanager", "containerPort": 7079, "protocol": "TCP"}],
                    "env": _env(env, "SPARK"),
                    "resources": resources,
                    "volumeMounts": [
                        {"name": "spark-local-dir-1", "mountPath": "/var/data/spark-1"},
                        {"name": "spark-conf-volume", "mountPath": "/opt/spark/conf"},
                        {
                            "name": "kube-api-access-abcde",
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        },
                    ],
                    "readinessProbe": {
                        "httpGet": {"path": "/health", "port": 4040},
                        "periodSeconds": 10,
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "spark",
            "securityContext": {"fsGroup": 185},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {},
    }


def spark_executor(i: int) -> dict[str, Any]:
    labels = {"spark-role": "executor", "spark-app-selector": "spark-7f3a", "spark-exec-id": str(i)}
    return _base(
        f"etl-exec-{i}",
        labels,
        {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}},
        40,
    )


def spark_driver(i: int) -> dict[str, Any]:
    labels = {"spark-role": "driver", "spark-app-selector": f"spark-{i}"}
    return _base(f"etl-driver-{i}", labels, {"requests": {"cpu": "1", "memory": "4Gi"}}, 34)


def vgpu_replica(i: int) -> dict[str, Any]:
    labels = {"serving.kserve.io/inferenceservice": "llm", "component": "predictor"}
    resources = {
        "limits": {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-memory": "8192"},
        "requests": {"cpu": "2"},
    }
    pod = _base(f"llm-predictor-{i}", labels, resources, 32)
    pod["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "llm-predictor-5d9",
            "uid": "u",
            "controller": True,
        }
    ]
    return pod


MIX = (spark_executor, spark_executor, spark_driver, vgpu_replica)


def review(i: int) -> dict[str, Any]:
    """The i-th AdmissionReview of the benchmark mix."""
    obj = MIX[i % len(MIX)](i)
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"bench-{i}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": obj["metadata"]["name"],
            "namespace": "analytics",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:spark:spark",
                "groups": ["system:serviceaccounts"],
            },
            "object": copy.deepcopy(obj),
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }
