"""Step 1 of a plan: put pending pods on capacity that exists or is already on its way.

Existing nodes cost nothing more, and an in-flight node (launched for an
earlier plan, not registered yet) is paid for already, so both are used
before anything new is bought. First-fit decreasing: GPU kinds first (they
have the fewest places to go), then larger kinds before smaller ones;
registered nodes before in-flight ones, each by name. GPU pods go through
:func:`spotpack.gpu.fit.fit_prepared` on a copy of the node's usage, so vGPU
slots, memory and cores are honoured per card exactly as the extender will.

A pod without GPU requests never goes on a GPU node (those are tainted for
GPU work in practice, and a CPU pod there would block the cards' owner).
"""

from __future__ import annotations

from collections.abc import Sequence

from spotpack.gpu.assignment import Assignment
from spotpack.gpu.fit import fit_prepared
from spotpack.gpu.usage import NodeUsage
from spotpack.provisioning.kinds import PodKind
from spotpack.provisioning.model import NodeCapacity


class _Node:
    """Mutable view of one node's free room during step 1."""

    __slots__ = ("cpu", "mem", "node", "pods", "usage")

    def __init__(self, node: NodeCapacity) -> None:
        self.node = node
        self.cpu = node.free.cpu_m
        self.mem = node.free.mem_mib
        self.pods = node.free.pods
        self.usage: NodeUsage | None = None

    def gpu_usage(self) -> NodeUsage | None:
        gpus = self.node.gpus
        if gpus is None:
            return None
        if self.usage is None:
            base = self.node.usage
            self.usage = base.copy() if base is not None else NodeUsage(gpus)
        return self.usage


def _size(kind: PodKind) -> tuple[int, int, int, int]:
    r = kind.resources
    gpus = kind.sample.gpu.total_vgpus if kind.is_gpu else 0
    return (-int(kind.is_gpu), -gpus, -(r.cpu_m + r.mem_mib // 4), kind.index)


def place_on_existing(
    kinds: Sequence[PodKind], counts: list[int], nodes: Sequence[NodeCapacity]
) -> list[tuple[int, str, int]]:
    """Place what fits; returns (kind index, node name, pods) in placement order.

    ``counts`` is decremented in place.
    """
    ordered = sorted(nodes, key=lambda n: (n.in_flight, n.name))
    views = [_Node(n) for n in ordered]
    placed: list[tuple[int, str, int]] = []
    for kind in sorted(kinds, key=_size):
        for view in views:
            left = counts[kind.index]
            if left <= 0:
                break
            node = view.node
            if not kind.allows(node.capacity, node.zone, node.arch):
                continue
            if kind.is_gpu != (node.gpus is not None):
                continue
            n = _fit_count(kind, view, left)
            if n > 0:
                counts[kind.index] -= n
                placed.append((kind.index, node.name, n))
    return placed


def _fit_count(kind: PodKind, view: _Node, left: int) -> int:
    r = kind.resources
    room = min(left, view.pods // max(r.pods, 1))
    if r.cpu_m > 0:
        room = min(room, view.cpu // r.cpu_m)
    if r.mem_mib > 0:
        room = min(room, view.mem // r.mem_mib)
    if room <= 0:
        return 0
    n = room
    prepared = kind.prepared
    if prepared is not None:
        n = _place_gpu(kind, view, room)
    view.cpu -= n * r.cpu_m
    view.mem -= n * r.mem_mib
    view.pods -= n * r.pods
    return n


def _place_gpu(kind: PodKind, view: _Node, room: int) -> int:
    usage = view.gpu_usage()
    gpus = view.node.gpus
    prepared = kind.prepared
    if usage is None or gpus is None or prepared is None:
        return 0
    kinds = tuple(s.kind for s in prepared.steps)
    n = 0
    while n < room:
        result = fit_prepared(prepared, gpus, usage)
        if not result.ok or result.assignment_devices is None:
            break
        usage.add(Assignment(view.node.name, result.assignment_devices, kinds=kinds))
        n += 1
    return n


__all__ = ["place_on_existing"]
