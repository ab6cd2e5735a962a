"""Golden protocol tests: bodies exactly as kube-scheduler marshals them, answers it can decode."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.extender.support import (
    RecordingBinder,
    client_for,
    golden_nodes,
    gpu_node,
    gpu_pod,
    new_state,
)
from tests.pods import golden, golden_bytes


@pytest.fixture
def state():
    state = new_state()
    for node in golden_nodes():
        state.upsert_node(node)
    return state


def post(client, path: str, body) -> tuple[int, object]:
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post(path, data=data, content_type="application/json")
    return response.status_code, orjson.loads(response.data)


def test_filter_cache_mode_golden(state) -> None:
    status, result = post(client_for(state), "/filter", golden_bytes("extender-filter-nodecachecapable.json"))
    assert status == 200
    assert result == {"Nodes": None, "NodeNames": ["gpu-3", "gpu-1", "gpu-2"], "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": ""}


def test_filter_full_nodes_golden(state) -> None:
    body = golden("extender-filter-fullnodes.json")
    status, result = post(client_for(state), "/filter", golden_bytes("extender-filter-fullnodes.json"))
    assert status == 200
    assert result["NodeNames"] is None
    assert result["Nodes"]["items"] == body["Nodes"]["items"]
    assert result["Error"] == ""


def test_prioritize_golden_is_an_int_array_of_the_input_hosts(state) -> None:
    status, result = post(client_for(state), "/prioritize", golden_bytes("extender-prioritize-nodecachecapable.json"))
    assert status == 200
    assert isinstance(result, list)
    assert [r["Host"] for r in result] == ["gpu-3", "gpu-1", "gpu-2"]
    raw = client_for(state).post("/prioritize", data=golden_bytes("extender-prioritize-nodecachecapable.json")).data
    assert b"." not in raw.split(b'"Score":')[1][:3], "scores must be JSON integers"
    assert all(isinstance(r["Score"], int) and 0 <= r["Score"] <= 10 for r in result)


def test_bind_golden_records_cards_in_one_binding(state) -> None:
    binder = RecordingBinder()
    client = client_for(state, binder)
    post(client, "/filter", golden_bytes("extender-filter-nodecachecapable.json"))
    status, result = post(client, "/bind", golden_bytes("extender-bind.json"))
    assert (status, result) == (200, {"Error": ""})
    [(namespace, name, uid, node, annotations)] = binder.calls
    assert (namespace, name, uid, node) == ("default", "infer-0", "57b7187d-c67b-485f-91ce-0bb9bbb769c7", "gpu-2")
    assignment = json.loads(annotations["spotpack.io/gpu-assignment"])
    assert assignment["v"] == 1 and assignment["node"] == "gpu-2"
    assert annotations["hami.io/vgpu-node"] == "gpu-2"
    assert annotations["hami.io/bind-phase"] == "allocating"
    assert annotations["hami.io/vgpu-devices-to-allocate"].startswith("GPU-gpu-2,")
    entry = state.nodes["gpu-2"]
    assert entry.usage.used_mem == [6000]
    assert state.counts() == (3, 1, 1)


def test_bind_of_an_unseen_pod_reads_it_from_the_api(state) -> None:
    binder = RecordingBinder()
    pod = golden("extender-filter-nodecachecapable.json")["Pod"]
    client = client_for(state, binder, pods={"default/infer-0": pod})
    _status, result = post(client, "/bind", golden_bytes("extender-bind.json"))
    assert result == {"Error": ""} and len(binder.calls) == 1


def test_bind_of_a_vanished_pod_is_an_error_not_a_500(state) -> None:
    status, result = post(client_for(state), "/bind", golden_bytes("extender-bind.json"))
    assert status == 200 and "no longer exists" in result["Error"]


def test_empty_and_unknown_names(state) -> None:
    pod = gpu_pod("p")
    _status, result = post(client_for(state), "/filter", {"Pod": pod, "Nodes": None, "NodeNames": []})
    assert result["NodeNames"] == [] and result["Error"] == ""
    _status, result = post(client_for(state), "/filter", {"Pod": pod, "Nodes": None, "NodeNames": ["ghost", "gpu-1"]})
    assert result["NodeNames"] == ["gpu-1"]
    assert "not in the extender's cache" in result["FailedNodes"]["ghost"]


def test_unresolvable_capacity_and_interruption() -> None:
    state = new_state()
    state.upsert_node(gpu_node("spot-1"))
    state.upsert_node(gpu_node("od-1", spot=False))
    state.upsert_node(gpu_node("going", taints=[{"key": "aws-node-termination-handler/spot-itn", "effect": "NoSchedule"}]))
    driver = gpu_pod("d", annotations={"spotpack.io/capacity-applied": "on-demand"})
    _status, result = post(client_for(state), "/filter", {"Pod": driver, "NodeNames": ["spot-1", "od-1", "going"]})
    assert result["NodeNames"] == ["od-1"]
    assert "spot" in result["FailedAndUnresolvableNodes"]["spot-1"]
    assert "AWS spot interruption notice" in result["FailedAndUnresolvableNodes"]["going"]


def test_gpu_type_exclusion_is_unresolvable() -> None:
    state = new_state()
    state.upsert_node(gpu_node("t4", model="Tesla T4", instance_type="g4dn.xlarge", mem=15360))
    pod = gpu_pod("p", annotations={"spotpack.io/gpu-exclude": "T4"})
    _status, result = post(client_for(state), "/filter", {"Pod": pod, "NodeNames": ["t4"]})
    assert "t4" in result["FailedAndUnresolvableNodes"]


def test_full_card_is_resolvable_failure_and_binds_never_overcommit() -> None:
    state = new_state()
    state.upsert_node(gpu_node("n"))
    binder = RecordingBinder()
    client = client_for(state, binder)
    first, second = gpu_pod("a", mem=20000), gpu_pod("b", mem=20000)
    for pod in (first, second):
        assert post(client, "/filter", {"Pod": pod, "NodeNames": ["n"]})[1]["NodeNames"] == ["n"]
    assert post(client, "/bind", {"PodName": "a", "PodNamespace": "default", "PodUID": "uid-a", "Node": "n"})[1] == {"Error": ""}
    status, result = post(client, "/bind", {"PodName": "b", "PodNamespace": "default", "PodUID": "uid-b", "Node": "n"})
    assert status == 200 and "no longer fits" in result["Error"]
    assert len(binder.calls) == 1
    filtered = post(client, "/filter", {"Pod": gpu_pod("c", mem=20000), "NodeNames": ["n"]})[1]
    assert "n" in filtered["FailedNodes"]


def test_failed_binding_releases_the_cards() -> None:
    state = new_state()
    state.upsert_node(gpu_node("n"))
    binder = RecordingBinder()
    binder.fail_with = "binding refused (409): already assigned"
    client = client_for(state, binder)
    post(client, "/filter", {"Pod": gpu_pod("a", mem=20000), "NodeNames": ["n"]})
    result = post(client, "/bind", {"PodName": "a", "PodNamespace": "default", "PodUID": "uid-a", "Node": "n"})[1]
    assert "409" in result["Error"]
    assert state.nodes["n"].usage.used_mem == [0]
    assert state.counts()[2] == 0


def test_spread_and_binpack_choose_differently() -> None:
    state = new_state()
    state.upsert_node(gpu_node("busy"))
    state.upsert_node(gpu_node("idle"))
    client = client_for(state)
    post(client, "/filter", {"Pod": gpu_pod("first", mem=8000), "NodeNames": ["busy"]})
    post(client, "/bind", {"PodName": "first", "PodNamespace": "default", "PodUID": "uid-first", "Node": "busy"})
    packed = dict((r["Host"], r["Score"]) for r in post(client, "/prioritize", {"Pod": gpu_pod("x", mem=4000), "NodeNames": ["busy", "idle"]})[1])
    assert packed["busy"] > packed["idle"]
    spread_pod = gpu_pod("y", mem=4000, annotations={"spotpack.io/gpu-policy": "spread"})
    spread = dict((r["Host"], r["Score"]) for r in post(client, "/prioritize", {"Pod": spread_pod, "NodeNames": ["busy", "idle"]})[1])
    assert spread["idle"] > spread["busy"]


def test_on_demand_scores_safer_than_spot_for_cpu_pods() -> None:
    state = new_state()
    state.upsert_node(gpu_node("spot", instance_type="p4d.24xlarge"))
    state.upsert_node(gpu_node("od", spot=False, instance_type="p4d.24xlarge"))
    pod = {"metadata": {"name": "c", "namespace": "default", "uid": "u-c"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    scores = dict((r["Host"], r["Score"]) for r in post(client_for(state, weight_price=0), "/prioritize", {"Pod": pod, "NodeNames": ["spot", "od"]})[1])
    assert scores["od"] > scores["spot"]


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/filter", b"nope", "not JSON"),
        ("/filter", b"[]", "JSON object"),
        ("/filter", {"Nodes": None}, "Pod"),
        ("/prioritize", {"Pod": "x"}, "Pod"),
        ("/bind", {"PodName": "a"}, "PodNamespace"),
        ("/bind", {"PodName": "", "PodNamespace": "d", "PodUID": "u", "Node": "n"}, "PodName"),
    ],
)
def test_bad_bodies_are_400_with_a_reason(state, path, body, words) -> None:
    status, result = post(client_for(state), path, body)
    assert status == 400
    assert words in result["Error"]


def test_invalid_vgpu_request_is_unresolvable_everywhere(state) -> None:
    pod = gpu_pod("bad")
    pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpumem-percentage"] = "50"
    _status, result = post(client_for(state), "/filter", {"Pod": pod, "NodeNames": ["gpu-1", "gpu-2"]})
    assert result["NodeNames"] == []
    assert set(result["FailedAndUnresolvableNodes"]) == {"gpu-1", "gpu-2"}


def test_health_ready_metrics_inspect(state) -> None:
    client = client_for(state)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    post(client, "/filter", golden_bytes("extender-filter-nodecachecapable.json"))
    text = client.get("/metrics").data.decode()
    assert 'spotpack_extender_request_seconds_count{verb="filter"} 1.0' in text
    assert 'spotpack_extender_cache_objects{kind="nodes"} 3.0' in text
    view = orjson.loads(client.get("/inspect?node=gpu-1").data)
    [card] = view["nodes"]["gpu-1"]["cards"]
    assert card["uuid"] == "GPU-gpu-1" and card["mem_mib"] == 22888 and card["slots"] == 10
    assert client.get("/filter").status_code == 405
