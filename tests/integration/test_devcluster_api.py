"""The dev cluster over real HTTP on loopback, driven by the kubernetes client and raw requests."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from spotpack.devcluster import DevCluster
from spotpack.errors import ClusterUnavailable
from spotpack.kube import api_client_for_url, load_api_client

pytestmark = pytest.mark.integration

Obj = dict[str, Any]


def pod_manifest(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster(bookmark_interval=0.2) as running:
        yield running


def _close(api: Any) -> None:
    api.close()
    api.rest_client.pool_manager.clear()


@pytest.fixture
def api(cluster: DevCluster) -> Iterator[Any]:
    api_client = api_client_for_url(cluster.url)
    yield api_client
    _close(api_client)


@pytest.fixture
def v1(api: Any) -> Any:
    return client.CoreV1Api(api)


class Raw:
    """Plain HTTP requests (one connection each, closed), to see bytes the client hides."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(self, method: str, path: str, body: bytes | str | None = None,
                content_type: str = "application/json",
                timeout: float = 5.0) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        status, _, data = self.request(method, path, payload, content_type)
        return status, json.loads(data)


@pytest.fixture
def raw(cluster: DevCluster) -> Raw:
    return Raw(cluster.url)


def assert_status(body: Any, code: int, reason: str) -> None:
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason)
    assert body["message"]


# --- configuration -------------------------------------------------------------------------


def test_kubeconfig_loads_with_the_kubernetes_client(cluster: DevCluster, tmp_path: Path) -> None:
    path = cluster.write_kubeconfig(tmp_path / "nested" / "kubeconfig")
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg,
                            persist_config=False)
    assert cfg.host == cluster.url
    api_client = load_api_client(str(path), pool_maxsize=7)
    try:
        assert api_client.configuration.connection_pool_maxsize == 7
        names = [n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items]
        assert "default" in names
    finally:
        _close(api_client)


def test_load_api_client_uses_kubeconfig_env(cluster: DevCluster, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(cluster.write_kubeconfig(tmp_path / "kc")))
    api_client = load_api_client()
    try:
        assert client.CoreV1Api(api_client).read_namespace("default").metadata.name == "default"
    finally:
        _close(api_client)


def test_load_api_client_names_everything_it_tried(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ClusterUnavailable) as err:
        load_api_client()
    message = str(err.value)
    assert "in-cluster" in message and f"KUBECONFIG={tmp_path / 'missing'}" in message
    assert "\n" not in message
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ClusterUnavailable, match=r"\.kube/config"):
        load_api_client()


def test_explicit_kubeconfig_that_fails_does_not_fall_back(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("clusters: [not a kubeconfig")
    with pytest.raises(ClusterUnavailable, match=str(bad)) as err:
        load_api_client(str(bad))
    assert err.value.__cause__ is not None


# --- the client calls the services make ----------------------------------------------------


def test_core_calls_through_the_client(cluster: DevCluster, v1: Any) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1", "labels": {"pool": "gpu"}}})
    assert [n.metadata.name for n in v1.list_node().items] == ["n1"]
    assert v1.read_namespace("default").status.phase == "Active"
    assert "kube-system" in [n.metadata.name for n in v1.list_namespace().items]

    created = v1.create_namespaced_pod("default", pod_manifest("web"))
    assert created.status.phase == "Pending"
    assert created.metadata.uid and created.metadata.resource_version

    patched = v1.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"a": "b"}}})
    assert patched.metadata.labels == {"a": "b"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    pods = v1.list_pod_for_all_namespaces()
    assert [p.metadata.name for p in pods.items] == ["web"]
    assert pods.metadata.resource_version == cluster.store.resource_version

    event = v1.create_namespaced_event("default", {
        "metadata": {"generateName": "web."}, "reason": "Scheduled", "message": "ok",
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}})
    assert event.metadata.name.startswith("web.")

    deleted = v1.delete_namespaced_pod("web", "default", grace_period_seconds=30)
    assert deleted.metadata.name == "web"
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod("web", "default")
    assert err.value.status == 404


