"""Scale-down: which empty nodes of ours go, after what delay, and which never do."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.decide import scale_down
from provisioner.fakes import harness, node_manifest, pod_manifest
from provisioner.lifecycle import Claim, Phase
from provisioner.views import Snapshot
from spotpack.capacity import SCHEMES

T0 = 1_700_000_000.0
DELAY = 300.0
SCHEME = SCHEMES["karpenter"]


def running(name: str, **kw: Any) -> dict[str, Any]:
    return pod_manifest(name, node="n1", pending=False, **kw)


def decide(
    node: dict[str, Any],
    pods: list[dict[str, Any]],
    *,
    claims: tuple[Claim, ...] = (),
    since: float | None = T0,
) -> tuple[bool, str | None]:
    snap = Snapshot.build([node], pods, SCHEME)
    empty_since = {} if since is None else {"n1": since}
    result = scale_down(snap, claims, empty_since, T0 + DELAY, delay=DELAY, nomination_window=900)
    removed = [r.node for r in result.remove]
    return removed == ["n1"], result.kept.get("n1")


MIRROR = {"kubernetes.io/config.mirror": "abc"}


@pytest.mark.parametrize(
    ("case", "pods", "removed", "why"),
    [
        ("empty", [], True, None),
        (
            "daemonset and mirror pods are ignored",
            [running("ds", owner="DaemonSet"), running("static", annotations=MIRROR)],
            True,
            None,
        ),
        (
            "a finished Job pod does not count",
            [running("done", owner="Job", phase="Succeeded")],
            True,
            None,
        ),
        ("a running Job pod", [running("job", owner="Job")], False, "belongs to a Job"),
        ("a Spark driver", [running("drv", labels={"spark-role": "driver"})], False, "Spark"),
        ("a Spark executor", [running("exe", labels={"spark-role": "executor"})], False, "Spark"),
        (
            "karpenter's do-not-disrupt on a pod",
            [running("keep", annotations={"karpenter.sh/do-not-disrupt": "true"})],
            False,
            "do-not-disrupt",
        ),
        (
            "ours on a pod",
            [running("keep", annotations={"spotpack.io/do-not-disrupt": "true"})],
            False,
            "do-not-disrupt",
        ),
        ("an ordinary pod", [running("web", owner="ReplicaSet")], False, "runs 1 pods"),
        (
            "a Job pod is named even next to others",
            [running("web", owner="ReplicaSet"), running("job", owner="Job")],
            False,
            "belongs to a Job",
        ),
    ],
)
def test_eligibility_by_pods(
    case: str, pods: list[dict[str, Any]], removed: bool, why: str | None
) -> None:
    got_removed, reason = decide(node_manifest("n1", instance_id="i-1"), pods)
    assert got_removed is removed, case
    if why is None:
        assert reason is None, case
    else:
        assert reason is not None and why in reason, case


@pytest.mark.parametrize(
    ("annotations", "why"),
    [
        ({"spotpack.io/opt-out": "true"}, "spotpack.io/opt-out"),
        ({"karpenter.sh/do-not-disrupt": "true"}, "do-not-disrupt"),
        ({"spotpack.io/do-not-disrupt": "true"}, "do-not-disrupt"),
    ],
)
def test_opted_out_nodes_are_never_removed(annotations: dict[str, str], why: str) -> None:
    removed, reason = decide(
        node_manifest("n1", annotations=annotations), [], since=T0 - 10 * DELAY
    )
    assert not removed
    assert reason is not None and why in reason


def test_do_not_disrupt_false_is_no_protection() -> None:
    removed, _ = decide(
        node_manifest("n1", annotations={"karpenter.sh/do-not-disrupt": "false"}), []
    )
    assert removed


def test_nodes_we_did_not_launch_are_not_even_considered() -> None:
    snap = Snapshot.build([node_manifest("n1", managed=False)], [], SCHEME)
    result = scale_down(snap, (), {"n1": T0}, T0 + 10 * DELAY, delay=DELAY, nomination_window=900)
    assert result.remove == () and "n1" not in result.kept


def test_an_interrupted_node_is_left_to_the_interruption_handler() -> None:
    taint = {"key": "spotpack.io/interruption", "value": "rebalance", "effect": "NoSchedule"}
    removed, reason = decide(node_manifest("n1", taints=[taint]), [])
    assert not removed and reason is not None and "interruption" in reason


def test_a_node_whose_claim_is_not_ready_is_not_a_candidate() -> None:
    claim = Claim(
        "c-1", "i-1", "m5.large", "us-east-1a", "spot", T0, phase=Phase.REGISTERED, node_name="n1"
    )
    removed, reason = decide(node_manifest("n1", instance_id="i-1"), [], claims=(claim,))
    assert not removed and reason is not None and "registered" in reason


def test_a_fresh_node_waiting_for_its_pods_is_not_empty() -> None:
    claim = Claim(
        "c-1", "i-1", "m5.large", "us-east-1a", "spot", T0,
        pods=frozenset({"default/a"}), phase=Phase.READY, node_name="n1", ready_at=T0,
    )  # fmt: skip
    pending = pod_manifest("a")
    removed, reason = decide(node_manifest("n1", instance_id="i-1"), [pending], claims=(claim,))
    assert not removed and reason is not None and "not scheduled yet" in reason


def test_the_delay_counts_from_when_the_node_was_first_seen_empty() -> None:
    snap = Snapshot.build([node_manifest("n1")], [], SCHEME)
    first = scale_down(snap, (), {}, T0, delay=DELAY, nomination_window=900)
    assert first.remove == () and first.empty_since == {"n1": T0}
    almost = scale_down(
        snap, (), first.empty_since, T0 + DELAY - 1, delay=DELAY, nomination_window=900
    )
    assert almost.remove == () and "empty for 299s of 300s" in almost.kept["n1"]
    due = scale_down(snap, (), almost.empty_since, T0 + DELAY, delay=DELAY, nomination_window=900)
    assert [r.node for r in due.remove] == ["n1"] and due.remove[0].empty_for == DELAY


def test_a_pod_arriving_resets_the_timer() -> None:
    empty = Snapshot.build([node_manifest("n1")], [], SCHEME)
    busy = Snapshot.build([node_manifest("n1")], [running("web")], SCHEME)
    a = scale_down(empty, (), {}, T0, delay=DELAY, nomination_window=900)
    b = scale_down(busy, (), a.empty_since, T0 + 100, delay=DELAY, nomination_window=900)
    assert "n1" not in b.empty_since
    c = scale_down(empty, (), b.empty_since, T0 + DELAY + 1, delay=DELAY, nomination_window=900)
    assert c.remove == () and c.empty_since == {"n1": T0 + DELAY + 1}


# --- in the loop ------------------------------------------------------------------------------


def loop_with_node(**config: Any) -> Any:
    h = harness(empty_delay=300.0, **config)
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    (instance,) = h.live()
    h.register(instance.instance_id)
    h.cluster.bind("default/a", instance.node_name)
    h.tick(1)
    return h, instance


def test_an_empty_node_is_cordoned_deleted_and_terminated_after_the_delay() -> None:
    h, instance = loop_with_node()
    h.cluster.remove_pod("default/a")  # the work is done
    h.tick(1)
    h.tick(299)
    assert h.cluster.deleted_nodes == []
    h.tick(1)
    assert h.cluster.deleted_nodes == [instance.node_name]
    assert h.cloud.instances[instance.instance_id].state == "terminated"
    assert (instance.node_name, {"spec": {"unschedulable": True}}) in h.cluster.patches
    assert len(h.controller.book) == 0
    (event,) = h.cluster.events_about(instance.node_name, "ScaleDown")
    assert "empty" in event["message"] and "saves $" in event["message"]


def test_not_while_a_job_pod_runs_there() -> None:
    h, instance = loop_with_node()
    h.cluster.remove_pod("default/a")
    h.cluster.add_pod(pod_manifest("job", node=instance.node_name, pending=False, owner="Job"))
    for _ in range(5):
        h.tick(300)
    assert h.cluster.deleted_nodes == []
    h.cluster.remove_pod("default/job")
    h.tick(1)
    h.tick(300)
    assert h.cluster.deleted_nodes == [instance.node_name]


def test_a_pod_bound_after_the_cordon_aborts_the_removal() -> None:
    h, instance = loop_with_node()
    h.cluster.remove_pod("default/a")
    h.tick(1)
    real = h.cluster.pods_on_node

    def raced(name: str) -> list[dict[str, Any]]:
        # The scheduler bound a pod between our decision and the cordon.
        return [*real(name), pod_manifest("late", node=name, pending=False)]

    h.cluster.pods_on_node = raced  # type: ignore[method-assign]
    h.tick(300)
    assert h.cluster.deleted_nodes == []
    assert h.cloud.instances[instance.instance_id].state != "terminated"
    assert h.cluster.patches[-1] == (instance.node_name, {"spec": {"unschedulable": False}})


def test_a_follower_never_removes_anything() -> None:
    h, _ = loop_with_node()
    h.cluster.remove_pod("default/a")
    h.leader[0] = False
    for _ in range(3):
        h.tick(300)
    assert h.cluster.deleted_nodes == []
    assert h.cloud.calls_to("terminate") == []
