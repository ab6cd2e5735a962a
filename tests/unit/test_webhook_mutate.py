"""The webhook through its Flask app: golden traffic, every role, every skip rule.

Each produced patch is applied with the ``jsonpatch`` library to the pod that
was sent, the result is checked against the Kubernetes Pod schema, and the
mutated pod is sent again to prove the second pass changes nothing.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson
import pytest

from tests.manifests import validation_errors
from tests.pods import golden, golden_bytes, pod, review
from webhook.app import create_app
from webhook.namespaces import StaticNamespaces
from webhook.settings import WebhookSettings

SCHEMA_VERSION = "1.30"
NOT_SPOT = {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
SPOT = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}


def make_client(namespaces: dict[str, dict[str, str]] | None = None, **settings: Any):
    app = create_app(
        WebhookSettings(cert_file=None, key_file=None, namespace_defaults=False, **settings),
        namespaces=StaticNamespaces(namespaces or {}),
    )
    return app.test_client()


@pytest.fixture(scope="module")
def client():
    return make_client(
        {"team-spot": {"spotpack.io/capacity": "spot"}, "quiet": {"spotpack.io/opt-out": "true"}}
    )


def post(client, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    response = client.post("/mutate", data=data, content_type="application/json")
    return response.status_code, orjson.loads(response.data)


def answer(client, obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    status, body = post(client, review(obj, **kwargs))
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1"
    assert body["kind"] == "AdmissionReview"
    return body["response"]


def patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Apply the response's patch like the API server does, and validate the result."""
    if "patch" not in response:
        assert "patchType" not in response
        return obj
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"]))
    result = jsonpatch.apply_patch(obj, ops)
    assert validation_errors(result, SCHEMA_VERSION) == []
    return result


def roundtrip(client, obj: dict[str, Any]) -> dict[str, Any]:
    """Mutate once, apply, mutate again: the second pass must change nothing."""
    result = patched(obj, answer(client, obj))
    again = answer(client, result)
    assert "patch" not in again, f"second pass changed the pod: {again}"
    return result


def required_terms(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]


def test_golden_spark_driver_goes_on_demand(client) -> None:
    body = golden("admissionreview-spark-driver.json")
    status, reply = post(client, golden_bytes("admissionreview-spark-driver.json"))
    assert status == 200
    response = reply["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    result = patched(body["request"]["object"], response)
    assert required_terms(result) == [{"matchExpressions": [NOT_SPOT]}]
    assert result["metadata"]["annotations"]["spotpack.io/detected-role"] == "spark/driver"
    assert result["metadata"]["annotations"]["spotpack.io/capacity-applied"] == "on-demand"
    assert answer(client, result).get("patch") is None


def test_golden_spark_executor_prefers_spot(client) -> None:
    body = golden("admissionreview-spark-executor.json")
    result = patched(body["request"]["object"], post(client, body)[1]["response"])
    preferred = result["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred == [{"weight": 50, "preference": {"matchExpressions": [SPOT]}}]
    assert {
        "key": "karpenter.sh/capacity-type",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    } in result["spec"]["tolerations"]
    assert len(result["spec"]["tolerations"]) == 3


def test_golden_gpu_pod_is_already_canonical(client) -> None:
    status, reply = post(client, golden_bytes("admissionreview-gpu-pod.json"))
    assert status == 200
    assert reply["response"] == {"uid": "16628c94-9d14-4f41-870c-2f3d1ab42afd", "allowed": True}


ROLE_CASES = [
    # (labels, owner, spec, expected capacity-applied or None)
    ({"spark-role": "driver"}, None, {}, "on-demand"),
    ({"spark-role": "executor"}, None, {}, "spot-preferred"),
    (
        {"serving.kserve.io/inferenceservice": "m", "component": "predictor"},
        "ReplicaSet",
        {},
        "spot-preferred",
    ),
    ({"ray.io/node-type": "head"}, None, {}, "on-demand"),
    ({"ray.io/node-type": "worker"}, None, {}, "spot-preferred"),
    ({"type": "flink-native-kubernetes", "component": "jobmanager"}, None, {}, "on-demand"),
    ({"type": "flink-native-kubernetes", "component": "taskmanager"}, None, {}, "spot-preferred"),
    ({"training.kubeflow.org/replica-type": "Master"}, None, {}, "on-demand"),
    ({"training.kubeflow.org/replica-type": "Worker"}, None, {}, "spot-preferred"),
    ({"dask.org/component": "scheduler"}, None, {}, "on-demand"),
    ({"dask.org/component": "worker"}, None, {}, "spot-preferred"),
    ({"leaderworkerset.sigs.k8s.io/worker-index": "0"}, "StatefulSet", {}, "on-demand"),
    ({"leaderworkerset.sigs.k8s.io/worker-index": "1"}, "StatefulSet", {}, "spot-preferred"),
    ({"workflows.argoproj.io/workflow": "wf"}, None, {}, "spot-preferred"),
    ({}, "ReplicaSet", {}, "spot-preferred"),
    ({}, "Job", {}, "spot-preferred"),
    ({}, "StatefulSet", {}, None),
    ({}, None, {}, None),
    (
        {"spark-role": "executor"},
        None,
        {"priorityClassName": "system-cluster-critical"},
        "on-demand",
    ),
]


@pytest.mark.parametrize(("labels", "owner", "spec", "capacity"), ROLE_CASES)
def test_every_role(client, labels, owner, spec, capacity) -> None:
    result = roundtrip(client, pod(labels=labels, owner=owner, **spec))
    annotations = result["metadata"].get("annotations") or {}
    assert annotations.get("spotpack.io/capacity-applied") == capacity
    if capacity == "on-demand":
        assert required_terms(result) == [{"matchExpressions": [NOT_SPOT]}]
        assert all(
            t.get("key") != "karpenter.sh/capacity-type" for t in result["spec"]["tolerations"]
        )
    if capacity is None:
        assert "affinity" not in result["spec"]


def test_driver_with_existing_terms_gets_requirement_in_every_term(client) -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}
    gpu = {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A10G"]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}, {"matchExpressions": [gpu]}]
            }
        }
    }
    result = roundtrip(client, pod(labels={"spark-role": "driver"}, affinity=affinity))
    assert required_terms(result) == [
        {"matchExpressions": [zone, NOT_SPOT]},
        {"matchExpressions": [gpu, NOT_SPOT]},
    ]


