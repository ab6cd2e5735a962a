"""The provisioner against the in-memory API server over HTTP, with the local (kwok-like) cloud.

Everything goes through the kubernetes client as in production: informers
list and watch, nodes are written by the local provider, taints, cordons,
evictions, Events and the Lease through the API. There is no scheduler in the
dev cluster, so the tests bind pods themselves where one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from provisioner.app import Service, build_service
from provisioner.fakes import pod_manifest
from provisioner.settings import ProvisionerSettings
from spotpack.cloud.fake import FakeNotices
from spotpack.devcluster import DevCluster
from spotpack.devcluster.selectors import parse_label_selector
from spotpack.kube import api_client_for_url

pytestmark = pytest.mark.integration

LEASE_NS = "spotpack-system"
MANAGED = parse_label_selector("spotpack.io/managed=true")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def settings(**overrides: Any) -> ProvisionerSettings:
    base: dict[str, Any] = {
        "cloud": "local",
        "region": "us-east-1",
        "zones": ["us-east-1a", "us-east-1b"],
        "cluster_name": "itest",
        # Long enough that pods created together are seen in one batch even when the
        # machine is busy (a later pod would land on the registered node's room).
        "batch_idle_seconds": 1.0,
        "batch_max_seconds": 3.0,
        "tick_seconds": 0.05,
        "scan_seconds": 0.1,
        "empty_node_delay_seconds": 1.0,
        "registration_timeout_seconds": 30.0,
        "drain_retry_seconds": 0.2,
        "lease_namespace": LEASE_NS,
        "lease_duration_seconds": 2.0,
        "renew_deadline_seconds": 1.5,
        "retry_period_seconds": 0.2,
        "host": "127.0.0.1",
        "port": 0,
        "identity": "replica-a",
    }
    base.update(overrides)
    return ProvisionerSettings(**base)


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    # Frequent bookmarks keep the watches lively; stop() no longer depends on them.
    with DevCluster(bookmark_interval=0.2) as dev:
        dev.store.create("namespaces", {"metadata": {"name": LEASE_NS}})
        yield dev


class Running:
    """Services started in a test, stopped (and their clients closed) at the end."""

    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.services: list[Service] = []
        self.clients: list[Any] = []

    def start(self, **overrides: Any) -> Service:
        notices = overrides.pop("notices", None)
        client = api_client_for_url(self.cluster.url)
        self.clients.append(client)
        service = build_service(settings(**overrides), api_client=client, notices=notices)
        if service.pump is not None:
            service.pump.idle = 0.05
        self.services.append(service)
        return service.start()

    def stop(self) -> None:
        for service in self.services:
            service.stop()
        for client in self.clients:
            client.close()


@pytest.fixture
def running(cluster: DevCluster) -> Iterator[Running]:
    handle = Running(cluster)
    yield handle
    handle.stop()


def nodes(cluster: DevCluster) -> list[dict[str, Any]]:
    items, _ = cluster.store.list("nodes", selector=MANAGED)
    return items


def events(cluster: DevCluster, name: str, reason: str) -> list[dict[str, Any]]:
    items, _ = cluster.store.list("events")
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


def pending(cluster: DevCluster, name: str, **kw: Any) -> None:
    """A pod the scheduler found no room for (status written as the scheduler would)."""
    cluster.store.create("pods", pod_manifest(name, **kw))


def pod_names(cluster: DevCluster) -> set[str]:
    items, _ = cluster.store.list("pods")
    return {p["metadata"]["name"] for p in items}


def one_node(cluster: DevCluster) -> dict[str, Any]:
    found = wait_for(lambda: nodes(cluster), "a node registered")
    assert len(found) == 1, [n["metadata"]["name"] for n in found]
    return found[0]


def test_unschedulable_pods_get_a_node_with_our_labels_and_an_event(
    cluster: DevCluster, running: Running
) -> None:
    service = running.start()
    wait_for(service.ready, "caches synced")
    for i in range(3):
        pending(cluster, f"exec-{i}", cpu="250m", memory="256Mi", capacity="spot",
                labels={"spark-app-selector": "spark-1", "spark-role": "executor"})  # fmt: skip
    node = one_node(cluster)
    labels = node["metadata"]["labels"]
    assert labels["spotpack.io/managed"] == "true"
    assert labels["karpenter.sh/capacity-type"] == "spot"
    assert labels["topology.kubernetes.io/zone"] in ("us-east-1a", "us-east-1b")
    claim = labels["spotpack.io/claim"]
    instance_type = labels["node.kubernetes.io/instance-type"]

    for i in range(3):
        (nominated,) = wait_for(lambda i=i: events(cluster, f"exec-{i}", "Nominated"), "pod event")
        message = nominated["message"]
        assert f"a new {instance_type} spot node" in message and claim in message
        assert "$" in message and "/h" in message
    name = node["metadata"]["name"]
    (launched,) = wait_for(lambda: events(cluster, name, "Launched"), "node event")
    assert "3 pods" in launched["message"] and launched["metadata"]["namespace"] == "default"

    # The claim is ready; the pods are still pending (no scheduler here), and the
    # planner counts the new node's room for them: no second node.
    time.sleep(0.5)
    assert len(nodes(cluster)) == 1
    status = service.controller.describe()
    assert [c["phase"] for c in status["claims"]] == ["ready"]


def test_an_empty_node_is_removed_after_the_delay_but_not_while_a_job_pod_runs(
    cluster: DevCluster, running: Running
) -> None:
    running.start(empty_node_delay_seconds=1.0)
    pending(cluster, "web", cpu="250m", memory="256Mi")
    name = one_node(cluster)["metadata"]["name"]
    cluster.store.bind("default", "web", name)  # the scheduler's part
    job = pod_manifest("job", node=name, pending=False, owner="Job", cpu="100m")
    cluster.store.create("pods", job)
    cluster.store.delete("pods", "web", "default")
    time.sleep(2.5)  # well past the delay: the Job pod keeps the node
    assert [n["metadata"]["name"] for n in nodes(cluster)] == [name]
    cluster.store.delete("pods", "job", "default")
    wait_for(lambda: not nodes(cluster), "the empty node removed", timeout=10)
    (event,) = events(cluster, name, "ScaleDown")
    assert "empty" in event["message"]


def test_an_interruption_taints_replaces_and_drains_respecting_the_budget(
    cluster: DevCluster, running: Running
) -> None:
    notices = FakeNotices()
    service = running.start(notices=notices)
    for name in ("a", "b"):
        pending(cluster, name, cpu="250m", memory="256Mi")
    old = one_node(cluster)
    old_name = old["metadata"]["name"]
    instance_id = old["metadata"]["annotations"]["spotpack.io/instance-id"]
    for name in ("a", "b"):
        cluster.store.bind("default", name, old_name)
    wait_for(lambda: service.controller.describe()["claims"][0]["phase"] == "ready", "ready")

    cluster.store.refuse_evictions()  # a PodDisruptionBudget: 429 for now
    notices.interrupt(instance_id, "spot-interruption")

    def tainted() -> bool:
        node = cluster.store.get("nodes", old_name)
        return any(t["key"] == "spotpack.io/interruption" for t in node["spec"].get("taints") or [])

    wait_for(tainted, "the interrupted node tainted")
    taints = cluster.store.get("nodes", old_name)["spec"]["taints"]
    assert {
        "key": "spotpack.io/interruption",
        "value": "spot-interruption",
        "effect": "NoSchedule",
    } in taints
    replacement = wait_for(
        lambda: [n for n in nodes(cluster) if n["metadata"]["name"] != old_name], "a replacement"
    )
    old_offering = (
        old["metadata"]["labels"]["node.kubernetes.io/instance-type"],
        old["metadata"]["labels"]["topology.kubernetes.io/zone"],
    )
    new_labels = replacement[0]["metadata"]["labels"]
    assert (
        new_labels["node.kubernetes.io/instance-type"],
        new_labels["topology.kubernetes.io/zone"],
    ) != old_offering
    wait_for(
        lambda: service.controller.parts.metrics.evictions.labels("blocked")._value.get() >= 4,
        "retries",
    )
    assert {"a", "b"} <= pod_names(cluster)  # the budget held them
    assert notices.acked  # the notice was handled

    cluster.store.refuse_evictions(False)
    wait_for(lambda: not ({"a", "b"} & pod_names(cluster)), "pods evicted")
    wait_for(
        lambda: old_name not in {n["metadata"]["name"] for n in nodes(cluster)}, "old node gone"
    )
    (event,) = events(cluster, old_name, "Interrupted")
    assert replacement[0]["metadata"]["labels"]["spotpack.io/claim"] in event["message"]


def test_two_replicas_with_leader_election_only_one_acts(
    cluster: DevCluster, running: Running
) -> None:
    first = running.start(identity="replica-a")
    wait_for(first.is_leader, "replica-a leads")
    second = running.start(identity="replica-b")
    wait_for(second.ready, "replica-b synced")
    for i in range(3):
        pending(cluster, f"p{i}", cpu="250m", memory="256Mi")
    name = one_node(cluster)["metadata"]["name"]
    for i in range(3):
        cluster.store.bind("default", f"p{i}", name)
    time.sleep(0.5)
    assert len(nodes(cluster)) == 1
    assert len(first.controller.book) == 1 and len(second.controller.book) == 0
    assert first.is_leader() and not second.is_leader()
    lease = cluster.store.get("leases", "spotpack-provisioner", LEASE_NS)
    assert lease["spec"]["holderIdentity"] == "replica-a"

    first.stop()  # releases the lease: the other takes over at once
    wait_for(second.is_leader, "replica-b took over", timeout=5)
    pending(cluster, "late", cpu="3", memory="4Gi")  # does not fit the first node
    wait_for(lambda: len(nodes(cluster)) == 2, "replica-b launched")
    assert len(second.controller.book) >= 1
    lease = cluster.store.get("leases", "spotpack-provisioner", LEASE_NS)
    assert lease["spec"]["holderIdentity"] == "replica-b"
    assert lease["spec"]["leaseTransitions"] == 1
