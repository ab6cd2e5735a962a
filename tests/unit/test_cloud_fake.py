"""The recording fake behaves like a cloud: idempotent by claim, scriptable failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spotpack.cloud.base import (
    CloudProvider,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    NoticeSource,
    Offering,
    Throttled,
    owned_without_claims,
)
from spotpack.cloud.fake import FakeCloud, FakeNotices, SimulatedCrash

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CANDIDATES = [
    ("g5.xlarge", "us-east-1a"),
    ("g5.xlarge", "us-east-1b"),
    ("g4dn.xlarge", "us-east-1a"),
]


def _req(claim: str = "c1", capacity: str = "spot") -> LaunchRequest:
    return LaunchRequest.for_claim(claim, CANDIDATES, capacity)  # type: ignore[arg-type]


def test_it_is_a_cloud_provider_and_records_calls() -> None:
    cloud = FakeCloud(clock=lambda: T0)
    assert isinstance(cloud, CloudProvider)
    instance = cloud.launch(_req())
    assert (instance.instance_type, instance.zone, instance.capacity) == (
        "g5.xlarge",
        "us-east-1a",
        "spot",
    )
    assert instance.launched_at == T0 and instance.state == "pending"
    assert cloud.find("c1") == instance
    assert cloud.list_owned() == [instance]
    cloud.terminate([instance.instance_id, "i-unknown"])
    assert cloud.find("c1") is None and cloud.list_owned() == []
    assert [c.method for c in cloud.calls] == [
        "launch",
        "find",
        "list_owned",
        "terminate",
        "find",
        "list_owned",
    ]
    assert cloud.calls_to("terminate") == [(instance.instance_id, "i-unknown")]


def test_a_claim_gets_one_instance() -> None:
    cloud = FakeCloud()
    first = cloud.launch(_req())
    assert cloud.launch(_req()) == first
    assert len(cloud.instances) == 1
    cloud.terminate([first.instance_id])
    assert cloud.launch(_req()).instance_id != first.instance_id  # a terminated one is not reused


def test_insufficient_capacity_skips_offerings_then_names_them() -> None:
    cloud = FakeCloud()
    cloud.insufficient_capacity(("g5.xlarge", "us-east-1a", "spot"))
    assert cloud.launch(_req("c1")).zone == "us-east-1b"
    cloud.insufficient_capacity(
        ("g5.xlarge", "us-east-1b", "spot"), ("g4dn.xlarge", "us-east-1a", "spot")
    )
    with pytest.raises(InsufficientCapacity) as info:
        cloud.launch(_req("c2"))
    assert set(info.value.offerings) == {Offering(t, z, "spot") for t, z in CANDIDATES}
    assert cloud.launch(_req("c2", "on-demand")).capacity == "on-demand"  # spot only was short
    cloud.restore_capacity(("g4dn.xlarge", "us-east-1a", "spot"))
    assert cloud.launch(_req("c3")).instance_type == "g4dn.xlarge"
    cloud.restore_capacity()
    assert cloud.unavailable == set()


def test_throttling_and_other_failures_n_times() -> None:
    cloud = FakeCloud()
    cloud.throttle(2)
    for _ in range(2):
        with pytest.raises(Throttled):
            cloud.launch(_req())
    assert cloud.launch(_req()).claim_id == "c1"
    cloud.fail_next("find", LaunchRefused("no permission", code="UnauthorizedOperation"))
    with pytest.raises(LaunchRefused):
        cloud.find("c1")
    assert cloud.find("c1") is not None


def test_a_crash_after_launch_leaves_the_instance_for_the_restarted_loop() -> None:
    cloud = FakeCloud()
    cloud.crash_after_launch()
    with pytest.raises(SimulatedCrash):
        cloud.launch(_req())
    (orphan,) = cloud.list_owned()
    assert owned_without_claims(cloud, []) == [orphan]
    # The restarted loop launches the claim again and adopts the instance.
    assert cloud.launch(_req()) == orphan
    assert len(cloud.instances) == 1
    assert not isinstance(SimulatedCrash("x"), Exception)  # passes `except Exception`


def test_fake_notices_deliver_until_acked() -> None:
    notices = FakeNotices(clock=lambda: T0)
    assert isinstance(notices, NoticeSource)
    spot = notices.interrupt("i-1")
    rebalance = notices.interrupt("i-2", "rebalance", window=None)
    assert spot.deadline == T0 + timedelta(minutes=2) and rebalance.deadline is None
    assert notices.receive(max_messages=1) == [spot]
    assert notices.receive() == [rebalance]
    assert notices.receive() == []
    notices.ack(spot)
    notices.ack(spot)  # twice: recorded once
    assert notices.acked == [spot]
    assert notices.redeliver() == 1
    assert notices.receive() == [rebalance]
    assert notices.receives == 4