def test_namespace_default_applies_and_pod_annotation_wins(client) -> None:
    result = roundtrip(client, pod(namespace="team-spot"))
    assert result["metadata"]["annotations"]["spotpack.io/capacity-applied"] == "spot"
    assert required_terms(result) == [{"matchExpressions": [SPOT]}]
    mine = pod(namespace="team-spot", annotations={"spotpack.io/capacity": "on-demand"})
    assert (
        roundtrip(client, mine)["metadata"]["annotations"]["spotpack.io/capacity-applied"]
        == "on-demand"
    )


SKIPPED = [
    pod(owner="DaemonSet", labels={"spark-role": "executor"}),
    pod(annotations={"kubernetes.io/config.mirror": "abc"}, labels={"spark-role": "driver"}),
    pod(labels={"spark-role": "driver"}, nodeName="node-1"),
    pod(namespace="kube-system", labels={"spark-role": "driver"}),
    pod(namespace="spotpack-system", labels={"spark-role": "driver"}),
    pod(labels={"spark-role": "driver", "spotpack.io/opt-out": "true"}),
    pod(
        labels={"spark-role": "driver"},
        annotations={"spotpack.io/opt-out": "true", "spotpack.io/capacity": "bogus"},
    ),
    pod(namespace="quiet", labels={"spark-role": "driver"}),
]


@pytest.mark.parametrize("obj", SKIPPED)
def test_never_mutated(client, obj) -> None:
    response = answer(client, obj)
    assert response == {"uid": "uid-1", "allowed": True}


def test_generate_name_pod_uses_request_name_and_namespace(client) -> None:
    obj = pod(labels={"spark-role": "driver"})
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "etl-driver-"
    obj["metadata"].pop("namespace")
    status, body = post(client, review(obj, namespace="team-spot"))
    assert status == 200
    applied = patched(obj, body["response"])["metadata"]["annotations"][
        "spotpack.io/capacity-applied"
    ]
    # The request's namespace (not the object's, absent here) picked the namespace default.
    assert applied == "spot"


@pytest.mark.parametrize(
    ("annotations", "names"),
    [
        ({"spotpack.io/capacity": "cheap"}, ["spotpack.io/capacity", "spot-preferred"]),
        ({"spotpack.io/gpu-policy": "tight"}, ["spotpack.io/gpu-policy", "binpack, spread"]),
        ({"spotpack.io/role": "boss"}, ["spotpack.io/role", "coordinator"]),
    ],
)
def test_invalid_annotation_is_denied_with_422(client, annotations, names) -> None:
    response = answer(client, pod(annotations=annotations))
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    for name in names:
        assert name in response["status"]["message"]
    assert "patch" not in response


def test_invalid_vgpu_request_is_denied(client) -> None:
    container = {
        "name": "c",
        "image": "x",
        "resources": {
            "limits": {
                "nvidia.com/gpu": "1",
                "nvidia.com/gpumem": "4096",
                "nvidia.com/gpumem-percentage": "50",
            }
        },
    }
    response = answer(client, pod(containers=[container]))
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert "'c'" in response["status"]["message"]


