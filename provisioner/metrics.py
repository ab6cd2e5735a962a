"""Prometheus metrics of the provisioner, on a registry owned by one service instance.

One registry per instance (never the process-wide default), so two
provisioners in one test process keep separate counts. Gauges of state (cost,
claims by phase, leadership) are read from the loop when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PENDING_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
PHASES = ("launched", "registered", "ready")


@dataclass(frozen=True)
class ProvisionerMetrics:
    registry: CollectorRegistry
    pending_seconds: Histogram
    launched: Counter
    launch_errors: Counter
    interruptions: Counter
    removed: Counter
    evictions: Counter
    plans: Counter
    cost: Gauge
    claims: Gauge
    leader: Gauge

    def bind(
        self,
        *,
        cost_per_hour: Callable[[], float],
        claims_by_phase: Callable[[], Mapping[str, int]],
        leader: Callable[[], bool],
    ) -> None:
        """Read the state gauges from the loop when scraped (the loop calls this once)."""
        self.cost.set_function(cost_per_hour)
        for phase in PHASES:
            self.claims.labels(phase).set_function(_phase_count(claims_by_phase, phase))
        self.leader.set_function(lambda: 1.0 if leader() else 0.0)


def _phase_count(counts: Callable[[], Mapping[str, int]], phase: str) -> Callable[[], float]:
    return lambda: float(counts().get(phase, 0))


def create_metrics() -> ProvisionerMetrics:
    registry = CollectorRegistry()
    return ProvisionerMetrics(
        registry=registry,
        pending_seconds=Histogram(
            "spotpack_provisioner_pod_pending_seconds",
            "Time from a pod being seen Unschedulable until it is bound to a node.",
            buckets=PENDING_BUCKETS,
            registry=registry,
        ),
        launched=Counter(
            "spotpack_provisioner_nodes_launched",
            "Instances launched, by capacity type.",
            ["capacity_type"],
            registry=registry,
        ),
        launch_errors=Counter(
            "spotpack_provisioner_launch_errors",
            "Failed launches, by the cloud's error code.",
            ["code"],
            registry=registry,
        ),
        interruptions=Counter(
            "spotpack_provisioner_interruptions",
            "Interruption notices handled, by kind.",
            ["kind"],
            registry=registry,
        ),
        removed=Counter(
            "spotpack_provisioner_nodes_removed",
            "Nodes and instances removed, by reason.",
            ["reason"],
            registry=registry,
        ),
        evictions=Counter(
            "spotpack_provisioner_evictions",
            "Eviction attempts while draining, by result.",
            ["result"],
            registry=registry,
        ),
        plans=Counter("spotpack_provisioner_plans", "Planning rounds run.", registry=registry),
        cost=Gauge(
            "spotpack_provisioner_cost_per_hour_dollars",
            "Hourly price of the nodes and in-flight claims this replica tracks.",
            registry=registry,
        ),
        claims=Gauge(
            "spotpack_provisioner_claims",
            "Claims this replica tracks, by phase.",
            ["phase"],
            registry=registry,
        ),
        leader=Gauge(
            "spotpack_provisioner_leader",
            "1 while this replica holds the lease.",
            registry=registry,
        ),
    )


__all__ = ["PENDING_BUCKETS", "ProvisionerMetrics", "create_metrics"]
