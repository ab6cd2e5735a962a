"""Prometheus metrics of the webhook, on a registry owned by one app instance.

A registry per app (not the global default) keeps tests independent and lets
several apps live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class WebhookMetrics:
    registry: CollectorRegistry
    admissions: Counter
    latency: Histogram
    rejected_bodies: Counter


def create_metrics() -> WebhookMetrics:
    registry = CollectorRegistry()
    return WebhookMetrics(
        registry=registry,
        admissions=Counter(
            "spotpack_webhook_admissions",
            "Admission reviews answered, by outcome and detected role.",
            ["result", "role"],
            registry=registry,
        ),
        latency=Histogram(
            "spotpack_webhook_admission_seconds",
            "Time to answer one admission review, parse to response.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        rejected_bodies=Counter(
            "spotpack_webhook_bad_requests",
            "Requests that were not a valid AdmissionReview, by reason.",
            ["reason"],
            registry=registry,
        ),
    )
