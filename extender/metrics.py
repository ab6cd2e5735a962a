"""Prometheus metrics of the extender, on a registry owned by one app instance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class ExtenderMetrics:
    registry: CollectorRegistry
    latency: Histogram
    decisions: Counter
    bad_requests: Counter


def create_metrics(
    counts: Callable[[], tuple[int, int, int]], drift: Callable[[], int]
) -> ExtenderMetrics:
    """Metrics; cache sizes are read from the state when scraped, not kept on the hot path."""
    registry = CollectorRegistry()
    cache = Gauge(
        "spotpack_extender_cache_objects", "Objects in the cache.", ["kind"], registry=registry
    )
    cache.labels("nodes").set_function(lambda: counts()[0])
    cache.labels("gpu_pods").set_function(lambda: counts()[1])
    Gauge(
        "spotpack_extender_reservations",
        "Card reservations made at bind, not yet seen bound.",
        registry=registry,
    ).set_function(lambda: counts()[2])
    Gauge(
        "spotpack_extender_drift",
        "Pods whose seen assignment differed from the one held.",
        registry=registry,
    ).set_function(drift)
    return ExtenderMetrics(
        registry=registry,
        latency=Histogram(
            "spotpack_extender_request_seconds",
            "Time to answer, by verb.",
            ["verb"],
            buckets=BUCKETS,
            registry=registry,
        ),
        decisions=Counter(
            "spotpack_extender_decisions",
            "Decisions, by verb and result.",
            ["verb", "result"],
            registry=registry,
        ),
        bad_requests=Counter(
            "spotpack_extender_bad_requests",
            "Bodies that were not extender arguments.",
            ["verb"],
            registry=registry,
        ),
    )