def binding(pod: str, node: str) -> Any:
    return client.V1Binding(metadata=client.V1ObjectMeta(name=pod),
                            target=client.V1ObjectReference(kind="Node", name=node))


def test_binding_binds_once_then_conflicts(cluster: DevCluster, v1: Any) -> None:
    v1.create_namespaced_pod("default", pod_manifest("p"))
    resp = v1.create_namespaced_binding("default", binding("p", "n1"), _preload_content=False)
    assert resp.status == 201
    assert json.loads(resp.data)["status"] == "Success"
    bound = v1.read_namespaced_pod("p", "default")
    assert bound.spec.node_name == "n1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]

    with pytest.raises(ApiException) as err:
        v1.create_namespaced_binding("default", binding("p", "n2"), _preload_content=False)
    assert err.value.status == 409
    assert_status(json.loads(err.value.body), 409, "Conflict")
    assert v1.read_namespaced_pod("p", "default").spec.node_name == "n1"

    with pytest.raises(ApiException) as missing:
        v1.create_namespaced_binding("default", binding("ghost", "n1"), _preload_content=False)
    assert missing.value.status == 404


def test_binding_subresource_path(cluster: DevCluster, raw: Raw) -> None:
    cluster.store.create("pods", pod_manifest("p"))
    status, body = raw.json("POST", "/api/v1/namespaces/default/pods/p/binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n7"}})
    assert (status, body["status"]) == (201, "Success")
    assert cluster.store.get("pods", "p", "default")["spec"]["nodeName"] == "n7"
    status, body = raw.json("POST", "/api/v1/namespaces/default/pods/p/binding",
                            {"metadata": {"name": "p"}, "target": {}})
    assert_status(body, 422, "Invalid")


def test_eviction_and_refusal(cluster: DevCluster, v1: Any) -> None:
    for name in ("a", "b"):
        v1.create_namespaced_pod("default", pod_manifest(name))
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name="a", namespace="default"))
    v1.create_namespaced_pod_eviction("a", "default", body)
    cluster.store.refuse_evictions()
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_pod_eviction(
            "b", "default", client.V1Eviction(metadata=client.V1ObjectMeta(name="b")))
    assert err.value.status == 429
    assert_status(json.loads(err.value.body), 429, "TooManyRequests")
    assert [p.metadata.name for p in v1.list_namespaced_pod("default").items] == ["b"]


def test_optimistic_concurrency_conflict(cluster: DevCluster, v1: Any) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    first = v1.read_node("n1")
    second = v1.read_node("n1")
    first.metadata.labels = {"writer": "first"}
    v1.replace_node("n1", first)
    second.metadata.labels = {"writer": "second"}
    with pytest.raises(ApiException) as err:
        v1.replace_node("n1", second)
    assert err.value.status == 409
    assert v1.read_node("n1").metadata.labels == {"writer": "first"}


def test_leases_for_leader_election(api: Any) -> None:
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("kube-system", {
        "metadata": {"name": "spotpack-provisioner"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                 "renewTime": "2024-01-01T00:00:00.000000Z"}})
    stale = coord.read_namespaced_lease("spotpack-provisioner", "kube-system")
    lease.spec.holder_identity = "b"
    renewed = coord.replace_namespaced_lease("spotpack-provisioner", "kube-system", lease)
    assert renewed.spec.holder_identity == "b"
    stale.spec.holder_identity = "c"
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("spotpack-provisioner", "kube-system", stale)
    assert err.value.status == 409
    assert len(coord.list_namespaced_lease("kube-system").items) == 1


def test_status_subresources(cluster: DevCluster, v1: Any) -> None:
    v1.create_namespaced_pod("default", pod_manifest("p"))
    v1.patch_namespaced_pod("p", "default", {"status": {"phase": "Running"}})
    assert v1.read_namespaced_pod("p", "default").status.phase == "Pending"
    v1.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert v1.read_namespaced_pod("p", "default").status.phase == "Running"
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    v1.patch_node_status("n1", {"status": {"allocatable": {"nvidia.com/gpu": "4"}}})
    assert v1.read_node("n1").status.allocatable == {"nvidia.com/gpu": "4"}


