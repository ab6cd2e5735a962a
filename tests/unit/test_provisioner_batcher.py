"""Batching windows: 1 s after the last new pending pod, 10 s after the first, on a fake clock."""

from __future__ import annotations

import pytest

from provisioner.batcher import Batcher
from provisioner.fakes import ManualClock, harness, pod_manifest


def batcher(clock: ManualClock) -> Batcher:
    return Batcher(idle=1.0, max_wait=10.0, clock=clock)


def test_no_window_until_a_pod_arrives() -> None:
    clock = ManualClock()
    b = batcher(clock)
    assert b.time_left() is None
    assert not b.due()
    clock.advance(100)
    assert b.take() == frozenset()


def test_window_closes_one_second_after_the_last_new_pod() -> None:
    clock = ManualClock()
    b = batcher(clock)
    assert b.add("ns/a")
    clock.advance(0.6)
    assert b.add("ns/b")  # extends the window: idle counts from here
    clock.advance(0.6)
    assert not b.due()
    assert b.take() == frozenset()
    assert b.time_left() == pytest.approx(0.4)
    clock.advance(0.4)
    assert b.due()
    assert b.take() == {"ns/a", "ns/b"}
    assert b.time_left() is None  # closed; the next pod opens a new window
    assert len(b) == 0


def test_a_pod_already_in_the_window_does_not_extend_it() -> None:
    clock = ManualClock()
    b = batcher(clock)
    b.add("ns/a")
    clock.advance(0.9)
    assert not b.add("ns/a")
    clock.advance(0.1)
    assert b.take() == {"ns/a"}


def test_a_steady_trickle_is_planned_ten_seconds_after_the_first_pod() -> None:
    clock = ManualClock()
    b = batcher(clock)
    for i in range(20):  # a new pod every 0.5 s: never idle for a second
        b.add(f"ns/p{i}")
        if i < 19:
            clock.advance(0.5)
        if clock.now - 1_700_000_000.0 < 10.0:
            assert not b.due(), i
    assert clock.now - 1_700_000_000.0 == pytest.approx(9.5)
    clock.advance(0.5)
    assert b.due()
    assert len(b.take()) == 20


def test_flush_closes_early() -> None:
    clock = ManualClock()
    b = batcher(clock)
    b.add("ns/a")
    assert b.flush() == {"ns/a"}
    assert b.time_left() is None


@pytest.mark.parametrize(("idle", "max_wait"), [(0.0, 10.0), (2.0, 1.0), (-1.0, 5.0)])
def test_bad_windows_are_refused(idle: float, max_wait: float) -> None:
    with pytest.raises(ValueError, match="idle"):
        Batcher(idle, max_wait)


def test_the_loop_plans_when_the_window_closes_not_before() -> None:
    h = harness()
    h.tick()  # becomes leader with nothing pending
    for i in range(3):
        h.controller.observe_pod(h.cluster.add_pod(pod_manifest(f"p{i}", cpu="1")))
    h.tick(0.5)
    assert h.launches() == []
    h.tick(0.6)
    assert len(h.launches()) == 1  # three pods, one node: planned together
    (claim,) = h.controller.book.all()
    assert claim.pods == {"default/p0", "default/p1", "default/p2"}


def test_a_pod_seen_pending_again_does_not_reopen_a_window() -> None:
    h = harness()
    h.tick()
    pod = h.cluster.add_pod(pod_manifest("p0"))
    h.controller.observe_pod(pod)
    h.tick(1.5)
    assert len(h.launches()) == 1
    h.controller.observe_pod(pod)  # the scheduler touched its status again
    assert h.controller.batcher.time_left() is None
