"""Bad input on the wire: a clear answer, never a 5xx, always protocol-valid."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pods import pod, review
from webhook.app import create_app
from webhook.namespaces import StaticNamespaces
from webhook.routes import UNPROCESSED_WARNING
from webhook.settings import WebhookSettings


@pytest.fixture(scope="module")
def client():
    app = create_app(
        WebhookSettings(
            cert_file=None, key_file=None, namespace_defaults=False, max_body_bytes=64 * 1024
        ),
        namespaces=StaticNamespaces(),
    )
    return app.test_client()


BAD_BODIES = [
    (b"not json", 400, "not JSON"),
    (b"[]", 400, "JSON object"),
    (
        orjson.dumps(
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "request": {"uid": "u"},
            }
        ),
        400,
        "admissionReviewVersions",
    ),
    (orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}), 400, "AdmissionReview"),
    (
        orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        400,
        "request",
    ),
    (
        orjson.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
        ),
        400,
        "uid",
    ),
    (
        orjson.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}
        ),
        400,
        "uid",
    ),
    (
        orjson.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {"uid": "u", "object": []},
            }
        ),
        400,
        "object",
    ),
    (b"x" * (65 * 1024), 413, "exceeds"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_BODIES)
def test_bad_bodies(client, body, status, words) -> None:
    response = client.post("/mutate", data=body, content_type="application/json")
    assert response.status_code == status
    payload = orjson.loads(response.data)
    assert words in payload["message"]


def test_wrong_method_and_path_are_json(client) -> None:
    assert client.get("/mutate").status_code == 405
    response = client.post("/nope")
    assert response.status_code == 404
    assert orjson.loads(response.data)["error"] == "NotFound"


@pytest.mark.parametrize(
    "change",
    [
        {"operation": "UPDATE"},
        {"operation": "DELETE", "object": None},
        {
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        },
        {"subResource": "status"},
    ],
)
def test_other_kinds_and_operations_pass_unchanged(client, change) -> None:
    body = review(pod(labels={"spark-role": "driver"}), uid="abc")
    body["request"].update(change)
    response = client.post("/mutate", data=orjson.dumps(body))
    assert response.status_code == 200
    assert orjson.loads(response.data)["response"] == {"uid": "abc", "allowed": True}


def test_health_ready_metrics(client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/mutate", data=orjson.dumps(review(pod(labels={"spark-role": "driver"}))))
    metrics = client.get("/metrics").data.decode()
    assert 'spotpack_webhook_admissions_total{result="patched",role="spark/driver"}' in metrics
    assert "spotpack_webhook_admission_seconds_bucket" in metrics


def _check_protocol(response) -> None:
    assert response.status_code < 500
    payload = orjson.loads(response.data)
    if response.status_code != 200:
        assert isinstance(payload["message"], str) and payload["message"]
        return
    assert payload["apiVersion"] == "admission.k8s.io/v1"
    assert payload["kind"] == "AdmissionReview"
    answer = payload["response"]
    assert isinstance(answer["uid"], str) and answer["uid"]
    assert isinstance(answer["allowed"], bool)
    assert UNPROCESSED_WARNING not in answer.get("warnings", []), "garbage reached the fallback"
    if "patch" in answer:
        assert answer["patchType"] == "JSONPatch"
        assert isinstance(orjson.loads(base64.b64decode(answer["patch"])), list)
    if not answer["allowed"]:
        assert answer["status"]["code"] in (400, 422)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_never_5xx(client, data) -> None:
    _check_protocol(client.post("/mutate", data=data))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    request=st.dictionaries(
        st.sampled_from(
            [
                "uid",
                "kind",
                "resource",
                "operation",
                "namespace",
                "name",
                "object",
                "subResource",
                "dryRun",
            ]
        ),
        json_values,
    )
)
def test_random_requests_never_5xx(client, request) -> None:
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    _check_protocol(client.post("/mutate", data=json.dumps(body)))


resources = st.dictionaries(
    st.sampled_from(
        [
            "cpu",
            "nvidia.com/gpu",
            "nvidia.com/gpumem",
            "nvidia.com/gpumem-percentage",
            "nvidia.com/gpucores",
            "volcano.sh/vgpu-number",
            "volcano.sh/vgpu-memory",
            "koordinator.sh/gpu-core",
            "aliyun.com/gpu-mem",
        ]
    ),
    st.one_of(
        st.text(max_size=6),
        st.integers(-5, 200),
        st.sampled_from(["1", "2", "50", "8Gi", "0.5", "6k"]),
    ),
    max_size=4,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=st.dictionaries(
        st.sampled_from(
            ["spark-role", "ray.io/node-type", "component", "type", "dask.org/component", "app"]
        ),
        st.sampled_from(["driver", "executor", "head", "worker", "jobmanager", "x", ""]),
        max_size=3,
    ),
    annotations=st.dictionaries(
        st.sampled_from(
            [
                "spotpack.io/capacity",
                "spotpack.io/role",
                "spotpack.io/gpu-policy",
                "gpu-fraction",
                "spotpack.io/opt-out",
            ]
        ),
        st.text(max_size=10),
        max_size=3,
    ),
    limits=resources,
    requests=resources,
    affinity=st.one_of(st.none(), json_values),
    tolerations=st.one_of(st.none(), st.lists(json_values, max_size=3)),
)
def test_random_pods_never_5xx(
    client, labels, annotations, limits, requests, affinity, tolerations
) -> None:
    obj = pod(
        labels=labels,
        annotations=annotations,
        containers=[
            {"name": "c", "image": "x", "resources": {"limits": limits, "requests": requests}}
        ],
    )
    if affinity is not None:
        obj["spec"]["affinity"] = affinity
    if tolerations is not None:
        obj["spec"]["tolerations"] = tolerations
    _check_protocol(client.post("/mutate", data=json.dumps(review(obj))))