def test_put_status_replaces_only_status(cluster: DevCluster, v1: Any) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    node = v1.read_node("n1")
    node.metadata.labels = {"ignored": "yes"}
    node.status = client.V1NodeStatus(capacity={"cpu": "8"})
    replaced = v1.replace_node_status("n1", node)
    assert replaced.status.capacity == {"cpu": "8"}
    assert replaced.metadata.labels is None


def test_delete_collection_over_http(cluster: DevCluster, v1: Any) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        v1.create_namespaced_config_map("default", {"metadata": {"name": name,
                                                                 "labels": {"app": app}}})
    v1.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in v1.list_namespaced_config_map("default").items] == ["c"]


# --- patch content types -----------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "patch", "images"), [
    ("application/merge-patch+json",
     {"spec": {"containers": [{"name": "side", "image": "s"}]}}, {"side": "s"}),
    ("application/strategic-merge-patch+json",
     {"spec": {"containers": [{"name": "side", "image": "s"}]}}, {"main": "m", "side": "s"}),
    ("application/json-patch+json",
     [{"op": "add", "path": "/spec/containers/-", "value": {"name": "side", "image": "s"}}],
     {"main": "m", "side": "s"}),
])
def test_patch_content_types(cluster: DevCluster, raw: Raw, content_type: str, patch: Any,
                             images: dict[str, str]) -> None:
    cluster.store.create("configmaps", {"metadata": {"name": "c"}})
    # configmaps have no frozen spec, so the list semantics show directly
    cluster.store.replace("configmaps", "c", {"metadata": {"name": "c"}, "spec": {
        "containers": [{"name": "main", "image": "m"}]}})
    status, body = raw.json("PATCH", "/api/v1/namespaces/default/configmaps/c", patch,
                            content_type)
    assert status == 200, body
    assert {c["name"]: c["image"] for c in body["spec"]["containers"]} == images


def test_unsupported_patch_type_is_415(cluster: DevCluster, raw: Raw) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    status, body = raw.json("PATCH", "/api/v1/nodes/n1", {"a": 1}, "text/plain")
    assert status == 415
    assert_status(body, 415, "UnsupportedMediaType")


@pytest.mark.parametrize(("content_type", "body", "code", "reason"), [
    ("application/merge-patch+json", "[1]", 400, "BadRequest"),
    ("application/json-patch+json", '{"op": "add"}', 400, "BadRequest"),
    ("application/json-patch+json", '[{"op": "remove", "path": "/nope"}]', 422, "Invalid"),
    ("application/strategic-merge-patch+json", "{oops", 400, "BadRequest"),
])
def test_bad_patches(cluster: DevCluster, raw: Raw, content_type: str, body: str, code: int,
                     reason: str) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    status, _, data = raw.request("PATCH", "/api/v1/nodes/n1", body, content_type)
    assert status == code
    assert_status(json.loads(data), code, reason)


# --- selectors over HTTP ----------------------------------------------------------------------


@pytest.fixture
def labelled(cluster: DevCluster) -> DevCluster:
    store = cluster.store
    for name, labels, node, phase in [
        ("a", {"app": "web", "tier": "front"}, "n1", "Running"),
        ("b", {"app": "web", "tier": "back"}, "", "Pending"),
        ("c", {"app": "db"}, "n2", "Running"),
        ("d", {}, "", "Succeeded"),
    ]:
        manifest = pod_manifest(name, labels)
        manifest["spec"]["nodeName"] = node
        manifest["status"] = {"phase": phase}
        store.create("pods", manifest, "default" if name != "d" else "other")
    return cluster


