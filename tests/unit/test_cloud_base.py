"""Cloud values: client tokens, launch requests, the unavailable-offerings cache, orphans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotpack.cloud.base import (
    MAX_CLIENT_TOKEN,
    NOTICE_WINDOWS,
    Instance,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    Offering,
    OfferingCache,
    Throttled,
    client_token,
    label_value,
    owned_without_claims,
)
from spotpack.cloud.fake import FakeCloud
from spotpack.errors import CloudError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- tokens and requests ---------------------------------------------------------------------


@given(st.text(min_size=1, max_size=500), st.integers(0, 10**6), st.text(max_size=100))
def test_client_tokens_fit_ec2_and_are_deterministic(claim: str, attempt: int, scope: str) -> None:
    token = client_token(claim, attempt=attempt, scope=scope)
    assert len(token) <= MAX_CLIENT_TOKEN and token.isascii() and token.isprintable()
    assert token == client_token(claim, attempt=attempt, scope=scope)


def test_client_tokens_differ_by_claim_attempt_and_scope() -> None:
    tokens = {
        client_token("a"),
        client_token("b"),
        client_token("a", attempt=1),
        client_token("a", scope="cluster-2"),
    }
    assert len(tokens) == 4
    with pytest.raises(ValueError, match="attempt"):
        client_token("a", attempt=-1)


def test_launch_request_derives_its_token_and_validates() -> None:
    req = LaunchRequest.for_claim("c1", [("m5.large", "us-east-1a")], "spot", attempt=2, scope="x")
    assert req.client_token == client_token("c1", attempt=2, scope="x")
    assert req.offerings() == (Offering("m5.large", "us-east-1a", "spot"),)
    plain = LaunchRequest("c1", (("m5.large", "us-east-1a"),), "on-demand")
    assert plain.client_token == client_token("c1")
    with pytest.raises(ValueError, match="no candidate"):
        LaunchRequest.for_claim("c1", [], "spot")
    with pytest.raises(ValueError, match="capacity"):
        LaunchRequest("c1", (("m5.large", "us-east-1a"),), "reserved")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="64"):
        LaunchRequest("c1", (("m5.large", "us-east-1a"),), "spot", client_token="x" * 65)
    with pytest.raises(ValueError, match="claim_id"):
        LaunchRequest("", (("m5.large", "us-east-1a"),), "spot")


def test_notice_windows_per_cloud() -> None:
    assert NOTICE_WINDOWS["aws"] == timedelta(minutes=2)
    assert NOTICE_WINDOWS["alibaba"] == timedelta(minutes=5)
    assert NOTICE_WINDOWS["azure"] == timedelta(seconds=30)


# --- errors ----------------------------------------------------------------------------------


def test_error_tree_and_retryability() -> None:
    ice = InsufficientCapacity([("g5.xlarge", "us-east-1a", "spot")], "no room")
    assert isinstance(ice, CloudError) and ice.retryable
    assert ice.offerings == (Offering("g5.xlarge", "us-east-1a", "spot"),)
    assert "g5.xlarge/us-east-1a/spot" in str(ice) and ice.code == "InsufficientInstanceCapacity"
    assert Throttled("slow down").retryable
    refused = LaunchRefused("bad", code="AuthFailure")
    assert not refused.retryable and refused.code == "AuthFailure"


# --- the offering cache ----------------------------------------------------------------------


def test_offering_cache_blocks_for_the_ttl_then_forgets() -> None:
    clock = Ticker()
    cache = OfferingCache(clock=clock)
    assert cache.ttl == 180.0  # Karpenter's 3 minutes
    cache.mark("g5.xlarge", "us-east-1a", "spot", reason="InsufficientInstanceCapacity")
    assert cache.blocked("g5.xlarge", "us-east-1a", "spot")
    assert cache.reason("g5.xlarge", "us-east-1a", "spot") == "InsufficientInstanceCapacity"
    # Per offering: the same type on-demand, or in another zone, is not blocked.
    assert not cache.blocked("g5.xlarge", "us-east-1a", "on-demand")
    assert not cache.blocked("g5.xlarge", "us-east-1b", "spot")

    clock.now += 179.9
    assert cache.blocked("g5.xlarge", "us-east-1a", "spot")
    clock.now += 0.1
    assert not cache.blocked("g5.xlarge", "us-east-1a", "spot")
    assert cache.snapshot() == {}


def test_offering_cache_filters_candidates_and_counts_generations() -> None:
    clock = Ticker()
    cache = OfferingCache(60, clock=clock)
    start = cache.generation
    cache.mark_all([("a", "z1", "spot"), Offering("b", "z2", "spot")], reason="ICE")
    cache.mark("c", "z1", "spot", ttl=5)
    assert cache.generation == start + 3
    candidates = [("a", "z1"), ("b", "z1"), ("b", "z2"), ("c", "z1")]
    assert cache.available(candidates, "spot") == (("b", "z1"),)
    assert cache.available(candidates, "on-demand") == tuple(candidates)
    clock.now += 5
    assert cache.available(candidates, "spot") == (("b", "z1"), ("c", "z1"))
    assert set(cache.snapshot()) == {Offering("a", "z1", "spot"), Offering("b", "z2", "spot")}
    cache.clear()
    assert cache.snapshot() == {}
    with pytest.raises(ValueError):
        OfferingCache(0)


# --- names and orphans -----------------------------------------------------------------------


@given(st.text(max_size=300))
def test_label_values_are_valid(value: str) -> None:
    label = label_value(value)
    assert len(label) <= 63
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in label)
    assert not label or (label[0].isalnum() and label[-1].isalnum())


def test_label_values_keep_valid_ids_and_separate_squeezed_ones() -> None:
    assert label_value("claim-1") == "claim-1"
    assert label_value("a/b") != label_value("a:b")
    assert label_value("x" * 100) != label_value("x" * 101)


def _instance(claim: str, launched: datetime) -> Instance:
    return Instance(f"i-{claim}", "m5.large", "z", "spot", claim, "running", launched)


def test_orphans_are_owned_instances_without_a_known_claim() -> None:
    cloud = FakeCloud(clock=lambda: T0)
    for claim in ("known", "lost"):
        cloud.launch(LaunchRequest.for_claim(claim, [("m5.large", "us-east-1a")], "spot"))
    orphans = owned_without_claims(cloud, ["known"])
    assert [o.claim_id for o in orphans] == ["lost"]
    # A young instance is spared: its claim may be being recorded right now.
    assert (
        owned_without_claims(
            cloud, ["known"], now=T0 + timedelta(seconds=10), grace=timedelta(seconds=30)
        )
        == []
    )
    late = owned_without_claims(
        cloud, [], now=T0 + timedelta(minutes=5), grace=timedelta(seconds=30)
    )
    assert sorted(o.claim_id for o in late) == ["known", "lost"]
