"""Identical pending pods aggregated into kinds, so the planner packs counts, not objects.

Two pods are of one kind when everything the planner looks at is equal:
resources, GPU demand, capacity need, arch, zones, GPU model filters and
re-run cost. 10,000 Spark executors of 50 applications are ~50 kinds, and the
packer's work grows with kinds, not pods.

A kind's pod keys are sorted by (group, key): when pods are handed out to
nodes in that order, the pods of one application land on the same nodes,
which keeps an application's executors together (and lets its nodes go
together when it ends). Everything is sorted, never iterated in set order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spotpack.gpu.assignment import ContainerKind
from spotpack.gpu.demand import PreparedDemand, Step, prepare
from spotpack.provisioning.model import CapacityNeed, CapacityType, Offering, PodDemand, Resources


@dataclass(slots=True)
class PodKind:
    """Pods that are interchangeable for the planner (internal, mutable only while built)."""

    index: int
    sample: PodDemand
    keys: list[str]
    resources: Resources
    prepared: PreparedDemand | None
    step: Step | None
    """The single app-container GPU step, for the fast per-card arithmetic; None otherwise."""

    @property
    def need(self) -> CapacityNeed:
        return self.sample.capacity

    @property
    def arch(self) -> frozenset[str] | None:
        return self.sample.arch

    @property
    def zones(self) -> frozenset[str] | None:
        return self.sample.zones

    @property
    def rerun(self) -> float:
        return self.sample.rerun_cost

    @property
    def is_gpu(self) -> bool:
        return self.prepared is not None

    @property
    def gpu_complex(self) -> bool:
        """GPU demand the fast arithmetic does not cover (several containers, init containers)."""
        return self.prepared is not None and self.step is None

    def allows(self, capacity: CapacityType, zone: str, arch: str) -> bool:
        return (
            self.sample.capacity.allows(capacity)
            and (self.sample.zones is None or zone in self.sample.zones)
            and (self.sample.arch is None or arch in self.sample.arch)
        )

    def allows_offering(self, offering: Offering) -> bool:
        """Capacity type, zone, arch, GPU presence and card model all acceptable."""
        if not self.allows(offering.capacity, offering.zone, offering.arch):
            return False
        if self.prepared is None:
            return offering.gpu is None
        gpu = offering.gpu
        return (
            gpu is not None
            and gpu.count >= self.sample.gpu.min_cards
            and self.prepared.model_ok(gpu.model.lower())
        )

    def describe(self) -> str:
        text = self.resources.describe()
        if self.sample.is_gpu:
            requests = "; ".join(c.request.describe() for c in self.sample.gpu.containers)
            text += f" gpu=({requests})"
        return text


def kind_key(d: PodDemand) -> tuple[object, ...]:
    return (
        d.resources,
        d.gpu,
        d.capacity,
        d.arch,
        d.zones,
        d.rerun_cost,
        d.gpu_include,
        d.gpu_exclude,
    )


def _simple_step(prepared: PreparedDemand) -> Step | None:
    steps = prepared.steps
    if len(steps) == 1 and steps[0].kind is ContainerKind.APP:
        return steps[0]
    return None


def aggregate(pending: Iterable[PodDemand]) -> tuple[list[PodKind], list[str]]:
    """Kinds in a stable order (by their first pod key), and keys seen twice (dropped)."""
    groups: dict[tuple[object, ...], list[PodDemand]] = {}
    seen: set[str] = set()
    duplicates: list[str] = []
    for demand in pending:
        if demand.key in seen:
            duplicates.append(demand.key)
            continue
        seen.add(demand.key)
        groups.setdefault(kind_key(demand), []).append(demand)
    ordered = []
    for members in groups.values():
        members.sort(key=lambda d: (d.group, d.key))
        ordered.append((min(d.key for d in members), members))
    ordered.sort(key=lambda item: item[0])
    kinds = []
    for index, (_, members) in enumerate(ordered):
        sample = members[0]
        prepared = None
        if sample.is_gpu:
            prepared = prepare(sample.gpu, include=sample.gpu_include, exclude=sample.gpu_exclude)
        kinds.append(
            PodKind(
                index=index,
                sample=sample,
                keys=[d.key for d in members],
                resources=sample.resources,
                prepared=prepared,
                step=_simple_step(prepared) if prepared is not None else None,
            )
        )
    return kinds, sorted(duplicates)


__all__ = ["PodKind", "aggregate", "kind_key"]