def test_volcano_pod_is_normalized_and_placed(client) -> None:
    container = {
        "name": "c",
        "image": "x",
        "resources": {"limits": {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-memory": "8192"}},
    }
    obj = pod(
        labels={"serving.kserve.io/inferenceservice": "llm", "component": "predictor"},
        owner="ReplicaSet",
        containers=[container],
    )
    result = roundtrip(client, obj)
    resources = result["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192"}
    assert resources["requests"] == resources["limits"]
    assert result["metadata"]["annotations"]["spotpack.io/capacity-applied"] == "spot-preferred"


def test_gpu_type_policy_is_written_in_hami_keys(client) -> None:
    container = {
        "name": "c",
        "image": "x",
        "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096"}},
    }
    obj = pod(annotations={"spotpack.io/gpu-include": "A10G,L4"}, containers=[container])
    result = roundtrip(client, obj)
    assert result["metadata"]["annotations"]["nvidia.com/use-gputype"] == "A10G,L4"


@pytest.mark.parametrize(
    ("scheme", "key", "values"),
    [
        ("eks", "eks.amazonaws.com/capacityType", ["SPOT"]),
        ("gke", "cloud.google.com/gke-spot", ["true"]),
        ("aks", "kubernetes.azure.com/scalesetpriority", ["spot"]),
    ],
)
def test_label_schemes(scheme, key, values) -> None:
    client = make_client(label_scheme=scheme)
    result = roundtrip(client, pod(labels={"spark-role": "driver"}))
    assert required_terms(result) == [
        {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values}]}
    ]


def test_role_policy_is_configurable() -> None:
    client = make_client(role_capacity={"worker": "spot", "stateful": "on-demand"})
    assert required_terms(roundtrip(client, pod(labels={"spark-role": "executor"}))) == [
        {"matchExpressions": [SPOT]}
    ]
    assert required_terms(roundtrip(client, pod(owner="StatefulSet"))) == [
        {"matchExpressions": [NOT_SPOT]}
    ]
    assert "affinity" in roundtrip(client, pod(labels={"spark-role": "driver"}))["spec"]


def test_request_is_not_modified_in_place(client) -> None:
    obj = pod(labels={"spark-role": "driver"})
    before = copy.deepcopy(obj)
    answer(client, obj)
    assert obj == before


def test_gpu_pods_are_sent_to_the_extender_scheduler() -> None:
    client = make_client(scheduler_name="spotpack-scheduler")
    container = {
        "name": "c",
        "image": "x",
        "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096"}},
    }
    result = roundtrip(client, pod(containers=[container], schedulerName="default-scheduler"))
    assert result["spec"]["schedulerName"] == "spotpack-scheduler"
    mine = roundtrip(client, pod(containers=[container], schedulerName="volcano"))
    assert mine["spec"]["schedulerName"] == "volcano", "a pod's own scheduler choice is kept"
    cpu = roundtrip(client, pod(labels={"spark-role": "driver"}))
    assert cpu["spec"]["schedulerName"] == "default-scheduler"


DIALECTS = [
    # (id, container limits, pod annotations, expected canonical limits)
    (
        "hami",
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "30"},
        {},
        {"nvidia.com/gpu": "2", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "30"},
    ),
    (
        "hami-percent",
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
    ),
    (
        "volcano",
        {
            "volcano.sh/vgpu-number": "1",
            "volcano.sh/vgpu-memory": "4096",
            "volcano.sh/vgpu-cores": "25",
        },
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096", "nvidia.com/gpucores": "25"},
    ),
    (
        "kai-fraction",
        {},
        {"gpu-fraction": "0.5"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"},
    ),
    (
        "kai-memory",
        {},
        {"gpu-memory": "2000"},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "2000"},
    ),
    (
        "koordinator",
        {"koordinator.sh/gpu-memory": "8Gi", "koordinator.sh/gpu-core": "50"},
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "8192", "nvidia.com/gpucores": "50"},
    ),
    (
        "gpushare",
        {"aliyun.com/gpu-mem": "3"},
        {},
        {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3072"},
    ),
]


@pytest.mark.parametrize(
    ("limits", "annotations", "expected"), [d[1:] for d in DIALECTS], ids=[d[0] for d in DIALECTS]
)
def test_every_dialect_through_the_webhook(client, limits, annotations, expected) -> None:
    container = {
        "name": "c",
        "image": "x",
        "resources": {"limits": dict(limits), "requests": {"cpu": "1", **limits}},
    }
    result = roundtrip(
        client, pod(annotations=annotations or None, owner="ReplicaSet", containers=[container])
    )
    resources = result["spec"]["containers"][0]["resources"]
    gpu_limits = {k: v for k, v in resources["limits"].items() if k.startswith("nvidia.com/")}
    assert gpu_limits == expected
    assert {
        k: v for k, v in resources["requests"].items() if k.startswith("nvidia.com/")
    } == expected
    assert resources["requests"]["cpu"] == "1"
    assert not any(
        k.startswith(("volcano.sh/", "koordinator.sh/", "aliyun.com/")) for k in resources["limits"]
    )
