"""Leader election: the decision table, and two electors on one lease never both leading."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from provisioner.fakes import FakeLeases, ManualClock
from provisioner.kubeapi import Conflict
from provisioner.leader import LeaderElector, LeaseAction, LeaseRecord, decide_lease, lease_body
from spotpack.errors import ClusterUnavailable

NS, NAME = "spotpack-system", "spotpack-provisioner"


def record(holder: str, duration: float = 15.0, rv: str = "7") -> LeaseRecord:
    return LeaseRecord(holder, duration, "2024-01-01T00:00:00.000000Z", "", 3, rv)


@pytest.mark.parametrize(
    ("lease", "now", "observed_at", "action"),
    [
        (None, 100.0, 0.0, LeaseAction.CREATE),
        (record("me"), 100.0, 99.0, LeaseAction.RENEW),
        (record("me"), 100.0, 0.0, LeaseAction.RENEW),  # ours, even if we were slow
        (record(""), 100.0, 99.0, LeaseAction.ACQUIRE),  # released
        (record("other"), 100.0, 90.0, LeaseAction.WAIT),
        (record("other"), 100.0, 85.1, LeaseAction.WAIT),
        (record("other"), 100.0, 85.0, LeaseAction.ACQUIRE),  # unchanged for 15 s: expired
        (record("other", duration=60), 100.0, 50.0, LeaseAction.WAIT),
    ],
)
def test_lease_decisions(
    lease: LeaseRecord | None, now: float, observed_at: float, action: LeaseAction
) -> None:
    assert decide_lease(lease, "me", now=now, observed_at=observed_at) is action


def test_lease_body_counts_transitions_and_keeps_the_acquire_time_on_renewal() -> None:
    first = lease_body(NAME, NS, holder="a", duration=15, now=0.0, previous=None)
    assert first["spec"]["leaseTransitions"] == 0
    assert "resourceVersion" not in first["metadata"]
    renewed = lease_body(
        NAME,
        NS,
        holder="a",
        duration=15,
        now=10.0,
        previous=LeaseRecord.from_lease({**first, "metadata": {"resourceVersion": "5"}}),
    )
    assert renewed["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert renewed["spec"]["renewTime"] != first["spec"]["renewTime"]
    assert renewed["metadata"]["resourceVersion"] == "5"
    taken = lease_body(
        NAME, NS, holder="b", duration=15, now=20.0, previous=LeaseRecord.from_lease(renewed)
    )
    assert taken["spec"]["leaseTransitions"] == 1
    assert taken["spec"]["holderIdentity"] == "b"
    assert taken["spec"]["renewTime"].endswith("Z") and "." in taken["spec"]["renewTime"]


@dataclass
class Flaky:
    """One replica's view of the API: the shared leases, or an outage of its own."""

    leases: FakeLeases
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise ClusterUnavailable("partitioned")

    def get(self, namespace: str, name: str) -> Any:
        self._check()
        return self.leases.get(namespace, name)

    def create(self, namespace: str, body: Any) -> Any:
        self._check()
        return self.leases.create(namespace, body)

    def replace(self, namespace: str, name: str, body: Any) -> Any:
        self._check()
        return self.leases.replace(namespace, name, body)


def elector(api: Any, identity: str, clock: ManualClock) -> LeaderElector:
    return LeaderElector(
        api,
        name=NAME,
        namespace=NS,
        identity=identity,
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=2.0,
        clock=clock,
        wall=clock,
    )


def test_one_acquires_the_other_waits() -> None:
    clock = ManualClock()
    leases = FakeLeases()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.step() is True
    assert b.step() is False
    assert a.is_leader() and not b.is_leader()
    assert leases.leases[(NS, NAME)]["spec"]["holderIdentity"] == "a"


def test_a_leader_that_cannot_renew_stops_before_anyone_takes_over() -> None:
    clock = ManualClock()
    shared = FakeLeases()
    api_a, api_b = Flaky(shared), Flaky(shared)
    a, b = elector(api_a, "a", clock), elector(api_b, "b", clock)
    a.step()
    b.step()  # b sees a's record at t=0
    api_a.down = True  # a is partitioned from the API server
    for _ in range(20):
        clock.advance(1.0)
        a.step()
        b.step()
        assert not (a.is_leader() and b.is_leader()), clock.now
    assert not a.is_leader() and b.is_leader()
    # a stopped acting at 10 s; b took over only after 15 s without a change.
    assert shared.leases[(NS, NAME)]["spec"]["holderIdentity"] == "b"
    assert shared.leases[(NS, NAME)]["spec"]["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_once() -> None:
    clock = ManualClock()
    leases = FakeLeases()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    a.step()
    b.step()
    a.release()
    assert not a.is_leader()
    assert leases.leases[(NS, NAME)]["spec"]["holderIdentity"] == ""
    clock.advance(0.1)
    assert b.step() is True


def test_a_stale_write_is_a_conflict_and_the_loser_reads_again() -> None:
    clock = ManualClock()
    leases = FakeLeases()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    a.step()
    a.release()

    # b read the released lease, but a took it again before b's write landed.
    real_get = leases.get
    raced = {"done": False}

    def get(namespace: str, name: str) -> Any:
        found = real_get(namespace, name)
        if not raced["done"]:
            raced["done"] = True
            assert a.step()
        return found

    leases.get = get  # type: ignore[method-assign]
    assert b.step() is False  # 409 on the stale write, re-read: a holds it, wait
    assert a.is_leader() and not b.is_leader()


def test_never_two_leaders_under_random_faults() -> None:
    rng = random.Random(7)
    clock = ManualClock()
    shared = FakeLeases()
    apis = [Flaky(shared) for _ in range(3)]
    electors = [elector(api, f"r{i}", clock) for i, api in enumerate(apis)]
    leaders_seen: set[str] = set()
    for _ in range(2000):
        clock.advance(rng.choice([0.1, 0.5, 1.0, 2.0]))
        i = rng.randrange(3)
        apis[i].down = rng.random() < 0.2
        if rng.random() < 0.01:
            electors[i].release()
        else:
            electors[i].step()
        leading = [e.identity for e in electors if e.is_leader()]
        assert len(leading) <= 1, (clock.now, leading)
        leaders_seen.update(leading)
    assert len(leaders_seen) >= 2  # leadership did move around


def test_invalid_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_period"):
        LeaderElector(
            FakeLeases(), name=NAME, namespace=NS, identity="a", lease_duration=5, renew_deadline=10
        )


def test_a_conflict_on_create_means_someone_else_won() -> None:
    clock = ManualClock()
    leases = FakeLeases()
    a = elector(leases, "a", clock)
    real_create = leases.create

    def create(namespace: str, body: Any) -> Any:
        real_create(namespace, {**body, "spec": {**body["spec"], "holderIdentity": "z"}})
        raise Conflict("exists")

    leases.create = create  # type: ignore[method-assign]
    assert a.step() is False
