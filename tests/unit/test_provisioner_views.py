"""Reading pods and nodes, the planner's inputs, and the Event texts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from provisioner.capacity import (
    DemandReader,
    Facts,
    current_usage,
    existing_capacities,
    inflight_capacities,
    pending_pods,
)
from provisioner.events import (
    EventRecorder,
    ObjectRef,
    build_event,
    launched_message,
    nominated_message,
    removed_message,
)
from provisioner.fakes import FakeCluster, ManualClock, node_manifest, pod_manifest
from provisioner.lifecycle import Claim, Phase
from provisioner.views import Snapshot, instance_id_of, node_info, pod_info
from spotpack.capacity import SCHEMES
from spotpack.catalog import load_catalog
from spotpack.provisioning.model import PlannedNode, Resources

SCHEME = SCHEMES["karpenter"]
T0 = 1_700_000_000.0


def with_status(pod: dict[str, Any], **status: Any) -> dict[str, Any]:
    pod["status"].update(status)
    return pod


@pytest.mark.parametrize(
    ("case", "pod", "pending"),
    [
        ("unschedulable", pod_manifest("a"), True),
        ("bound", pod_manifest("a", node="n1", pending=False), False),
        ("not yet tried", {**pod_manifest("a"), "status": {"phase": "Pending"}}, False),
        (
            "scheduler error, not unschedulable",
            with_status(
                pod_manifest("a"),
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulerError"}
                ],
            ),
            False,
        ),
        ("being preempted for", with_status(pod_manifest("a"), nominatedNodeName="n2"), False),
        ("a DaemonSet pod", pod_manifest("a", owner="DaemonSet"), False),
        (
            "a mirror pod",
            pod_manifest("a", annotations={"kubernetes.io/config.mirror": "x"}),
            False,
        ),
        ("finished", with_status(pod_manifest("a"), phase="Failed"), False),
    ],
)
def test_which_pods_are_pending(case: str, pod: dict[str, Any], pending: bool) -> None:
    assert pod_info(pod).pending is pending, case


def test_deleting_pods_are_not_pending() -> None:
    pod = pod_manifest("a")
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not pod_info(pod).pending


def test_bad_quantities_do_not_raise() -> None:
    info = pod_info(pod_manifest("a", cpu="lots"))
    assert info.resources == Resources(0, 0, 1)
    node = node_manifest("n1")
    node["status"]["allocatable"]["cpu"] = "many"
    assert node_info(node, SCHEME).allocatable == Resources()


@pytest.mark.parametrize(
    ("provider_id", "instance"),
    [
        ("aws:///us-east-1a/i-0123456789abcdef0", "i-0123456789abcdef0"),
        ("local:///us-east-1b/local-c-1234", "local-c-1234"),
        ("kind://docker/kind/kind-worker", "kind-worker"),
        ("", ""),
        ("garbage", ""),
    ],
)
def test_instance_id_from_provider_id(provider_id: str, instance: str) -> None:
    assert instance_id_of(provider_id) == instance


def test_a_node_is_found_by_provider_id_then_claim_label_then_name() -> None:
    snap = Snapshot.build(
        [
            node_manifest("by-id", instance_id="i-1", provider="aws"),
            node_manifest("by-claim", claim_id="c-2"),
            node_manifest("by-name"),
        ],
        [],
        SCHEME,
    )
    assert snap.node_for("i-1").name == "by-id"  # type: ignore[union-attr]
    assert snap.node_for("i-x", "c-2").name == "by-claim"  # type: ignore[union-attr]
    assert snap.node_for("i-x", "c-x", "by-name").name == "by-name"  # type: ignore[union-attr]
    assert snap.node_for("i-x", "c-x", "nowhere") is None


def test_existing_room_is_allocatable_minus_the_running_pods() -> None:
    cordoned = node_manifest("cordoned")
    cordoned["spec"]["unschedulable"] = True
    snap = Snapshot.build(
        [
            node_manifest("n1", cpu="4", memory="16Gi"),
            cordoned,
            node_manifest("not-ready", ready=False),
            node_manifest("tainted", taints=[{"key": "gpu", "effect": "NoSchedule"}]),
            node_manifest("soft", taints=[{"key": "x", "effect": "PreferNoSchedule"}]),
        ],
        [
            pod_manifest("a", node="n1", pending=False, cpu="1500m", memory="1Gi"),
            pod_manifest("done", node="n1", pending=False, cpu="2", phase="Succeeded"),
        ],
        SCHEME,
    )
    caps = {c.name: c for c in existing_capacities(snap, lambda _: None)}
    assert sorted(caps) == ["n1", "soft"]
    assert caps["n1"].free == Resources(2500, 15 * 1024, 109)
    assert caps["n1"].capacity == "spot" and not caps["n1"].in_flight
    assert "n1" not in {c.name for c in existing_capacities(snap, lambda _: None, exclude={"n1"})}


def test_gpu_nodes_carry_their_cards() -> None:
    catalog = load_catalog()
    facts = Facts.from_catalog(catalog, "us-east-1", ["us-east-1a"])
    node = node_manifest("g", instance_type="g5.xlarge", cpu="4", memory="16Gi")
    (cap,) = existing_capacities(Snapshot.build([node], [], SCHEME), facts.gpu_spec)
    assert cap.gpus is not None and len(cap.gpus.cards) == 1
    assert cap.usage is not None


def test_in_flight_claims_are_capacity_minus_the_pods_they_hold() -> None:
    catalog = load_catalog()
    facts = Facts.from_catalog(catalog, "us-east-1", ["us-east-1a"])
    reader = DemandReader(SCHEME)
    claim = Claim(
        "c-1",
        "i-1",
        "m5.xlarge",
        "us-east-1a",
        "spot",
        T0,
        pods=frozenset({"default/a", "default/gone"}),
    )
    ready = Claim("c-2", "i-2", "m5.xlarge", "us-east-1a", "spot", T0, phase=Phase.READY)
    snap = Snapshot.build([], [pod_manifest("a", cpu="1", memory="1Gi"), pod_manifest("b")], SCHEME)
    (cap,) = inflight_capacities([claim, ready], snap, facts.offering, reader)
    offering = facts.offering("m5.xlarge", "us-east-1a", "spot")
    assert offering is not None
    assert cap.name == "c-1" and cap.in_flight
    assert cap.free == offering.allocatable - Resources(1000, 1024, 1)
    # Held pods are not pending for the planner; the others are.
    assert [p.key for p in pending_pods(snap, {"default/a": "c-1"})] == ["default/b"]


def test_usage_counts_our_nodes_and_unregistered_claims_once() -> None:
    facts = Facts.from_catalog(load_catalog(), "us-east-1", ["us-east-1a"])
    on_node = Claim("c-1", "i-1", "g5.xlarge", "us-east-1a", "spot", T0, price_per_hour=0.5, gpus=1)
    flying = Claim("c-2", "i-2", "m5.large", "us-east-1a", "spot", T0, price_per_hour=0.05)
    snap = Snapshot.build(
        [
            node_manifest("n1", instance_id="i-1", instance_type="g5.xlarge"),
            node_manifest("mine", instance_type="m5.large", capacity="on-demand"),
            node_manifest("theirs", managed=False),
        ],
        [],
        SCHEME,
    )
    usage = current_usage(snap, [on_node, flying], cost_of=facts.cost, cards_of=facts.cards)
    assert usage.nodes == 3 and usage.gpus == 1
    assert usage.cost_per_hour == pytest.approx(0.5 + 0.05 + 0.096)


# --- events -----------------------------------------------------------------------------------


def planned() -> PlannedNode:
    return PlannedNode(
        "c-abc", ("g5.xlarge",), "us-east-1a", "spot", ("ml/a", "ml/b"), 0.4023, 0.01, "why"
    )


def test_the_nominated_message_says_where_and_what_it_costs() -> None:
    assert nominated_message(planned(), "g5.xlarge") == (
        "will run on a new g5.xlarge spot node in us-east-1a, claim c-abc, $0.40/h (2 pods on it)"
    )


def test_node_messages() -> None:
    claim = Claim("c-abc", "i-1", "g5.xlarge", "us-east-1a", "spot", T0, price_per_hour=0.0123,
                  pods=frozenset(f"ml/p{i}" for i in range(7)), reason="cheapest")  # fmt: skip
    text = launched_message(claim)
    assert "g5.xlarge spot in us-east-1a" in text and "$0.0123/h" in text
    assert "for 7 pods: ml/p0, ml/p1, ml/p2, ml/p3, ml/p4 and 2 more; cheapest" in text
    assert removed_message(301, 0.4) == (
        "empty (only DaemonSet and mirror pods) for 301s: removing it; saves $0.40/h"
    )


def test_events_are_core_v1_and_deduplicated() -> None:
    cluster = FakeCluster()
    clock = ManualClock()
    recorder = EventRecorder(cluster, instance="replica-1", clock=clock, dedupe_seconds=60)
    ref = ObjectRef.pod("ml/a", "uid-1")
    assert recorder.record(ref, "Nominated", "hello")
    assert not recorder.record(ref, "Nominated", "hello")
    assert recorder.record(ref, "Nominated", "something else")
    clock.advance(61)
    assert recorder.record(ref, "Nominated", "hello")
    event = cluster.events[0]
    assert event["metadata"]["namespace"] == "ml"
    assert event["involvedObject"] == {
        "kind": "Pod",
        "name": "a",
        "namespace": "ml",
        "uid": "uid-1",
        "apiVersion": "v1",
    }
    assert event["source"] == {"component": "spotpack-provisioner"}
    assert event["reportingInstance"] == "replica-1"
    assert len({e["metadata"]["name"] for e in cluster.events}) == 3
    orjson.dumps(event)  # plain JSON


def test_node_events_go_to_default_and_failures_are_swallowed() -> None:
    event = build_event(ObjectRef.node("n1"), "ScaleDown", "bye", now=T0, name="n1.1")
    assert event["metadata"] == {"name": "n1.1", "namespace": "default"}
    assert "namespace" not in event["involvedObject"]  # type: ignore[operator]
    cluster = FakeCluster(fail_events=True)
    assert not EventRecorder(cluster).record(ObjectRef.node("n1"), "ScaleDown", "bye")
