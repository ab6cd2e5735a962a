"""Acting on a plan with FakeCloud: capacity fallbacks, throttling, limits, crash recovery."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from provisioner.capacity import Facts, Usage, headroom, over_limit
from provisioner.fakes import Harness, harness, node_manifest, pod_manifest
from spotpack.catalog import load_catalog
from spotpack.cloud.base import LaunchRefused, LaunchRequest
from spotpack.cloud.fake import SimulatedCrash
from spotpack.errors import CloudError
from spotpack.provisioning.model import Limits

ZONE = "us-east-1a"
M5 = ("m5.large", "m5.xlarge", "m5.2xlarge")


def m5_only() -> Any:
    """Three m5 sizes in one zone, spot and on-demand: a catalog small enough to reason about."""
    return Facts.from_catalog(load_catalog(), "us-east-1", [ZONE], types=list(M5)).offerings


def loop(**config: Any) -> Harness:
    h = harness(offerings=m5_only(), zones=(ZONE,), **config)
    h.tick()
    return h


def pend(h: Harness, *names: str, **kw: Any) -> None:
    for name in names:
        h.controller.observe_pod(h.cluster.add_pod(pod_manifest(name, **kw)))


def attempts(h: Harness) -> list[tuple[tuple[str, ...], str]]:
    """Each launch call: the instance types offered, the capacity type."""
    return [(tuple(t for t, _ in r.candidates), r.capacity) for r in h.launches()]


# --- capacity errors --------------------------------------------------------------------------


def test_the_first_type_out_of_capacity_falls_back_to_the_next_in_the_same_request() -> None:
    h = loop()
    h.cloud.insufficient_capacity(("m5.large", ZONE, "spot"))
    pend(h, "a", cpu="1", capacity="spot-preferred")
    h.tick(1.5)
    assert attempts(h) == [(M5, "spot")]
    (instance,) = h.live()
    assert (instance.instance_type, instance.capacity) == ("m5.xlarge", "spot")
    (claim,) = h.controller.book.all()
    assert claim.instance_type == "m5.xlarge" and claim.price_per_hour == pytest.approx(0.0864)


def test_spot_preferred_pods_fall_back_to_on_demand_in_the_same_tick() -> None:
    h = loop()
    for itype in M5:
        h.cloud.insufficient_capacity((itype, ZONE, "spot"))
    pend(h, "a", "b", cpu="500m", capacity="spot-preferred")
    h.tick(1.5)
    assert attempts(h) == [(M5, "spot"), (M5, "on-demand")]
    (instance,) = h.live()
    assert instance.capacity == "on-demand"
    # The pools that said "no" are remembered, so the next plan does not ask them again.
    cache = h.controller.parts.cache
    assert all(cache.blocked(t, ZONE, "spot") for t in M5)
    assert (
        h.controller.parts.metrics.launch_errors.labels("InsufficientInstanceCapacity")._value.get()
        == 1
    )


def test_spot_only_pods_are_unplaceable_with_a_reason() -> None:
    h = loop()
    for itype in M5:
        h.cloud.insufficient_capacity((itype, ZONE, "spot"))
    pend(h, "a", cpu="1", capacity="spot")
    h.tick(1.5)
    assert attempts(h) == [(M5, "spot")]  # tried once, then no spot offering is left
    assert h.live() == []
    reason = h.controller.unplaceable["default/a"]
    assert "spot-only" in reason
    (event,) = h.cluster.events_about("a", "ProvisioningFailed")
    assert event["type"] == "Warning" and "spot-only" in event["message"]


def test_capacity_comes_back_after_the_cache_ttl() -> None:
    h = loop()
    for itype in M5:
        h.cloud.insufficient_capacity((itype, ZONE, "spot"))
    pend(h, "a", cpu="1", capacity="spot")
    h.tick(1.5)
    h.cloud.restore_capacity()
    h.tick(60)  # the periodic re-plan still avoids the pools
    assert len(h.launches()) == 1
    h.tick(180)
    assert len(h.launches()) == 2
    assert h.live()[0].capacity == "spot"


# --- throttling and refusals ------------------------------------------------------------------


def test_throttled_launches_back_off_then_retry() -> None:
    h = loop(backoff_initial=4.0)
    h.cloud.throttle(times=1)
    pend(h, "a", cpu="1")
    h.tick(1.5)
    assert len(h.launches()) == 1 and h.live() == []
    assert "backing off" in h.controller.unplaceable["default/a"]
    h.tick(2)  # inside the 4 s backoff: no call at all
    assert len(h.launches()) == 1
    h.tick(2.5)
    assert len(h.launches()) == 2 and len(h.live()) == 1
    assert "default/a" not in h.controller.unplaceable


def test_backoff_grows_while_throttling_continues() -> None:
    h = loop(backoff_initial=2.0)
    h.cloud.throttle(times=3)
    pend(h, "a", cpu="1")
    h.tick(1.5)
    times = []
    for _ in range(30):
        before = len(h.launches())
        h.tick(0.5)
        if len(h.launches()) > before:
            times.append(h.clock.now)
    assert len(h.live()) == 1
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(times)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]


def test_a_refused_launch_is_not_retried_in_a_loop() -> None:
    h = loop(backoff_initial=30.0)
    h.cloud.fail_next(
        "launch", LaunchRefused("not authorized", code="UnauthorizedOperation"), times=5
    )
    pend(h, "a", cpu="1")
    h.tick(1.5)
    h.tick(1)
    h.tick(1)
    assert len(h.launches()) == 1
    assert "refused" in h.controller.unplaceable["default/a"]


def test_a_failing_find_does_not_launch_blind() -> None:
    h = loop()
    h.cloud.fail_next("find", CloudError("DescribeInstances timed out", retryable=True))
    pend(h, "a", cpu="1")
    h.tick(1.5)
    assert h.launches() == []


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "usage", "gpus", "cost", "why"),
    [
        (Limits(), Usage(100, 50, 99.0), 8, 30.0, None),
        (Limits(max_nodes=3), Usage(2, 0, 0.0), 0, 1.0, None),
        (Limits(max_nodes=3), Usage(3, 0, 0.0), 0, 1.0, "max_nodes=3"),
        (Limits(max_gpus=4), Usage(1, 2, 0.0), 2, 1.0, None),
        (Limits(max_gpus=4), Usage(1, 3, 0.0), 2, 1.0, "max_gpus=4"),
        (Limits(max_cost_per_hour=1.0), Usage(1, 0, 0.6), 0, 0.4, None),
        (Limits(max_cost_per_hour=1.0), Usage(1, 0, 0.6), 0, 0.41, "max_cost_per_hour=1"),
    ],
)
def test_over_limit_table(
    limits: Limits, usage: Usage, gpus: int, cost: float, why: str | None
) -> None:
    got = over_limit(limits, usage, gpus, cost)
    assert (got is None) if why is None else (got is not None and why in got)


def test_headroom_is_what_is_left() -> None:
    limits = Limits(max_nodes=5, max_gpus=None, max_cost_per_hour=2.0)
    assert headroom(limits, Usage(7, 3, 0.5)) == Limits(0, None, 1.5)


def test_the_planner_gets_the_headroom_and_leaves_the_rest_unplaceable() -> None:
    h = loop(limits=Limits(max_nodes=2))
    h.cluster.add_node(node_manifest("ours-1", instance_id="i-old"))  # one node of ours runs
    pend(h, *(f"p{i}" for i in range(3)), cpu="7")  # one m5.2xlarge each
    h.tick(1.5)
    assert len(h.live()) == 1  # 2 allowed, 1 running
    left = {k: v for k, v in h.controller.unplaceable.items() if "max_nodes=2" in v}
    assert len(left) == 2
    assert "running and in flight: 1 nodes" in next(iter(left.values()))


def test_the_limits_are_checked_again_right_before_each_launch() -> None:
    # The plan fits: two m5.large spot at $0.0432/h each, under $0.10/h. But the
    # first launch falls back to an m5.xlarge ($0.0864/h), so the second would not.
    h = loop(limits=Limits(max_cost_per_hour=0.1))
    h.cloud.insufficient_capacity(("m5.large", ZONE, "spot"))
    pend(h, "a", "b", cpu="1", capacity="spot")
    h.tick(1.5)
    (instance,) = h.live()
    assert instance.instance_type == "m5.xlarge"
    (refused,) = [k for k, v in h.controller.unplaceable.items() if "max_cost_per_hour=0.1" in v]
    assert "$0.0864/h" in h.controller.unplaceable[refused]


def test_the_planner_limit_names_the_configured_limit() -> None:
    h = loop(limits=Limits(max_cost_per_hour=0.2))
    pend(h, "a", cpu="7", capacity="spot")
    h.tick(1.5)
    assert len(h.live()) == 1  # $0.1728/h
    pend(h, "b", cpu="7", capacity="spot")
    h.tick(1.5)
    assert len(h.live()) == 1
    reason = h.controller.unplaceable["default/b"]
    assert "max_cost_per_hour=0.2" in reason and "$0.1728/h" in reason


# --- crash and restart ------------------------------------------------------------------------


def test_a_crash_after_the_launch_never_launches_twice_for_the_same_pods() -> None:
    h = loop()
    h.cloud.crash_after_launch()
    pend(h, "a", "b", cpu="500m")  # one node for both
    with pytest.raises(SimulatedCrash):
        h.tick(1.5)  # the instance exists; the claim was never recorded
    assert len(h.live()) == 1 and len(h.controller.book) == 0

    restarted = harness(
        offerings=m5_only(), zones=(ZONE,), clock=h.clock, cluster=h.cluster, cloud=h.cloud
    )
    restarted.cloud.fail_next("list_owned", CloudError("throttled listing", retryable=True))
    restarted.tick(1)  # adoption fails; the re-plan finds the claim by its deterministic id
    assert len(h.live()) == 1
    assert len(h.cloud.calls_to("launch")) == 1
    (claim,) = restarted.controller.book.all()
    assert claim.adopted and claim.pods == {"default/a", "default/b"}
    assert restarted.controller.collect_orphans(restarted.controller.snapshot(), h.clock.now) == []
    nominated = h.cluster.events_about("a", "Nominated")
    assert "already launched" in nominated[-1]["message"]


def test_orphans_without_a_claim_or_a_node_are_reaped_after_the_grace_period() -> None:
    h = loop(orphan_grace=120.0, gc_interval=60.0)
    pend(h, "a", cpu="1")
    h.tick(1.5)
    (mine,) = h.live()
    # An instance tagged as ours that nobody knows (another replica crashed before a
    # re-plan could adopt it) and one of ours that registered as a node.
    stray = h.cloud.launch(LaunchRequest.for_claim("c-stray", [("m5.large", ZONE)], "spot"))
    registered = h.cloud.launch(LaunchRequest.for_claim("c-node", [("m5.large", ZONE)], "spot"))
    h.register(registered.instance_id)
    snap = h.controller.snapshot()
    assert h.controller.collect_orphans(snap, h.clock.now) == []  # too young
    assert h.controller.collect_orphans(snap, h.clock.now + 121) == [stray.instance_id]
    assert h.cloud.instances[mine.instance_id].state != "terminated"
    assert h.cloud.instances[registered.instance_id].state != "terminated"


def test_gpu_pods_get_gpu_nodes_and_cpu_pods_never_do() -> None:
    h = harness()
    h.tick()
    pend(h, "train", cpu="1", memory="4Gi", gpus=1)
    pend(h, "web", cpu="1", memory="1Gi")
    h.tick(1.5)
    by_pod = {next(iter(c.pods)): c for c in h.controller.book.all()}
    assert by_pod["default/train"].gpus >= 1
    assert by_pod["default/web"].gpus == 0
    (event,) = h.cluster.events_about("train", "Nominated")
    assert by_pod["default/train"].instance_type in event["message"]


# --- architectures ----------------------------------------------------------------------------


def test_only_allowed_architectures_launch_and_a_pod_pinned_elsewhere_is_told_why() -> None:
    """m6g.large is cheaper than m5.large: without the setting a free pod would get Graviton."""
    both = ("m5.large", "m6g.large")
    catalog = load_catalog()
    anything = Facts.from_catalog(catalog, "us-east-1", [ZONE], types=list(both)).offerings
    assert min(anything, key=lambda o: o.sort_key).instance_type == "m6g.large"
    amd64 = Facts.from_catalog(
        catalog, "us-east-1", [ZONE], types=list(both), arches=["amd64"]
    ).offerings
    h = harness(offerings=amd64, zones=(ZONE,), architectures=frozenset({"amd64"}))
    h.tick()
    pend(h, "free", cpu="1")
    arm = pod_manifest("graviton", cpu="1")
    arm["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    h.controller.observe_pod(h.cluster.add_pod(arm))
    h.tick(1.5)
    assert [i.instance_type for i in h.live()] == ["m5.large"]
    reason = h.controller.unplaceable["default/graviton"]
    assert reason == (
        "asks kubernetes.io/arch arm64; new nodes may be amd64: "
        "add it to SPOTPACK_PROVISIONER_ARCHITECTURES to launch it"
    )
    (event,) = h.cluster.events_about("graviton", "ProvisioningFailed")
    assert "SPOTPACK_PROVISIONER_ARCHITECTURES" in event["message"]
    assert "default/free" not in h.controller.unplaceable
