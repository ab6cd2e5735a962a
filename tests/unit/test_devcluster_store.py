"""The dev cluster's store, selectors, patches and routing, without HTTP."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from spotpack.devcluster.errors import ApiError
from spotpack.devcluster.faults import Fault, FaultPlan
from spotpack.devcluster.history import Change, History, HistoryExpiredError
from spotpack.devcluster.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from spotpack.devcluster.routing import parse_path
from spotpack.devcluster.selectors import parse_field_selector, parse_label_selector
from spotpack.devcluster.store import Store
from spotpack.errors import ConfigError

Obj = dict[str, Any]


def pod(
    name: str,
    ns: str = "default",
    node: str = "",
    labels: dict[str, str] | None = None,
    phase: str = "Pending",
) -> Obj:
    spec: Obj = {"containers": [{"name": "main", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


@pytest.fixture
def store() -> Store:
    return Store(history_size=100)


# --- create / get / list -------------------------------------------------------------------


def test_create_stamps_system_fields_and_versions_increase(store: Store) -> None:
    a = store.create("pods", pod("a"))
    b = store.create("pods", pod("b"))
    assert a["metadata"]["uid"] and a["metadata"]["uid"] != b["metadata"]["uid"]
    assert a["metadata"]["creationTimestamp"].endswith("Z")
    assert rv(b) == rv(a) + 1
    assert store.resource_version == str(rv(b))


def test_generate_name_gets_a_unique_suffix(store: Store) -> None:
    names = {
        store.create("pods", {**pod(""), "metadata": {"generateName": "web-"}})["metadata"]["name"]
        for _ in range(20)
    }
    assert len(names) == 20
    assert all(n.startswith("web-") and len(n) == len("web-") + 5 for n in names)


def test_create_twice_is_already_exists(store: Store) -> None:
    store.create("nodes", {"metadata": {"name": "n1"}})
    with pytest.raises(ApiError) as err:
        store.create("nodes", {"metadata": {"name": "n1"}})
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")


@pytest.mark.parametrize("name", ["UPPER", "has_underscore", "-dash", "a" * 254, ""])
def test_invalid_names_are_422(store: Store, name: str) -> None:
    with pytest.raises(ApiError) as err:
        store.create("nodes", {"metadata": {"name": name}})
    assert err.value.code == 422


def test_api_create_needs_an_existing_namespace_but_direct_create_makes_it(store: Store) -> None:
    with pytest.raises(ApiError) as err:
        store.create("pods", pod("a", ns="team-a"), via_api=True)
    assert err.value.code == 404
    store.create("pods", pod("a", ns="team-a"))
    assert store.get("namespaces", "team-a")["status"]["phase"] == "Active"


def test_api_create_resets_pod_status_direct_create_keeps_it(store: Store) -> None:
    via_api = store.create("pods", pod("a", phase="Running"), via_api=True)
    direct = store.create("pods", pod("b", phase="Running"))
    assert via_api["status"] == {"phase": "Pending"}
    assert direct["status"]["phase"] == "Running"
    assert via_api["spec"]["schedulerName"] == "default-scheduler"


def test_returned_objects_are_copies(store: Store) -> None:
    created = store.create("nodes", {"metadata": {"name": "n1"}})
    created["metadata"]["labels"] = {"mutated": "yes"}
    store.get("nodes", "n1")["metadata"]["name"] = "changed"
    items, _ = store.list("nodes")
    items[0]["spec"] = {"unschedulable": True}
    assert store.get("nodes", "n1")["metadata"]["name"] == "n1"
    assert "labels" not in store.get("nodes", "n1")["metadata"]
    assert "spec" not in store.get("nodes", "n1")


def test_list_filters_by_namespace_and_returns_current_version(store: Store) -> None:
    store.create("pods", pod("a", ns="x"))
    store.create("pods", pod("b", ns="y"))
    items, version = store.list("pods", "x")
    assert [p["metadata"]["name"] for p in items] == ["a"]
    assert version == store.resource_version


def test_get_missing_is_404_with_kube_message(store: Store) -> None:
    with pytest.raises(ApiError) as err:
        store.get("pods", "nope", "default")
    assert err.value.code == 404
    assert err.value.message == 'pods "nope" not found'


# --- updates -------------------------------------------------------------------------------


def test_replace_with_stale_version_is_409(store: Store) -> None:
    first = store.create("nodes", {"metadata": {"name": "n1"}})
    store.patch("nodes", "n1", {"metadata": {"labels": {"a": "b"}}}, MERGE_PATCH)
    with pytest.raises(ApiError) as err:
        store.replace("nodes", "n1", first)
    assert (err.value.code, err.value.reason) == (409, "Conflict")
    assert "the object has been modified" in err.value.message


def test_replace_with_current_version_succeeds_and_keeps_uid(store: Store) -> None:
    node = store.create("nodes", {"metadata": {"name": "n1"}})
    node["metadata"]["labels"] = {"pool": "gpu"}
    node["metadata"]["uid"] = "forged"
    updated = store.replace("nodes", "n1", node)
    assert updated["metadata"]["labels"] == {"pool": "gpu"}
    assert updated["metadata"]["uid"] != "forged"
    assert rv(updated) == rv(node) + 1


def test_noop_update_writes_nothing(store: Store) -> None:
    node = store.create("nodes", {"metadata": {"name": "n1", "labels": {"a": "b"}}})
    again = store.patch("nodes", "n1", {"metadata": {"labels": {"a": "b"}}}, MERGE_PATCH)
    assert rv(again) == rv(node)
    assert store.resource_version == str(rv(node))


def test_api_update_keeps_status_and_status_update_keeps_spec(store: Store) -> None:
    store.create("pods", pod("a", phase="Running"))
    patched = store.patch(
        "pods",
        "a",
        {"status": {"phase": "Failed"}, "metadata": {"labels": {"x": "y"}}},
        MERGE_PATCH,
        "default",
        via_api=True,
    )
    assert patched["status"]["phase"] == "Running"
    assert patched["metadata"]["labels"] == {"x": "y"}
    status = store.patch(
        "pods",
        "a",
        {"status": {"phase": "Succeeded"}, "spec": {"activeDeadlineSeconds": 5}},
        MERGE_PATCH,
        "default",
        subresource="status",
        via_api=True,
    )
    assert status["status"]["phase"] == "Succeeded"
    assert "activeDeadlineSeconds" not in status["spec"]


def test_api_update_cannot_move_a_pod_to_a_node(store: Store) -> None:
    store.create("pods", pod("a"))
    with pytest.raises(ApiError) as err:
        store.patch("pods", "a", {"spec": {"nodeName": "n1"}}, MERGE_PATCH, via_api=True)
    assert err.value.code == 422
    tolerated = store.patch(
        "pods", "a", {"spec": {"tolerations": [{"key": "k"}]}}, MERGE_PATCH, via_api=True
    )
    assert tolerated["spec"]["tolerations"] == [{"key": "k"}]


def test_patch_with_stale_resource_version_is_409(store: Store) -> None:
    node = store.create("nodes", {"metadata": {"name": "n1"}})
    store.patch("nodes", "n1", {"metadata": {"labels": {"a": "1"}}}, MERGE_PATCH)
    with pytest.raises(ApiError) as err:
        store.patch(
            "nodes",
            "n1",
            {
                "metadata": {
                    "resourceVersion": node["metadata"]["resourceVersion"],
                    "labels": {"a": "2"},
                }
            },
            MERGE_PATCH,
        )
    assert err.value.code == 409


def test_patch_cannot_rename(store: Store) -> None:
    store.create("nodes", {"metadata": {"name": "n1"}})
    with pytest.raises(ApiError) as err:
        store.patch(
            "nodes", "n1", [{"op": "replace", "path": "/metadata/name", "value": "n2"}], JSON_PATCH
        )
    assert err.value.code == 400


def test_unknown_patch_type_is_415(store: Store) -> None:
    store.create("nodes", {"metadata": {"name": "n1"}})
    with pytest.raises(ApiError) as err:
        store.patch("nodes", "n1", {}, "application/apply-patch+yaml")
    assert err.value.code == 415


def test_failed_json_patch_is_422_and_changes_nothing(store: Store) -> None:
    before = store.create("nodes", {"metadata": {"name": "n1", "labels": {"a": "b"}}})
    ops = [
        {"op": "add", "path": "/metadata/labels/c", "value": "d"},
        {"op": "test", "path": "/metadata/labels/a", "value": "zzz"},
    ]
    with pytest.raises(ApiError) as err:
        store.patch("nodes", "n1", ops, JSON_PATCH)
    assert err.value.code == 422
    assert store.get("nodes", "n1") == before


# --- binding, eviction, delete ---------------------------------------------------------------


def test_bind_sets_node_and_condition_once(store: Store) -> None:
    store.create("pods", pod("a"))
    bound = store.bind("default", "a", "n1")
    assert bound["spec"]["nodeName"] == "n1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= bound["status"]["conditions"][
        0
    ].items()
    with pytest.raises(ApiError) as err:
        store.bind("default", "a", "n2")
    assert err.value.code == 409
    assert 'already assigned to node "n1"' in err.value.message
    assert store.get("pods", "a")["spec"]["nodeName"] == "n1"


def test_bind_missing_pod_is_404_and_wrong_uid_is_409(store: Store) -> None:
    with pytest.raises(ApiError) as missing:
        store.bind("default", "ghost", "n1")
    assert missing.value.code == 404
    store.create("pods", pod("a"))
    with pytest.raises(ApiError) as stale:
        store.bind("default", "a", "n1", pod_uid="another-incarnation")
    assert stale.value.code == 409


def test_eviction_deletes_unless_refused(store: Store) -> None:
    store.create("pods", pod("a"))
    store.create("pods", pod("b"))
    store.create("pods", pod("done", phase="Succeeded"))
    store.refuse_evictions(lambda p: p["metadata"]["name"] == "a")
    with pytest.raises(ApiError) as err:
        store.evict("default", "a")
    assert (err.value.code, err.value.reason) == (429, "TooManyRequests")
    store.evict("default", "b")
    store.refuse_evictions(True)
    store.evict("default", "done")  # terminal pods are never protected by a PDB
    names = {p["metadata"]["name"] for p in store.list("pods")[0]}
    assert names == {"a"}


def test_delete_preconditions_and_namespace_cascade(store: Store) -> None:
    store.create("pods", pod("a", ns="team"))
    store.create("configmaps", {"metadata": {"name": "c", "namespace": "team"}})
    with pytest.raises(ApiError) as err:
        store.delete("pods", "a", "team", preconditions={"uid": "wrong"})
    assert err.value.code == 409
    store.delete("namespaces", "team")
    assert store.list("pods", "team")[0] == []
    assert store.list("configmaps", "team")[0] == []


def test_delete_collection_by_selector(store: Store) -> None:
    store.create("pods", pod("a", labels={"app": "x"}))
    store.create("pods", pod("b", labels={"app": "y"}))
    deleted = store.delete_collection("pods", "default", parse_label_selector("app=x"))
    assert [p["metadata"]["name"] for p in deleted] == ["a"]
    assert [p["metadata"]["name"] for p in store.list("pods")[0]] == ["b"]


# --- watch ----------------------------------------------------------------------------------


def collect(store: Store, n: int, timeout: float = 2.0, **kwargs: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for kind, obj in store.watch(timeout=timeout, **kwargs):
        out.append((kind, obj["metadata"].get("name", obj["metadata"].get("resourceVersion"))))
        if len(out) >= n:
            break
    return out


def test_watch_replays_changes_after_a_version(store: Store) -> None:
    start = store.resource_version
    store.create("pods", pod("a"))
    store.create("nodes", {"metadata": {"name": "n1"}})
    store.bind("default", "a", "n1")
    store.delete("pods", "a")
    events = collect(store, 3, resource="pods", resource_version=start)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_version_starts_with_current_state(store: Store) -> None:
    store.create("nodes", {"metadata": {"name": "n1"}})
    store.create("nodes", {"metadata": {"name": "n2"}})
    assert sorted(collect(store, 2, resource="nodes")) == [("ADDED", "n1"), ("ADDED", "n2")]


def test_watch_with_selector_sees_objects_enter_and_leave(store: Store) -> None:
    start = store.resource_version
    store.create("pods", pod("a"))
    store.bind("default", "a", "n1")
    selector = parse_field_selector("spec.nodeName=", "pods")
    events = collect(store, 2, resource="pods", resource_version=start, selector=selector)
    assert events == [("ADDED", "a"), ("DELETED", "a")]


def test_watch_from_compacted_version_gets_410(store: Store) -> None:
    old = store.resource_version
    store.create("nodes", {"metadata": {"name": "n1"}})
    store.compact()
    kind, status = next(store.watch("nodes", resource_version=old, timeout=1))
    assert kind == "ERROR"
    assert (status["code"], status["reason"], status["kind"]) == (410, "Expired", "Status")


def test_history_overflow_expires_old_versions() -> None:
    store = Store(history_size=3, default_namespaces=False)
    for i in range(5):
        store.create("nodes", {"metadata": {"name": f"n{i}"}})
    kind, _ = next(store.watch("nodes", resource_version="1", timeout=1))
    assert kind == "ERROR"
    events = collect(store, 3, resource="nodes", resource_version="2")
    assert events == [("ADDED", "n2"), ("ADDED", "n3"), ("ADDED", "n4")]


def test_watch_bookmarks_carry_the_version_reached(store: Store) -> None:
    stream = store.open_watch(
        "nodes", resource_version=store.resource_version, bookmark_interval=0.05, timeout=0.3
    )
    store.create("pods", pod("a"))  # another resource still advances the cursor
    bookmarks = [obj for batch in stream for kind, obj in batch if kind == "BOOKMARK"]
    assert bookmarks, "no bookmark within the watch timeout"
    assert bookmarks[-1]["metadata"]["resourceVersion"] == store.resource_version
    assert bookmarks[-1]["kind"] == "Node"


def test_close_watches_ends_streams_promptly(store: Store) -> None:
    stream = store.open_watch("nodes", resource_version=store.resource_version, timeout=30)
    done = threading.Event()

    def consume() -> None:
        for _ in stream:
            pass
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.05)
    assert store.close_watches(abrupt=True) == 1
    assert done.wait(2)
    assert stream.dropped
    assert store.open_watches == 0


def test_watch_timeout_ends_the_stream(store: Store) -> None:
    started = time.monotonic()
    assert (
        list(store.open_watch("nodes", resource_version=store.resource_version, timeout=0.2)) == []
    )
    assert 0.15 < time.monotonic() - started < 2


def test_history_rejects_gaps_and_reports_expiry() -> None:
    history = History(2)
    history.append(Change(1, "ADDED", "nodes", "", {}))
    with pytest.raises(ValueError, match="does not follow"):
        history.append(Change(3, "ADDED", "nodes", "", {}))
    history.append(Change(2, "ADDED", "nodes", "", {}))
    history.append(Change(3, "ADDED", "nodes", "", {}))
    assert [c.rv for c in history.since(1, 10)] == [2, 3]
    with pytest.raises(HistoryExpiredError):
        history.since(0, 10)


# --- selectors ------------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "gpu": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db, cache)", False),
        ("app notin (db)", True),
        ("missing notin (db)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("gpu", True),
        ("gpu=", True),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app in (web), tier notin (back), !missing", True),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    obj = {"metadata": {"labels": LABELS}}
    assert parse_label_selector(selector).matches(obj) is matches


@pytest.mark.parametrize(
    "selector",
    ["app=(", "app in (a", "app in a)", "=x", "a,,b", "app=two words", "app notin", "bad key!=x"],
)
def test_malformed_label_selector_is_400(selector: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(selector)
    assert err.value.code == 400


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("spec.nodeName=", {"pending"}),
        ("spec.nodeName=n1", {"bound"}),
        ("spec.nodeName!=", {"bound"}),
        ("status.phase=Running", {"bound"}),
        ("status.phase!=Running", {"pending"}),
        ("metadata.name=bound", {"bound"}),
        ("metadata.namespace=default,spec.nodeName=n1", {"bound"}),
        ("metadata.namespace==other", set()),
    ],
)
def test_field_selector(selector: str, names: set[str]) -> None:
    pods = [pod("pending"), pod("bound", node="n1", phase="Running")]
    sel = parse_field_selector(selector, "pods")
    assert {p["metadata"]["name"] for p in pods if sel.matches(p)} == names


def test_field_selector_defaults_and_unsupported_fields() -> None:
    node = {"metadata": {"name": "n"}, "spec": {}}
    assert parse_field_selector("spec.unschedulable=false", "nodes").matches(node)
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.nodeName=x", "nodes")
    assert err.value.code == 400
    assert "field label not supported" in err.value.message


# --- patches --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1}, {"a": None}, {}),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}, {"a": {"b": 3, "c": 2}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ],
)
def test_merge_patch_rfc7386(target: Obj, patch: Obj, expected: Obj) -> None:
    assert merge_patch(target, patch) == expected


def test_strategic_merge_patch_merges_containers_by_name() -> None:
    target = {
        "spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
            "tolerations": [{"key": "x"}],
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}],
            "tolerations": [{"key": "y"}],
        }
    }
    result = strategic_merge_patch(target, patch)
    assert result["spec"]["containers"] == [
        {"name": "a", "image": "1"},
        {"name": "b", "image": "2"},
        {"name": "c", "image": "3"},
    ]
    assert result["spec"]["tolerations"] == [{"key": "y"}]  # no merge key: replaced
    assert target["spec"]["containers"][1]["image"] == "1"  # input untouched


def test_strategic_merge_patch_conditions_by_type_and_delete_directive() -> None:
    target = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ]
        },
        "spec": {"volumes": [{"name": "v1"}, {"name": "v2"}]},
    }
    patch = {
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {
            "volumes": [{"name": "v1", "$patch": "delete"}],
            "$setElementOrder/volumes": [{"name": "v2"}],
        },
    }
    result = strategic_merge_patch(target, patch)
    assert result["status"]["conditions"][0] == {"type": "Ready", "status": "True"}
    assert len(result["status"]["conditions"]) == 2
    assert result["spec"] == {"volumes": [{"name": "v2"}]}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/a/b", "value": 1}], {"a": {"b": 1}, "l": [1, 2]}),
        ([{"op": "add", "path": "/l/-", "value": 3}], {"a": {}, "l": [1, 2, 3]}),
        ([{"op": "add", "path": "/l/0", "value": 0}], {"a": {}, "l": [0, 1, 2]}),
        ([{"op": "remove", "path": "/l/1"}], {"a": {}, "l": [1]}),
        ([{"op": "replace", "path": "/a", "value": 5}], {"a": 5, "l": [1, 2]}),
        ([{"op": "move", "from": "/l", "path": "/a/l"}], {"a": {"l": [1, 2]}}),
        ([{"op": "copy", "from": "/l/0", "path": "/a/x"}], {"a": {"x": 1}, "l": [1, 2]}),
        ([{"op": "test", "path": "/l/0", "value": 1}], {"a": {}, "l": [1, 2]}),
        ([{"op": "add", "path": "/a/k~1v~0", "value": 1}], {"a": {"k/v~": 1}, "l": [1, 2]}),
    ],
)
def test_json_patch_rfc6902(ops: list[Obj], expected: Obj) -> None:
    assert json_patch({"a": {}, "l": [1, 2]}, ops) == expected


@pytest.mark.parametrize(
    "op",
    [
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "add", "path": "/l/9", "value": 1},
        {"op": "add", "path": "/l/01", "value": 1},
        {"op": "test", "path": "/t", "value": 1},  # true is not 1 in JSON
        {"op": "move", "from": "/a", "path": "/a/inner"},
        {"op": "add", "path": "no-slash", "value": 1},
        {"op": "add", "path": "/a/b"},
        {"op": "frobnicate", "path": "/a"},
        "not-an-object",
    ],
)
def test_json_patch_errors(op: Any) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": {}, "l": [1, 2], "t": True}, [op])


def test_strategic_patch_via_store_keeps_other_containers() -> None:
    store = Store()
    store.create("pods", pod("a"))
    store.patch(
        "pods",
        "a",
        {"spec": {"containers": [{"name": "side", "image": "x"}]}},
        STRATEGIC_MERGE_PATCH,
    )
    names = [c["name"] for c in store.get("pods", "a")["spec"]["containers"]]
    assert names == ["main", "side"]


# --- routing, faults, seeding ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/nodes", ("nodes", "", "", "")),
        ("/api/v1/nodes/n1/status", ("nodes", "", "n1", "status")),
        ("/api/v1/pods", ("pods", "", "", "")),
        ("/api/v1/namespaces/ns1", ("namespaces", "", "ns1", "")),
        ("/api/v1/namespaces/ns1/status", ("namespaces", "", "ns1", "status")),
        ("/api/v1/namespaces/ns1/pods/p/binding", ("pods", "ns1", "p", "binding")),
        ("/api/v1/namespaces/ns1/pods/p/eviction/", ("pods", "ns1", "p", "eviction")),
        ("/apis/coordination.k8s.io/v1/namespaces/x/leases/l", ("leases", "x", "l", "")),
        ("/api/v1/pods/p", None),
        ("/api/v1/namespaces/ns1/leases", None),
        ("/apis/coordination.k8s.io/v1/nodes", None),
        ("/api/v1/namespaces/ns1/pods/p/exec", None),
        ("/api/v1/nodes//status", None),
        ("/api/v2/nodes", None),
        ("/nonsense", None),
    ],
)
def test_parse_path(path: str, expected: tuple[str, str, str, str] | None) -> None:
    route = parse_path(path)
    if expected is None:
        assert route is None
    else:
        assert route is not None
        assert (route.rtype.plural, route.namespace, route.name, route.subresource) == expected


def test_bindings_collection_route() -> None:
    route = parse_path("/api/v1/namespaces/ns1/bindings")
    assert route is not None and route.bindings and route.label == "pods/binding"


def test_fault_plan_matches_wildcards_and_counts_down() -> None:
    plan = FaultPlan()
    plan.add(Fault("pods/binding", "create", code=500, times=2))
    plan.add(Fault("*", "list", delay=0.1))
    assert plan.take("pods", "create") is None
    assert plan.take("pods/binding", "create") is not None
    assert plan.take("pods/binding", "create") is not None
    assert plan.take("pods/binding", "create") is None
    fault = plan.take("nodes", "list")
    assert fault is not None and fault.delay == 0.1
    with pytest.raises(ValueError, match="unknown verb"):
        plan.add(Fault("pods", "frob"))


SEED = """
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: gpu-1, labels: {karpenter.sh/capacity-type: spot}}
- apiVersion: v1
  kind: Pod
  metadata: {name: driver, namespace: team-a, creationTimestamp: 2024-01-02T03:04:05Z}
  spec: {containers: [{name: c, image: x}]}
  status: {phase: Running}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: kube-system}
---
"""


def test_load_yaml_seeds_every_document(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    store = Store()
    created = store.load_yaml(path)
    assert [o["kind"] for o in created] == ["Namespace", "Node", "Pod", "Lease"]
    assert store.get("pods", "driver", "team-a")["status"]["phase"] == "Running"
    assert store.get("nodes", "gpu-1")["metadata"]["labels"] == {
        "karpenter.sh/capacity-type": "spot"
    }


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n",
        "- just\n- a list\n",
        "key: [unclosed\n",
    ],
)
def test_bad_seed_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        Store().load_yaml(path)


def test_concurrent_writers_get_distinct_versions() -> None:
    store = Store(history_size=10_000)

    def writer(prefix: str) -> None:
        for i in range(200):
            store.create("configmaps", {"metadata": {"name": f"{prefix}-{i}"}})

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    items, _ = store.list("configmaps")
    versions = [rv(i) for i in items]
    assert len(items) == 800
    assert len(set(versions)) == 800