@pytest.mark.parametrize(("query", "names"), [
    ("labelSelector=app%3Dweb", ["a", "b"]),
    ("labelSelector=app%3D%3Dweb", ["a", "b"]),
    ("labelSelector=app!%3Dweb", ["c", "d"]),
    ("labelSelector=tier", ["a", "b"]),
    ("labelSelector=!tier", ["c", "d"]),
    ("labelSelector=app+in+(web,db),tier+notin+(back)", ["a", "c"]),
    ("labelSelector=app+notin+(web)", ["c", "d"]),
    ("fieldSelector=spec.nodeName%3D", ["b", "d"]),
    ("fieldSelector=spec.nodeName%3Dn1", ["a"]),
    ("fieldSelector=status.phase!%3DRunning", ["b", "d"]),
    ("fieldSelector=metadata.namespace%3Dother", ["d"]),
    ("fieldSelector=metadata.name%3Dc", ["c"]),
    ("fieldSelector=spec.nodeName%3D,status.phase%3DPending&labelSelector=app", ["b"]),
])
def test_list_selectors(labelled: DevCluster, raw: Raw, query: str, names: list[str]) -> None:
    status, body = raw.json("GET", f"/api/v1/pods?{query}")
    assert status == 200, body
    assert sorted(p["metadata"]["name"] for p in body["items"]) == names
    assert body["kind"] == "PodList"


def test_selectors_through_the_client(labelled: DevCluster, v1: Any) -> None:
    unbound = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=")
    assert sorted(p.metadata.name for p in unbound.items) == ["b", "d"]
    web = v1.list_namespaced_pod("default", label_selector="app in (web)")
    assert sorted(p.metadata.name for p in web.items) == ["a", "b"]


@pytest.mark.parametrize("query", ["labelSelector=app+in+(web", "fieldSelector=spec.foo%3Dx",
                                   "fieldSelector=nonsense", "resourceVersion=abc"])
def test_bad_list_parameters_are_400(labelled: DevCluster, raw: Raw, query: str) -> None:
    status, body = raw.json("GET", f"/api/v1/pods?{query}")
    assert status == 400
    assert_status(body, 400, "BadRequest")


# --- watch --------------------------------------------------------------------------------------


def test_client_watch_from_resource_version(cluster: DevCluster, v1: Any) -> None:
    v1.create_namespaced_pod("default", pod_manifest("before"))
    start = v1.list_pod_for_all_namespaces().metadata.resource_version
    v1.create_namespaced_pod("default", pod_manifest("p"))
    v1.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"x": "1"}}})
    v1.delete_namespaced_pod("p", "default")
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_pod_for_all_namespaces, resource_version=start,
                          timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]


def test_client_watch_gets_410_after_compaction(cluster: DevCluster, v1: Any) -> None:
    old = v1.list_node().metadata.resource_version
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    cluster.store.compact()
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(v1.list_node, resource_version=old, timeout_seconds=5):
            pass
    assert err.value.status == 410
    assert "Expired" in err.value.reason


def read_watch(raw: Raw, path: str, timeout: float = 5.0) -> list[Obj]:
    status, content_type, data = raw.request("GET", path, timeout=timeout)
    assert status == 200
    assert content_type == "application/json"
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_raw_watch_410_is_an_error_event_like_kube(cluster: DevCluster, raw: Raw) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    cluster.store.compact()
    events = read_watch(raw, "/api/v1/nodes?watch=true&resourceVersion=1")
    assert len(events) == 1
    error = events[0]
    assert error["type"] == "ERROR"
    assert error["object"] == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: 1 ({cluster.store.resource_version})",
        "reason": "Expired", "code": 410,
    }


def test_raw_watch_honours_timeout_and_bookmarks(cluster: DevCluster, raw: Raw) -> None:
    version = cluster.store.resource_version
    started = time.monotonic()
    events = read_watch(raw, f"/api/v1/nodes?watch=1&resourceVersion={version}"
                        "&timeoutSeconds=1&allowWatchBookmarks=true")
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3
    assert events and {e["type"] for e in events} == {"BOOKMARK"}
    assert events[0]["object"]["metadata"]["resourceVersion"] == version


