"""Prometheus metrics of the webhook, on a registry owned by one app instance.

A registry per app (not the global default) keeps tests independent and lets
several apps live in one process. Under gunicorn with several workers each
worker counts into files of one shared directory (``PROMETHEUS_MULTIPROC_DIR``,
set by :func:`spotpack.serving.serve`), and /metrics sums them: whichever worker
answers a scrape, it reports the whole server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class WebhookMetrics:
    registry: CollectorRegistry
    admissions: Counter
    latency: Histogram
    rejected_bodies: Counter
    shared_dir: str | None = None
    """The workers' shared metric directory, when several workers serve."""

    def exposition(self) -> bytes:
        """The text format of every worker's figures (of this process's alone when single)."""
        if self.shared_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.shared_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def create_metrics(shared_dir: str | None = None) -> WebhookMetrics:
    """Metrics on a registry of their own; ``shared_dir`` defaults to the environment's."""
    if shared_dir is None:
        shared_dir = os.environ.get(MULTIPROC_ENV) or None
    registry = CollectorRegistry()
    return WebhookMetrics(
        shared_dir=shared_dir,
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
