"""Interruption notices: the decision table, then taint -> replacement -> drain in the loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.decide import decide_notice, interruption_taint, with_taint
from provisioner.fakes import Harness, harness, node_manifest, pod_manifest
from provisioner.lifecycle import Claim, Phase
from provisioner.views import Snapshot
from spotpack.capacity import SCHEMES
from spotpack.cloud.base import InterruptionNotice

T0 = 1_700_000_000.0
NOW = datetime.fromtimestamp(T0, UTC)
SCHEME = SCHEMES["karpenter"]


def notice(
    kind: Any, *, deadline: datetime | None = NOW + timedelta(seconds=120)
) -> InterruptionNotice:
    return InterruptionNotice(kind, "i-1", NOW, deadline, "r-1", detail="stopping")


def world() -> Snapshot:
    node = node_manifest("n1", instance_id="i-1", instance_type="m5.large", zone="us-east-1a")
    pods = [
        pod_manifest("web", node="n1", pending=False, owner="ReplicaSet"),
        pod_manifest("job", node="n1", pending=False, owner="Job"),
        pod_manifest("ds", node="n1", pending=False, owner="DaemonSet"),
        pod_manifest("done", node="n1", pending=False, phase="Succeeded"),
    ]
    return Snapshot.build([node], pods, SCHEME)


@pytest.mark.parametrize(
    ("kind", "deadline", "drain", "delete_now", "block", "want_deadline"),
    [
        ("spot-interruption", NOW + timedelta(seconds=120), True, False, True, T0 + 120),
        ("rebalance", None, True, False, True, T0 + 300),
        ("scheduled-change", NOW + timedelta(hours=2), True, False, False, T0 + 7200),
        ("state-change", NOW, False, True, False, T0),
    ],
)
def test_decision_for_a_known_node(
    kind: Any,
    deadline: datetime | None,
    drain: bool,
    delete_now: bool,
    block: bool,
    want_deadline: float,
) -> None:
    snap = world()
    node = snap.nodes["n1"]
    plan = decide_notice(
        notice(kind, deadline=deadline), node, snap.on_node("n1"), None, now=T0, window=300
    )
    assert plan.node == "n1"
    assert plan.taint == {"key": "spotpack.io/interruption", "value": kind, "effect": "NoSchedule"}
    # Every running pod moves (the node goes away whatever the pods are), except the
    # DaemonSet's, and the finished one holds nothing.
    assert plan.replace == ("default/web", "default/job")
    assert plan.drain == (plan.replace if drain else ())
    assert plan.delete_node_now is delete_now
    assert plan.avoid == ("m5.large", "us-east-1a", "spot")
    assert plan.block == (plan.avoid if block else None)
    assert plan.deadline == want_deadline


def test_a_notice_for_an_in_flight_claim_releases_it() -> None:
    claim = Claim("c-1", "i-1", "m5.large", "us-east-1a", "spot", T0, pods=frozenset({"default/a"}))
    plan = decide_notice(notice("spot-interruption"), None, (), claim, now=T0, window=120)
    assert plan.release_claim == "c-1" and plan.block == ("m5.large", "us-east-1a", "spot")
    assert plan.taint is None and not plan.ignored


def test_a_notice_about_nothing_we_know_is_ignored() -> None:
    ready = Claim("c-1", "i-1", "m5.large", "us-east-1a", "spot", T0, phase=Phase.READY)
    assert decide_notice(notice("rebalance"), None, (), None, now=T0, window=120).ignored
    assert decide_notice(notice("rebalance"), None, (), ready, now=T0, window=120).ignored


def test_taints_are_added_once_and_updated_in_place() -> None:
    other = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
    ours = interruption_taint("rebalance")
    added = with_taint([other], ours)
    assert added == [other, ours]
    assert with_taint(added, ours) is None
    changed = with_taint(added, interruption_taint("spot-interruption"))
    assert changed == [other, {**ours, "value": "spot-interruption"}]


# --- in the loop ------------------------------------------------------------------------------


def running_node(h: Harness, *pods: str) -> Any:
    """Launch a node for ``pods``, register it and bind them there (as the scheduler would)."""
    for name in pods:
        h.controller.observe_pod(h.cluster.add_pod(pod_manifest(name, cpu="250m", memory="256Mi")))
    h.tick(1.5)
    (instance,) = h.live()
    h.register(instance.instance_id)
    for name in pods:
        h.cluster.bind(f"default/{name}", instance.node_name)
    h.tick(1)
    return instance


def deliver(h: Harness, instance_id: str, kind: Any = "spot-interruption") -> InterruptionNotice:
    sent = h.notices.interrupt(instance_id, kind)
    h.controller.submit(h.notices.receive())
    return sent


def test_taint_then_replacement_then_drain_then_removal() -> None:
    h = harness(drain_retry=2.0)
    h.tick()
    old = running_node(h, "a", "b")
    h.cluster.refuse = lambda pod: pod["metadata"]["name"] == "b"  # a PDB holds b for now
    sent = deliver(h, old.instance_id)
    h.tick(0.1)

    # 1. tainted, with our key and the kind as value
    taints = h.cluster.nodes_by_name[old.node_name]["spec"]["taints"]
    assert taints == [
        {"key": "spotpack.io/interruption", "value": "spot-interruption", "effect": "NoSchedule"}
    ]
    # 2. the replacement launched at once, not on the interrupted offering
    replacement = [i for i in h.live() if i.instance_id != old.instance_id]
    assert len(replacement) == 1
    assert (replacement[0].instance_type, replacement[0].zone) != (old.instance_type, old.zone)
    assert h.controller.parts.cache.blocked(old.instance_type, old.zone, old.capacity)
    new_claim = h.controller.book.by_instance(replacement[0].instance_id)
    assert new_claim is not None and new_claim.pods == {"default/a", "default/b"}
    # 3. draining: a is evicted, b refused and retried
    assert "default/a" not in h.cluster.pods_by_key
    assert h.cluster.evictions == [("default", "a"), ("default", "b")]
    assert h.notices.acked == [sent]
    (event,) = h.cluster.events_about(old.node_name, "Interrupted")
    assert new_claim.claim_id in event["message"]

    h.tick(1)  # before the retry time
    assert len(h.cluster.evictions) == 2
    h.tick(1.5)
    assert h.cluster.evictions[-1] == ("default", "b")
    assert old.node_name in h.cluster.nodes_by_name  # still draining
    h.cluster.refuse = None
    h.tick(5)
    assert "default/b" not in h.cluster.pods_by_key
    # 4. drained: the instance terminated, the node deleted, the claim forgotten
    assert h.cloud.instances[old.instance_id].state == "terminated"
    assert old.node_name in h.cluster.deleted_nodes
    assert h.controller.book.by_instance(old.instance_id) is None
    assert h.controller.parts.metrics.interruptions.labels("spot-interruption")._value.get() == 1


def test_the_drain_gives_up_at_the_deadline() -> None:
    h = harness(drain_retry=2.0)
    h.tick()
    old = running_node(h, "a")
    h.cluster.refuse = lambda pod: True
    deliver(h, old.instance_id)
    for _ in range(60):
        h.tick(2)
        if old.node_name in h.cluster.deleted_nodes:
            break
    assert 120 <= h.clock.now - T0 <= 130
    assert "default/a" in h.cluster.pods_by_key  # never evicted: the budget said no
    assert h.cloud.instances[old.instance_id].state == "terminated"


def test_replaced_pods_fill_the_replacement_once_evicted() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    deliver(h, old.instance_id)
    h.tick(0.1)
    replacement = [i for i in h.live() if i.instance_id != old.instance_id]
    assert len(replacement) == 1
    # The controller recreates the evicted pod under a new name: it is planned onto
    # the in-flight replacement, not onto yet another node.
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a-2", cpu="250m", memory="256Mi")))
    h.tick(1.5)
    assert len([i for i in h.live() if i.instance_id != old.instance_id]) == 1
    claim = h.controller.book.by_instance(replacement[0].instance_id)
    assert claim is not None and "default/a-2" in claim.pods


def test_a_repeated_notice_is_acknowledged_and_changes_nothing() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    h.cluster.refuse = lambda pod: True
    deliver(h, old.instance_id)
    h.tick(0.1)
    launches = len(h.launches())
    again = deliver(h, old.instance_id)
    h.tick(0.1)
    assert len(h.launches()) == launches
    assert again in h.notices.acked


def test_a_notice_is_not_acknowledged_when_the_taint_cannot_be_written() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    real = h.cluster.read_node

    def down(name: str) -> Any:
        from spotpack.errors import ClusterUnavailable

        raise ClusterUnavailable("the API server is down")

    h.cluster.read_node = down  # type: ignore[method-assign]
    deliver(h, old.instance_id)
    h.tick(0.1)
    assert h.notices.acked == []
    assert h.cluster.evictions == []
    h.cluster.read_node = real  # type: ignore[method-assign]
    h.notices.redeliver()
    h.controller.submit(h.notices.receive())
    h.tick(0.1)
    assert len(h.notices.acked) == 1


def test_a_stopping_instance_loses_its_node_at_once() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    deliver(h, old.instance_id, "state-change")
    h.tick(0.1)
    assert old.node_name in h.cluster.deleted_nodes
    assert h.cluster.evictions == []
    assert len([i for i in h.live() if i.instance_id != old.instance_id]) == 1


def test_a_follower_leaves_notices_unacknowledged() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    h.leader[0] = False
    deliver(h, old.instance_id)
    h.tick(0.1)
    assert h.notices.acked == [] and h.cluster.patches == []


def test_a_node_we_did_not_launch_is_tainted_and_drained_but_not_removed() -> None:
    h = harness()
    h.tick()
    h.cluster.add_node(node_manifest("theirs", managed=False, instance_id="i-theirs"))
    h.cluster.add_pod(pod_manifest("web", node="theirs", pending=False, cpu="250m", memory="256Mi"))
    h.tick(1)
    deliver(h, "i-theirs")
    h.tick(0.1)
    assert (
        h.cluster.nodes_by_name["theirs"]["spec"]["taints"][0]["key"] == "spotpack.io/interruption"
    )
    assert h.cluster.evictions == [("default", "web")]
    assert h.cluster.deleted_nodes == [] and h.cloud.calls_to("terminate") == []
    assert h.controller.interruptions.draining() == frozenset()


def test_a_new_leader_resumes_the_drain_of_a_tainted_node() -> None:
    h = harness()
    h.tick()
    old = running_node(h, "a")
    h.cluster.refuse = lambda pod: True
    deliver(h, old.instance_id)
    h.tick(0.1)
    assert old.node_name in h.controller.interruptions.draining()

    # The leader dies; another replica (empty memory) takes over.
    successor = harness(clock=h.clock, cluster=h.cluster, cloud=h.cloud, notice_window=30.0)
    successor.tick(1)
    assert successor.controller.interruptions.draining() == {old.node_name}
    h.cluster.refuse = None
    successor.tick(3)  # the next retry
    assert "default/a" not in h.cluster.pods_by_key
    assert old.node_name in h.cluster.deleted_nodes
    assert h.cloud.instances[old.instance_id].state == "terminated"


def test_a_node_whose_instance_vanished_is_deleted() -> None:
    h = harness(orphan_grace=60.0, gc_interval=10.0)
    h.tick()
    old = running_node(h, "a")
    h.cluster.edit_node(
        old.node_name,
        lambda node: node["metadata"].update(creationTimestamp="2023-11-14T22:13:20Z"),
    )
    h.cloud.set_state(old.instance_id, "terminated")  # the cloud took it; no notice reached us
    h.tick(30)
    assert h.cluster.deleted_nodes == []  # the node is younger than the grace period
    h.tick(31)
    assert h.cluster.deleted_nodes == [old.node_name]
    assert h.controller.book.by_instance(old.instance_id) is None
    (event,) = h.cluster.events_about(old.node_name, "InstanceGone")
    assert old.instance_id in event["message"]
