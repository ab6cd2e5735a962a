"""Claims: launched -> registered -> ready, the registration timeout, gone nodes, adoption."""

from __future__ import annotations

import pytest

from provisioner.fakes import harness, pod_manifest
from provisioner.lifecycle import Claim, ClaimBook, NodeSeen, Phase, Verdict, step

T0 = 1_700_000_000.0
TIMEOUT = 900.0


def claim(phase: Phase = Phase.LAUNCHED, **kw: object) -> Claim:
    base: dict[str, object] = {
        "claim_id": "c-1",
        "instance_id": "i-1",
        "instance_type": "m5.large",
        "zone": "us-east-1a",
        "capacity": "spot",
        "launched_at": T0,
        "pods": frozenset({"ns/a"}),
        "phase": phase,
    }
    if phase is not Phase.LAUNCHED:
        base.update(node_name="n1", registered_at=T0 + 10)
    if phase is Phase.READY:
        base.update(ready_at=T0 + 20)
    base.update(kw)
    return Claim(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("phase", "seen", "elapsed", "want_phase", "verdict", "announce"),
    [
        (Phase.LAUNCHED, None, 10, Phase.LAUNCHED, Verdict.KEEP, False),
        (Phase.LAUNCHED, None, TIMEOUT - 1, Phase.LAUNCHED, Verdict.KEEP, False),
        (Phase.LAUNCHED, None, TIMEOUT, Phase.LAUNCHED, Verdict.TIMED_OUT, False),
        (Phase.LAUNCHED, NodeSeen("n1", False), 30, Phase.REGISTERED, Verdict.KEEP, True),
        (Phase.LAUNCHED, NodeSeen("n1", True), 30, Phase.READY, Verdict.KEEP, True),
        (Phase.REGISTERED, NodeSeen("n1", False), 60, Phase.REGISTERED, Verdict.KEEP, False),
        (
            Phase.REGISTERED,
            NodeSeen("n1", False),
            TIMEOUT,
            Phase.REGISTERED,
            Verdict.TIMED_OUT,
            False,
        ),
        (Phase.REGISTERED, NodeSeen("n1", True), 60, Phase.READY, Verdict.KEEP, False),
        (Phase.READY, NodeSeen("n1", False), 5 * TIMEOUT, Phase.READY, Verdict.KEEP, False),
        (Phase.READY, NodeSeen("n1", True), 5 * TIMEOUT, Phase.READY, Verdict.KEEP, False),
        (Phase.REGISTERED, None, 60, Phase.REGISTERED, Verdict.GONE, False),
        (Phase.READY, None, 60, Phase.READY, Verdict.GONE, False),
    ],
)
def test_claim_state_machine(
    phase: Phase,
    seen: NodeSeen | None,
    elapsed: float,
    want_phase: Phase,
    verdict: Verdict,
    announce: bool,
) -> None:
    result = step(claim(phase), seen, T0 + elapsed, TIMEOUT)
    assert (result.claim.phase, result.verdict, result.registered_now) == (
        want_phase,
        verdict,
        announce,
    )
    if seen is not None:
        assert result.claim.node_name == seen.name


def test_times_are_kept_once_set() -> None:
    first = step(claim(), NodeSeen("n1", False), T0 + 30, TIMEOUT).claim
    second = step(first, NodeSeen("n1", True), T0 + 40, TIMEOUT).claim
    third = step(second, NodeSeen("n1", True), T0 + 50, TIMEOUT).claim
    assert (third.registered_at, third.ready_at) == (T0 + 30, T0 + 40)


def test_book_holds_the_pods_of_in_flight_claims_only() -> None:
    book = ClaimBook([claim(), claim(Phase.READY, claim_id="c-2", pods=frozenset({"ns/b"}))])
    assert book.held() == {"ns/a": "c-1"}
    assert book.phases() == {"launched": 1, "registered": 0, "ready": 1}
    assert book.by_instance("i-1") is not None
    assert book.by_node("n1") is not None  # the ready one


# --- in the loop ------------------------------------------------------------------------------


def test_registration_then_ready_announces_the_node_once() -> None:
    h = harness()
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (instance,) = h.live()
    h.register(instance.instance_id, ready=False)
    h.tick(5)
    (c,) = h.controller.book.all()
    assert c.phase is Phase.REGISTERED
    h.cluster.edit_node(
        instance.node_name, lambda node: node["status"]["conditions"][0].update(status="True")
    )
    h.tick(5)
    (c,) = h.controller.book.all()
    assert c.phase is Phase.READY and c.ready_at == h.clock.now
    launched_events = h.cluster.events_about(instance.node_name, "Launched")
    assert len(launched_events) == 1
    message = launched_events[0]["message"]
    assert instance.instance_type in message and "spot" in message and "default/a" in message
    assert "$" in message and "/h" in message


def test_a_claim_that_never_registers_is_terminated_and_its_pods_planned_again() -> None:
    h = harness(registration_timeout=60.0)
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (first,) = h.live()
    h.tick(30)
    assert h.cloud.calls_to("terminate") == []
    assert h.controller.book.held() == {"default/a": first.claim_id}
    h.tick(31)  # 61.5 s after the launch
    assert h.cloud.calls_to("terminate") == [(first.instance_id,)]
    assert h.cloud.instances[first.instance_id].state == "terminated"
    # Released and planned again in the same tick: a new instance for the same pod.
    (second,) = h.live()
    assert second.instance_id != first.instance_id
    assert h.controller.book.held() == {"default/a": second.claim_id}
    failed = h.cluster.events_about("a", "ClaimFailed")
    assert failed and "not ready 60s after launch" in failed[0]["message"]


def test_a_registered_node_that_never_becomes_ready_is_removed_too() -> None:
    h = harness(registration_timeout=60.0)
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (first,) = h.live()
    h.register(first.instance_id, ready=False)
    h.tick(61)
    assert h.cloud.instances[first.instance_id].state == "terminated"
    assert first.node_name in h.cluster.deleted_nodes


def test_a_deleted_node_ends_its_claim_and_instance() -> None:
    h = harness()
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (instance,) = h.live()
    h.register(instance.instance_id)
    h.tick(1)
    h.cluster.nodes_by_name.pop(instance.node_name)  # kubectl delete node
    h.tick(1)
    assert h.cloud.instances[instance.instance_id].state == "terminated"
    assert len(h.controller.book) == 0


def test_a_new_leader_adopts_the_instances_the_cloud_lists() -> None:
    h = harness()
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (instance,) = h.live()
    # This replica after a restart (or another one): an empty book, the same world.
    fresh = harness(clock=h.clock, cluster=h.cluster, cloud=h.cloud)
    fresh.tick(1)
    (adopted,) = fresh.controller.book.all()
    assert adopted.adopted and adopted.instance_id == instance.instance_id
    assert adopted.pods == {"default/a"}  # the pending pod was placed on it again
    assert len(h.cloud.calls_to("launch")) == 1