def test_watch_with_selector_over_http(cluster: DevCluster, raw: Raw) -> None:
    version = cluster.store.resource_version
    cluster.store.create("pods", pod_manifest("p"))
    cluster.store.create("pods", pod_manifest("other", {"skip": "me"}))
    cluster.store.bind("default", "p", "n1")
    events = read_watch(raw, f"/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1"
                        f"&resourceVersion={version}&fieldSelector=spec.nodeName%3D"
                        "&labelSelector=!skip")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "p"), ("DELETED", "p")]


def test_stop_ends_open_watches_quickly(v1: Any) -> None:
    cluster = DevCluster().start()
    api_client = api_client_for_url(cluster.url)
    ended = threading.Event()

    def consume() -> None:
        with pytest.raises(Exception):  # noqa: B017 - any end is fine, as long as it ends
            for _ in watch.Watch().stream(client.CoreV1Api(api_client).list_node):
                pass
            raise RuntimeError("stream ended")
        ended.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while cluster.store.open_watches == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cluster.store.open_watches == 1
    started = time.monotonic()
    cluster.stop()
    assert time.monotonic() - started < 1.0
    assert ended.wait(2)
    _close(api_client)


def test_dropped_watch_breaks_the_connection(cluster: DevCluster) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=5)
    try:
        conn.request("GET", f"/api/v1/nodes?watch=1&resourceVersion="
                     f"{cluster.store.resource_version}")
        resp = conn.getresponse()
        assert resp.status == 200
        threading.Timer(0.2, cluster.store.close_watches, kwargs={"abrupt": True}).start()
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
    finally:
        conn.close()


# --- faults, discovery, errors ------------------------------------------------------------------


def test_injected_error_and_delay(cluster: DevCluster, v1: Any) -> None:
    v1.create_namespaced_pod("default", pod_manifest("p"))
    cluster.store.inject_fault("pods/binding", "create", code=503, times=1)
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_binding("default", binding("p", "n1"), _preload_content=False)
    assert err.value.status == 503
    assert json.loads(err.value.body)["reason"] == "ServiceUnavailable"
    v1.create_namespaced_binding("default", binding("p", "n1"), _preload_content=False)

    cluster.store.inject_fault("nodes", "list", delay=0.3)
    started = time.monotonic()
    v1.list_node()
    assert time.monotonic() - started >= 0.3
    cluster.store.clear_faults()
    started = time.monotonic()
    v1.list_node()
    assert time.monotonic() - started < 0.3


def test_discovery_for_the_client(api: Any, raw: Raw) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.30")
    resources = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/binding", "pods/eviction", "pods/status", "nodes", "bindings"} \
        <= resources
    leases = client.CoordinationV1Api(api).get_api_resources()
    assert [r.name for r in leases.resources] == ["leases"]
    status, groups = raw.json("GET", "/apis")
    assert status == 200
    assert [g["name"] for g in groups["groups"]] == [
        "coordination.k8s.io", "admissionregistration.k8s.io"]
    assert raw.json("GET", "/api")[1]["versions"] == ["v1"]
    assert raw.request("GET", "/healthz")[2] == b"ok"


