"""Typos through the webhook: warned of by name, never refused, never breaking the patch.

A misspelt ``spotpack.io/`` key (pod or namespace), an unknown GPU resource
name, a GPU model pattern the catalog does not know: each is an admission
warning naming what was written and the nearest known thing. An opt-out value
other than true/false is refused on a pod and a warning on a namespace, as
every other invalid value is.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.catalog.load import load_catalog
from tests.manifests import validation_errors
from tests.pods import pod, review
from webhook.app import create_app, gpu_models
from webhook.namespaces import StaticNamespaces
from webhook.settings import WebhookSettings

SCHEMA_VERSION = "1.30"
MODELS = ", ".join(gpu_models(load_catalog()))
NAMESPACES = {
    "typo-ns": {"spotpack.io/capcity": "spot"},
    "include-ns": {"spotpack.io/gpu-include": "A10GG"},
    "yes-ns": {"spotpack.io/opt-out": "yes"},
    "fine-ns": {"spotpack.io/gpu-include": "A10G", "spotpack.io/capacity": "spot"},
}


@pytest.fixture(scope="module")
def client():
    app = create_app(
        WebhookSettings(cert_file=None, key_file=None, namespace_defaults=False),
        namespaces=StaticNamespaces(NAMESPACES),
    )
    return app.test_client()


def answer(client, obj: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/mutate", data=orjson.dumps(review(obj)))
    assert response.status_code == 200
    result: dict[str, Any] = orjson.loads(response.data)["response"]
    return result


def apply(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "patch" not in response:
        return obj
    ops = orjson.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops)
    assert validation_errors(result, SCHEMA_VERSION) == []
    return result


def gpu_container(**limits: str) -> dict[str, Any]:
    return {"name": "c", "image": "x", "resources": {"limits": dict(limits)}}


GPU = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "4096"}
CAPACITY_TYPO = (
    "unknown annotation spotpack.io/capcity (did you mean spotpack.io/capacity?); ignored"
)
GPUMEMORY = (
    "container 'c': unknown GPU resource nvidia.com/gpumemory (did you mean nvidia.com/gpumem?); "
    "kept as written, not read by spotpack; the pod stays Pending unless a node offers it"
)
WARNED = [
    # (id, pod, the warnings expected among the response's, in this order)
    (
        "pod key typo",
        pod(owner="ReplicaSet", annotations={"spotpack.io/capcity": "spot"}),
        [CAPACITY_TYPO],
    ),
    (
        "prefix typo",
        pod(owner="ReplicaSet", annotations={"spotpak.io/capacity": "spot"}),
        ["unknown annotation spotpak.io/capacity (did you mean spotpack.io/capacity?); ignored"],
    ),
    (
        "namespace key typo",
        pod(owner="ReplicaSet", namespace="typo-ns"),
        [f"namespace typo-ns: {CAPACITY_TYPO}"],
    ),
    (
        "gpu resource typo",
        pod(
            owner="ReplicaSet",
            containers=[gpu_container(**{"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"})],
        ),
        [GPUMEMORY, "container 'c': nvidia.com/gpu: 1 with no memory or cores means 1 whole card"],
    ),
    (
        "gpu resource typo alone",
        pod(owner="ReplicaSet", containers=[gpu_container(**{"nvidia.com/gpumemory": "8192"})]),
        [GPUMEMORY],
    ),
    (
        "gpu-include typo",
        pod(
            owner="ReplicaSet",
            annotations={"spotpack.io/gpu-include": "A10GG"},
            containers=[gpu_container(**GPU)],
        ),
        [f"spotpack.io/gpu-include: A10GG matches no GPU model in the catalog (known: {MODELS})"],
    ),
    (
        "gpu-exclude typo",
        pod(
            owner="ReplicaSet",
            annotations={"spotpack.io/gpu-exclude": "T44"},
            containers=[gpu_container(**GPU)],
        ),
        [f"spotpack.io/gpu-exclude: T44 matches no GPU model in the catalog (known: {MODELS})"],
    ),
    (
        "namespace gpu-include typo",
        pod(owner="ReplicaSet", namespace="include-ns", containers=[gpu_container(**GPU)]),
        [
            "namespace include-ns default spotpack.io/gpu-include: A10GG matches no GPU model "
            f"in the catalog (known: {MODELS})"
        ],
    ),
    (
        "namespace opt-out yes",
        pod(owner="ReplicaSet", namespace="yes-ns"),
        [
            "namespace yes-ns annotation spotpack.io/opt-out='yes' is not valid; "
            "allowed: true, false; the default was ignored"
        ],
    ),
]


@pytest.mark.parametrize(("obj", "expected"), [w[1:] for w in WARNED], ids=[w[0] for w in WARNED])
def test_typos_are_warnings(client, obj, expected) -> None:
    response = answer(client, obj)
    assert response["allowed"] is True
    warnings = response.get("warnings", [])
    assert [w for w in warnings if w in expected] == expected, warnings
    result = apply(obj, response)
    assert answer(client, result).get("patch") is None, "the second pass changes nothing"


QUIET = [
    # (id, pod): nothing here is a typo, so no typo warning
    (
        "known keys",
        pod(
            owner="ReplicaSet",
            annotations={"spotpack.io/capacity": "spot", "spotpack.io/do-not-disrupt": "true"},
        ),
    ),
    (
        "gpu-include matches",
        pod(
            owner="ReplicaSet",
            annotations={"spotpack.io/gpu-include": "a10g,L4"},
            containers=[gpu_container(**GPU)],
        ),
    ),
    (
        "namespace defaults fine",
        pod(owner="ReplicaSet", namespace="fine-ns", containers=[gpu_container(**GPU)]),
    ),
    ("MIG", pod(owner="ReplicaSet", containers=[gpu_container(**{"nvidia.com/mig-1g.5gb": "1"})])),
    ("other vendor", pod(owner="ReplicaSet", containers=[gpu_container(**{"amd.com/gpu": "1"})])),
]


@pytest.mark.parametrize("obj", [q[1] for q in QUIET], ids=[q[0] for q in QUIET])
def test_no_typo_no_warning(client, obj) -> None:
    warnings = answer(client, obj).get("warnings", [])
    assert not _typos(warnings), warnings


def test_resource_typo_is_kept_and_requests_equal_limits(client) -> None:
    obj = pod(
        owner="ReplicaSet",
        containers=[gpu_container(**{"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"})],
    )
    resources = apply(obj, answer(client, obj))["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"nvidia.com/gpu": "1", "nvidia.com/gpumemory": "8192"}
    assert resources["requests"] == resources["limits"]


DENIED = [
    ({"spotpack.io/opt-out": "yes"}, None, "pod annotation spotpack.io/opt-out='yes'"),
    ({"spotpack.io/opt-out": "1"}, None, "pod annotation spotpack.io/opt-out='1'"),
    (None, {"spotpack.io/opt-out": "yes"}, "spotpack.io/opt-out='yes'"),
]


@pytest.mark.parametrize(("annotations", "labels", "message"), DENIED)
def test_opt_out_other_than_true_false_is_refused(client, annotations, labels, message) -> None:
    response = answer(client, pod(owner="ReplicaSet", annotations=annotations, labels=labels))
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert message in response["status"]["message"]
    assert "allowed: true, false" in response["status"]["message"]


@pytest.mark.parametrize("value", ["true", "True", " TRUE "])
def test_opt_out_true_any_case_skips(client, value) -> None:
    response = answer(client, pod(owner="ReplicaSet", annotations={"spotpack.io/opt-out": value}))
    assert response == {"uid": "uid-1", "allowed": True}


ANNOTATION_KEYS = st.sampled_from(
    [
        "spotpack.io/capcity",
        "spotpack.io/gpu-polcy",
        "spotpak.io/capacity",
        "spotpack.io/zzz",
        "spotpack.io/capacity",
        "spotpack.io/gpu-include",
        "spotpack.io/gpu-exclude",
        "spotpack.io/detected-role",
        "example.com/x",
    ]
)
ANNOTATION_VALUES = st.sampled_from(["spot", "A10G", "A10GG", "t4", "x"])
RESOURCE_KEYS = st.sampled_from(
    [
        "nvidia.com/gpu",
        "nvidia.com/gpumem",
        "nvidia.com/gpumemory",
        "nvidia.com/gpucore",
        "nvidia.con/gpu",
        "nvidia.com/mig-1g.5gb",
        "volcano.sh/vgpu-mem",
        "cpu",
    ]
)
RESOURCES = st.dictionaries(RESOURCE_KEYS, st.sampled_from(["1", "2", "4096"]), max_size=3)
TYPO_ANNOTATIONS = {
    "spotpack.io/capcity",
    "spotpack.io/gpu-polcy",
    "spotpak.io/capacity",
    "spotpack.io/zzz",
}
TYPO_RESOURCES = {
    "nvidia.com/gpumemory",
    "nvidia.com/gpucore",
    "nvidia.con/gpu",
    "volcano.sh/vgpu-mem",
}


def _typos(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "unknown" in w or "matches no GPU model" in w]


def _names(warning: str, what: str, key: str) -> bool:
    return f"{what} {key} (" in warning or f"{what} {key};" in warning


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    annotations=st.dictionaries(ANNOTATION_KEYS, ANNOTATION_VALUES, max_size=3),
    limits=RESOURCES,
    same=st.booleans(),
    namespace=st.sampled_from(["default", *NAMESPACES]),
)
def test_warnings_never_break_the_patch(client, annotations, limits, same, namespace) -> None:
    """Whatever the typos: the answer is a valid patch (or a denial), the patched pod is a
    valid Pod, a second pass changes nothing, and every typo is named in a warning."""
    resources: dict[str, Any] = {"limits": limits}
    if same:
        resources["requests"] = dict(limits)
    obj = pod(
        owner="ReplicaSet",
        namespace=namespace,
        annotations=annotations,
        containers=[{"name": "c", "image": "x", "resources": resources}],
    )
    before = copy.deepcopy(obj)
    response = answer(client, obj)
    assert obj == before
    if not response["allowed"]:
        assert response["status"]["code"] == 422
        return
    warnings = response.get("warnings", [])
    assert all(isinstance(w, str) and len(w) <= 256 for w in warnings), warnings
    for key in TYPO_ANNOTATIONS & set(annotations):
        assert any(_names(w, "unknown annotation", key) for w in warnings)
    for key in TYPO_RESOURCES & set(limits):
        assert any(_names(w, "unknown GPU resource", key) for w in warnings)
    result = apply(obj, response)
    again = answer(client, result)
    assert again["allowed"] is True
    assert "patch" not in again, f"second pass changed the pod: {again}"
    assert _typos(again.get("warnings", [])) == _typos(warnings), "typos are said again, alike"
