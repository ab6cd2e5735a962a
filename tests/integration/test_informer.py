"""The informer against the dev cluster (and one deliberately broken server) on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from spotpack.devcluster import DevCluster
from spotpack.kube import Backoff, Informer, api_client_for_url
from spotpack.kube.informer import key_for, object_key

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class Recorder:
    """Handlers that record (event, name) pairs, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def _record(self, kind: str, obj: Obj) -> None:
        with self.lock:
            self.events.append((kind, obj["metadata"]["name"]))

    def add(self, obj: Obj) -> None:
        self._record("add", obj)

    def update(self, _old: Obj, new: Obj) -> None:
        self._record("update", new)

    def delete(self, obj: Obj) -> None:
        self._record("delete", obj)

    def snapshot(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.events)

    def handlers(self) -> dict[str, Any]:
        return {"on_add": self.add, "on_update": self.update, "on_delete": self.delete}


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster(bookmark_interval=0.1) as running:
        for i in range(3):
            running.store.create("nodes", {"metadata": {
                "name": f"n{i}", "labels": {"pool": "gpu"},
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:big": {}}}]}})
        yield running


@pytest.fixture
def v1(cluster: DevCluster) -> Iterator[Any]:
    api_client = api_client_for_url(cluster.url)
    yield client.CoreV1Api(api_client)
    api_client.close()
    api_client.rest_client.pool_manager.clear()


@pytest.fixture
def start_informer() -> Iterator[Callable[..., Informer]]:
    started: list[Informer] = []

    def start(list_func: Callable[..., Any], **kwargs: Any) -> Informer:
        kwargs.setdefault("backoff", Backoff(initial=0.05, maximum=0.2))
        informer = Informer(list_func, **kwargs).start()
        started.append(informer)
        assert informer.wait_for_sync(5)
        return informer

    yield start
    for informer in started:
        informer.stop()


def test_initial_sync(cluster: DevCluster, v1: Any,
                      start_informer: Callable[..., Informer]) -> None:
    rec = Recorder()
    informer = start_informer(v1.list_node, **rec.handlers())
    assert informer.has_synced
    assert sorted(informer.keys()) == ["n0", "n1", "n2"]
    assert sorted(rec.snapshot()) == [("add", "n0"), ("add", "n1"), ("add", "n2")]
    node = informer.get("n0")
    assert node is not None and node["metadata"]["labels"] == {"pool": "gpu"}
    assert "managedFields" not in node["metadata"]
    assert informer.resource_version == cluster.store.resource_version


def test_add_update_delete_propagate_in_order(cluster: DevCluster, v1: Any,
                                              start_informer: Callable[..., Informer]) -> None:
    rec = Recorder()
    informer = start_informer(v1.list_node, **rec.handlers())
    v1.create_node({"metadata": {"name": "n9"}})
    v1.patch_node("n9", {"metadata": {"labels": {"ready": "yes"}}})
    v1.delete_node("n0")
    wait_until(lambda: len(rec.snapshot()) == 6)
    assert rec.snapshot()[3:] == [("add", "n9"), ("update", "n9"), ("delete", "n0")]
    updated = informer.get("n9")
    assert updated is not None and updated["metadata"]["labels"] == {"ready": "yes"}
    assert informer.get("n0") is None
    assert informer.relists == 1


def test_namespaced_keys_and_field_selector(cluster: DevCluster, v1: Any,
                                            start_informer: Callable[..., Informer]) -> None:
    for name in ("a", "b"):
        cluster.store.create("pods", {"metadata": {"name": name, "namespace": "team"},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    rec = Recorder()
    informer = start_informer(v1.list_pod_for_all_namespaces,
                              list_kwargs={"field_selector": "spec.nodeName="}, **rec.handlers())
    assert sorted(informer.keys()) == ["team/a", "team/b"]
    assert informer.get(key_for("a", "team")) is not None
    cluster.store.bind("team", "a", "n1")  # leaves the selector: seen as a delete
    wait_until(lambda: ("delete", "a") in rec.snapshot())
    assert informer.keys() == ["team/b"]


def test_relist_after_compaction_emits_what_was_missed(
        cluster: DevCluster, v1: Any, start_informer: Callable[..., Informer]) -> None:
    rec = Recorder()
    informer = start_informer(v1.list_node, **rec.handlers())
    store = cluster.store
    store.inject_fault("nodes", "watch", code=500)  # the informer cannot watch ...
    store.close_watches(abrupt=True)
    wait_until(lambda: store.open_watches == 0)
    store.delete("nodes", "n0")  # ... while these happen
    store.patch("nodes", "n1", {"metadata": {"labels": {"pool": "cpu"}}}, MERGE)
    store.create("nodes", {"metadata": {"name": "n9"}})
    store.compact()  # and the history it would resume from is gone
    store.clear_faults()
    wait_until(lambda: informer.relists == 2 and len(rec.snapshot()) == 6)
    assert sorted(rec.snapshot()[3:]) == [("add", "n9"), ("delete", "n0"), ("update", "n1")]
    assert sorted(informer.keys()) == ["n1", "n2", "n9"]
    n1 = informer.get("n1")
    assert n1 is not None and n1["metadata"]["labels"] == {"pool": "cpu"}
    assert informer.resource_version == store.resource_version


@pytest.mark.parametrize("abrupt", [True, False])
def test_reconnects_after_dropped_streams_without_relisting(
        cluster: DevCluster, v1: Any, start_informer: Callable[..., Informer],
        abrupt: bool) -> None:
    rec = Recorder()
    informer = start_informer(v1.list_node, **rec.handlers())
    for round_ in range(3):
        wait_until(lambda: cluster.store.open_watches == 1)
        cluster.store.close_watches(abrupt=abrupt)
        cluster.store.create("nodes", {"metadata": {"name": f"new-{round_}"}})
    wait_until(lambda: len(rec.snapshot()) == 6)
    assert [e for e in rec.snapshot() if e[0] == "add"][3:] == [
        ("add", "new-0"), ("add", "new-1"), ("add", "new-2")]
    assert informer.relists == 1  # resumed from its resourceVersion each time


def test_node_deleted_mid_operation(cluster: DevCluster, v1: Any,
                                    start_informer: Callable[..., Informer]) -> None:
    in_handler, release = threading.Event(), threading.Event()
    deleted: list[Obj] = []

    def slow_update(_old: Obj, _new: Obj) -> None:
        in_handler.set()
        assert release.wait(5)

    informer = start_informer(v1.list_node, on_update=slow_update, on_delete=deleted.append)
    v1.patch_node("n1", {"metadata": {"labels": {"draining": "true"}}})
    assert in_handler.wait(3)
    v1.delete_node("n1")  # while a handler is still working on the node
    assert informer.get("n1") is not None  # the delete is not applied yet ...
    release.set()
    wait_until(lambda: informer.get("n1") is None)  # ... and then it is
    wait_until(lambda: len(deleted) == 1)
    assert deleted[0]["metadata"]["labels"]["draining"] == "true"
    assert sorted(informer.keys()) == ["n0", "n2"]


def test_handler_errors_do_not_stop_the_informer(cluster: DevCluster, v1: Any,
                                                 start_informer: Callable[..., Informer]) -> None:
    seen: list[str] = []

    def flaky_add(obj: Obj) -> None:
        seen.append(obj["metadata"]["name"])
        if obj["metadata"]["name"] == "boom":
            raise RuntimeError("handler bug")

    informer = start_informer(v1.list_node, on_add=flaky_add)
    v1.create_node({"metadata": {"name": "boom"}})
    v1.create_node({"metadata": {"name": "after"}})
    wait_until(lambda: "after" in seen)
    assert informer.get("boom") is not None and informer.get("after") is not None


def test_not_synced_while_lists_fail_then_recovers(cluster: DevCluster, v1: Any) -> None:
    cluster.store.inject_fault("nodes", "list", code=500)
    informer = Informer(v1.list_node, backoff=Backoff(initial=0.05, maximum=0.1)).start()
    try:
        assert not informer.wait_for_sync(0.3)
        assert not informer.has_synced
        cluster.store.clear_faults()
        assert informer.wait_for_sync(3)
        assert len(informer) == 3
    finally:
        informer.stop()


def test_periodic_resync_relists_without_spurious_events(
        cluster: DevCluster, v1: Any, start_informer: Callable[..., Informer]) -> None:
    rec = Recorder()
    informer = start_informer(v1.list_node, resync_period=0.2, **rec.handlers())
    wait_until(lambda: informer.relists >= 3)
    assert sorted(rec.snapshot()) == [("add", "n0"), ("add", "n1"), ("add", "n2")]


def test_transform_keeps_memory_bounded(cluster: DevCluster, v1: Any,
                                        start_informer: Callable[..., Informer]) -> None:
    def names_only(obj: Obj) -> Obj:
        return {"metadata": {"name": obj["metadata"]["name"],
                             "resourceVersion": obj["metadata"]["resourceVersion"]}}

    informer = start_informer(v1.list_node, transform=names_only)
    v1.patch_node("n0", {"metadata": {"labels": {"x": "y"}}})
    wait_until(lambda: (informer.get("n0") or {})["metadata"]["resourceVersion"]
               == cluster.store.resource_version)
    assert all(set(obj) == {"metadata"} for obj in informer.list())


def test_stop_is_quick_with_an_open_watch(cluster: DevCluster, v1: Any) -> None:
    informer = Informer(v1.list_node, watch_timeout=300).start()
    assert informer.wait_for_sync(3)
    wait_until(lambda: cluster.store.open_watches == 1)
    started = time.monotonic()
    informer.stop()
    assert time.monotonic() - started < 1.0
    assert informer._thread is not None and not informer._thread.is_alive()
    wait_until(lambda: cluster.store.open_watches == 0)


def test_survives_the_api_server_going_away(v1: Any, cluster: DevCluster) -> None:
    informer = Informer(v1.list_node, backoff=Backoff(initial=0.05, maximum=0.1)).start()
    try:
        assert informer.wait_for_sync(3)
        cluster.stop()
        time.sleep(0.3)  # several failed reconnects
        assert informer._thread is not None and informer._thread.is_alive()
        assert sorted(informer.keys()) == ["n0", "n1", "n2"]  # the cache is kept
    finally:
        informer.stop()


# --- bad input from the server ------------------------------------------------------------------

GARBAGE_WATCH = b"\n".join([
    b"{not json",
    b'"a string"',
    b'{"type": "ADDED"}',
    b'{"type": "ADDED", "object": {"metadata": {}}}',
    b'{"type": "WHATEVER", "object": {"metadata": {"name": "x"}}}',
    b'{"type": "ADDED", "object": {"metadata": {"name": "good", "resourceVersion": "9"}}}',
]) + b"\n"


@pytest.fixture
def garbage_url() -> Iterator[str]:
    """A server whose list is fine but whose watch streams junk, then one good event."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.args.get("watch"):
            time.sleep(0.05)
            body = GARBAGE_WATCH
        else:
            body = b'{"kind": "NodeList", "metadata": {"resourceVersion": "5"}, "items": [' \
                   b'{"metadata": {"name": "n0", "resourceVersion": "5"}}, "junk", {}]}'
        return Response(body, content_type="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/nodes"
    server.shutdown()
    thread.join(2)
    server.server_close()


def test_bad_watch_input_is_logged_and_skipped(garbage_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    pool = urllib3.PoolManager()

    def list_nodes(**kwargs: Any) -> Any:
        query = "?watch=1" if kwargs.get("watch") else ""
        return pool.request("GET", garbage_url + query, preload_content=False)

    informer = Informer(list_nodes, name="garbage", backoff=Backoff(0.05, 0.1)).start()
    try:
        assert informer.wait_for_sync(3)
        wait_until(lambda: informer.get("good") is not None)
        assert informer._thread is not None and informer._thread.is_alive()
        assert sorted(informer.keys()) == ["good", "n0"]
        assert informer.resource_version == "9"
        assert "malformed watch line" in caplog.text
        assert "without metadata.name" in caplog.text
    finally:
        informer.stop()
        pool.clear()


def test_object_key() -> None:
    assert object_key({"metadata": {"name": "p", "namespace": "ns"}}) == "ns/p"
    assert object_key({"metadata": {"name": "n"}}) == "n"
    assert key_for("p", "ns") == "ns/p" and key_for("n") == "n"


def test_backoff_grows_with_jitter_and_is_bounded() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0)
    delays = [backoff.next() for _ in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert 0.1 <= delays[1] <= 0.2
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    backoff.reset()
    assert backoff.next() <= 0.1


def test_informer_lists_in_pages(tmp_path) -> None:
    """A relist pages through the list (small pages here) and still sees every object."""
    from kubernetes import client

    from spotpack.devcluster import DevCluster
    from spotpack.kube.config import api_client_for_url
    from spotpack.kube.informer import Informer

    with DevCluster() as cluster:
        for i in range(25):
            cluster.store.create("nodes", {"metadata": {"name": f"n{i:02d}"}})
        api = api_client_for_url(cluster.url)
        seen: list[str] = []
        informer = Informer(client.CoreV1Api(api).list_node, page_size=4, on_add=lambda o: seen.append(o["metadata"]["name"])).start()
        try:
            assert informer.wait_for_sync(10)
            assert sorted(seen) == [f"n{i:02d}" for i in range(25)]
            assert len(informer.list()) == 25
        finally:
            informer.stop()
            api.close()


def test_shutdown_unblocks_a_quiet_watch() -> None:
    """_shutdown ends a read blocked on a quiet watch at once (urllib3 2 detaches the socket
    from its connection, so the connection's socket cannot be used for it)."""
    import threading
    import time

    from kubernetes import client

    from spotpack.devcluster import DevCluster
    from spotpack.kube.config import api_client_for_url
    from spotpack.kube.informer import _shutdown

    with DevCluster(bookmark_interval=60) as cluster:
        api = api_client_for_url(cluster.url)
        resp = client.CoreV1Api(api).list_node(watch=True, _preload_content=False, timeout_seconds=60)
        ended = threading.Event()

        def read() -> None:
            try:
                for _ in resp.stream(1024):
                    pass
            except Exception:
                pass
            ended.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            time.sleep(0.3)
            assert not ended.is_set()
            _shutdown(resp)
            assert ended.wait(1.0), "the blocked read did not end"
        finally:
            reader.join(5)
            resp.release_conn()
            api.close()