@pytest.mark.parametrize(("method", "path", "body", "code", "reason"), [
    ("GET", "/api/v1/nope", None, 404, "NotFound"),
    ("GET", "/", None, 200, None),
    ("GET", "/api/v1/namespaces/default/pods/missing", None, 404, "NotFound"),
    ("POST", "/api/v1/namespaces/default/pods", "{not json", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/pods", "[1, 2]", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/pods", "", 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/missing/configmaps", '{"metadata": {"name": "c"}}', 404,
     "NotFound"),
    ("POST", "/api/v1/namespaces/default/pods", '{"metadata": {"name": "p"}, "spec": {}}',
     422, "Invalid"),
    ("POST", "/api/v1/namespaces/default/pods", '{"kind": "Node", "metadata": {"name": "p"}}',
     400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/pods",
     '{"metadata": {"name": "p", "namespace": "other"}}', 400, "BadRequest"),
    ("POST", "/api/v1/namespaces/default/pods", '{"metadata": {"name": "p", "labels": 5}}',
     400, "BadRequest"),
    ("PUT", "/api/v1/namespaces/default/pods", "{}", 405, "MethodNotAllowed"),
    ("POST", "/api/v1/pods", "{}", 405, "MethodNotAllowed"),
    ("PUT", "/api/v1/nodes/n1/status", '{"metadata": {"name": "other"}}', 400, "BadRequest"),
    ("PATCH", "/api/v1/nodes/n1", "[1]", 415, "UnsupportedMediaType"),
    ("DELETE", "/api/v1/nodes/n1", "{bad", 400, "BadRequest"),
    ("HEAD", "/api/v1/nodes", None, 405, None),
    ("GET", "/api/v1/namespaces/default/pods/p/binding", None, 405, "MethodNotAllowed"),
    ("DELETE", "/api/v1/nodes/n1/status", None, 405, "MethodNotAllowed"),
    ("POST", "/version", "{}", 405, "MethodNotAllowed"),
    ("GET", "/api/v1/nodes?watch=true&timeoutSeconds=-1", None, 400, "BadRequest"),
    ("POST", "/api/v1/nodes?dryRun=All", '{"metadata": {"name": "x"}}', 400, "BadRequest"),
])
def test_errors_are_status_objects(cluster: DevCluster, raw: Raw, method: str, path: str,
                                   body: str | None, code: int, reason: str | None) -> None:
    cluster.store.create("nodes", {"metadata": {"name": "n1"}})
    status, content_type, data = raw.request(method, path, body)
    assert status == code
    if method == "HEAD":
        return
    assert content_type == "application/json"
    if reason is not None:
        assert_status(json.loads(data), code, reason)


def test_oversized_body_is_413_status(raw: Raw) -> None:
    huge = json.dumps({"metadata": {"name": "big"}, "data": {"k": "x" * (4 * 1024 * 1024)}})
    status, _, data = raw.request("POST", "/api/v1/namespaces/default/configmaps", huge)
    assert status == 413
    assert_status(json.loads(data), 413, "RequestEntityTooLarge")


# --- property-based: whatever arrives, the answer is a Status, never a 5xx ----------------------

SEGMENTS = st.sampled_from([
    "api", "apis", "v1", "namespaces", "default", "kube-system", "pods", "nodes", "events",
    "leases", "coordination.k8s.io", "binding", "bindings", "eviction", "status", "p", "n1",
    "..", ".", "%2F", "%00", "%ff", "~", "UPPER", "a b",
]) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@%", max_size=12)
QUERY = st.dictionaries(
    st.sampled_from(["labelSelector", "fieldSelector", "resourceVersion", "timeoutSeconds",
                     "limit", "pretty", "gracePeriodSeconds", "propagationPolicy"]),
    st.text(max_size=20), max_size=3)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["metadata", "name", "namespace", "labels", "spec",
                                       "status", "kind", "apiVersion", "op", "path", "value",
                                       "target", "containers", "resourceVersion", "$patch"])
                      | st.text(max_size=6), children, max_size=5),
    max_leaves=20)
BODIES = st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode())


@pytest.fixture(scope="module")
def fuzz_raw() -> Iterator[Raw]:
    with DevCluster() as running:
        running.store.create("pods", pod_manifest("p"))
        running.store.create("nodes", {"metadata": {"name": "n1"}})
        yield Raw(running.url)


def check_response(status: int, content_type: str, data: bytes) -> None:
    assert status < 500, data
    if status >= 400:
        assert content_type == "application/json"
        body = json.loads(data)
        assert body["kind"] == "Status"
        assert body["code"] == status
        assert body["reason"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
       segments=st.lists(SEGMENTS, max_size=7), query=QUERY, body=BODIES,
       content_type=st.sampled_from(["application/json", "application/merge-patch+json",
                                     "application/strategic-merge-patch+json",
                                     "application/json-patch+json", "text/plain"]))
