"""Fuzzed bodies on every verb: never a 5xx, always JSON the scheduler can decode."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.extender.support import RecordingBinder, client_for, golden_nodes, gpu_pod, new_state

VERBS = ["/filter", "/prioritize", "/bind"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def client():
    state = new_state()
    for node in golden_nodes():
        state.upsert_node(node)
    return client_for(state, RecordingBinder(), pods={"default/p": gpu_pod("p", uid="u")})


def check(path: str, response) -> None:
    assert response.status_code in (200, 400), response.data[:200]
    body = orjson.loads(response.data)
    if response.status_code == 400:
        assert isinstance(body["Error"], str) and body["Error"]
        return
    if path == "/prioritize":
        assert isinstance(body, list)
        assert all(isinstance(e["Host"], str) and isinstance(e["Score"], int) and 0 <= e["Score"] <= 10 for e in body)
    elif path == "/filter":
        assert set(body) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
        if body["Nodes"] is None:
            assert isinstance(body["NodeNames"], list)
    else:
        assert set(body) == {"Error"}


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(VERBS), st.binary(max_size=200))
def test_random_bytes(client, path, data) -> None:
    check(path, client.post(path, data=data))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(VERBS),
    st.dictionaries(st.sampled_from(["Pod", "Nodes", "NodeNames", "PodName", "PodNamespace", "PodUID", "Node"]), json_values),
)
def test_random_structures(client, path, body) -> None:
    check(path, client.post(path, data=json.dumps(body)))


pods = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries({"name": st.text(max_size=5), "namespace": st.just("default"), "uid": st.text(max_size=5)}, optional={"annotations": st.dictionaries(st.sampled_from(["spotpack.io/gpu-policy", "spotpack.io/capacity-applied", "spotpack.io/gpu-exclude", "x"]), st.text(max_size=8))}),
        "spec": st.fixed_dictionaries({"containers": st.lists(st.fixed_dictionaries({"name": st.text(max_size=4), "resources": st.fixed_dictionaries({"limits": st.dictionaries(st.sampled_from(["nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpucores", "nvidia.com/gpumem-percentage", "cpu"]), st.one_of(st.text(max_size=5), st.integers(-3, 99999)))})}), max_size=3)}),
    }
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/filter", "/prioritize"]), pods, st.lists(st.sampled_from(["gpu-1", "gpu-2", "gpu-3", "nope", ""]), max_size=5))
def test_random_pods(client, path, pod, names) -> None:
    response = client.post(path, data=json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}))
    check(path, response)
    body = orjson.loads(response.data)
    if path == "/filter" and response.status_code == 200:
        returned = set(body["NodeNames"]) | set(body["FailedNodes"]) | set(body["FailedAndUnresolvableNodes"])
        assert returned <= set(names), "only input names may come back"