def test_fuzzed_requests_get_status_answers(fuzz_raw: Raw, method: str, segments: list[str],
                                            query: dict[str, str], body: bytes,
                                            content_type: str) -> None:
    path = "/" + "/".join(s.replace(" ", "%20") for s in segments)
    if query:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    check_response(*fuzz_raw.request(method, path, body, content_type))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from([
    "/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/p",
    "/api/v1/namespaces/default/pods/p/status", "/api/v1/namespaces/default/pods/p/binding",
    "/api/v1/namespaces/default/pods/p/eviction", "/api/v1/namespaces/default/bindings",
    "/api/v1/nodes", "/api/v1/nodes/n1", "/api/v1/nodes/n1/status",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases"]),
    method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]), body=BODIES,
    content_type=st.sampled_from(["application/json", "application/merge-patch+json",
                                  "application/strategic-merge-patch+json",
                                  "application/json-patch+json"]))
def test_fuzzed_bodies_on_real_paths(fuzz_raw: Raw, path: str, method: str, body: bytes,
                                     content_type: str) -> None:
    check_response(*fuzz_raw.request(method, path, body, content_type))


def test_binding_annotations_are_merged_into_the_pod(tmp_path) -> None:
    """kube-apiserver copies a Binding's annotations onto the pod in the same update."""
    from spotpack.devcluster import DevCluster
    from spotpack.kube.config import api_client_for_url

    with DevCluster() as cluster:
        cluster.store.create("pods", {"metadata": {"name": "p", "namespace": "default", "annotations": {"a": "1"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, "default")
        api = api_client_for_url(cluster.url)
        try:
            body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "annotations": {"b": "2"}}, "target": {"kind": "Node", "name": "n1"}}
            response = api.call_api("/api/v1/namespaces/default/pods/p/binding", "POST", body=body, header_params={"Content-Type": "application/json"}, _preload_content=False)
            assert response.status == 201
            response.release_conn()
            pod = cluster.store.get("pods", "p", "default")
            assert pod["spec"]["nodeName"] == "n1"
            assert pod["metadata"]["annotations"] == {"a": "1", "b": "2"}
            bad = {**body, "metadata": {"name": "p", "annotations": {"b": 2}}}
            with pytest.raises(Exception, match="422"):
                api.call_api("/api/v1/namespaces/default/pods/p/binding", "POST", body=bad, header_params={"Content-Type": "application/json"})
        finally:
            api.close()


def test_paginated_list_is_one_consistent_snapshot() -> None:
    """limit/continue page through one snapshot; a stale token is 410 Expired."""
    import http.client
    import json as _json

    from spotpack.devcluster import DevCluster

    with DevCluster() as cluster:
        for i in range(7):
            cluster.store.create("nodes", {"metadata": {"name": f"n{i}"}})
        conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=5)

        def get(path: str) -> tuple[int, dict]:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, _json.loads(response.read())

        status, first = get("/api/v1/nodes?limit=3")
        assert status == 200 and [n["metadata"]["name"] for n in first["items"]] == ["n0", "n1", "n2"]
        assert first["metadata"]["remainingItemCount"] == 4
        cluster.store.create("nodes", {"metadata": {"name": "late"}})
        cluster.store.delete("nodes", "n4")
        names, token = [], first["metadata"]["continue"]
        while token:
            status, page = get(f"/api/v1/nodes?limit=3&continue={token}")
            assert status == 200 and page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            names += [n["metadata"]["name"] for n in page["items"]]
            token = page["metadata"].get("continue")
        assert names == ["n3", "n4", "n5", "n6"], "later pages come from the first page's snapshot"
        status, gone = get("/api/v1/nodes?limit=3&continue=deadbeef:3")
        assert status == 410 and gone["reason"] == "Expired"
        conn.close()
