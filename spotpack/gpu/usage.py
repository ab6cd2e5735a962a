"""What is taken on a node's cards, rebuilt from the assignments of the pods on it.

Per card we count used vGPU slots, MiB and percent of cores. A grant of 100
cores or more is exclusive and counts as *all* of its card's cores, so a
later request of any size sees the card's compute exhausted (HAMi's rule).

A pod is counted with Kubernetes' init-container rule, per card and per
measure: init containers run one at a time before the app containers, and
sidecars (init containers with ``restartPolicy: Always``) keep running::

    app_phase = sum(app) + sum(sidecars)
    init_peak = max over plain init containers i of (init_i + sidecars before i)
    load      = max(app_phase, init_peak)

which is what :mod:`spotpack.gpu.fit` checks, so fits added here never
over-commit a card. ``add``/``remove`` cost O(devices of the pod) plus one
O(cards) refresh of the node summary that the fit's pre-check reads. Removing
more than was added is clamped at zero and counted in ``drift``.

The annotation formats live in :mod:`spotpack.gpu.assignment` (ours) and
:mod:`spotpack.gpu.hami` (HAMi's); their names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spotpack.gpu.assignment import (
    GPU_ASSIGNMENT,
    Assignment,
    ContainerKind,
    DeviceGrant,
    InvalidAssignment,
    build_assignment,
    decode_assignment,
    encode_assignment,
    pod_layout,
)
from spotpack.gpu.hami import assignment_from_hami, hami_annotations
from spotpack.gpu.inventory import FULL_CORES, Card, NodeGPUs
from spotpack.vgpu.model import as_mapping

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

Load = tuple[int, int, int]
"""(slots, MiB, cores) a pod holds on one card."""


def assignment_of_pod(pod: Mapping[str, Any]) -> Assignment | None:
    """A pod's assignment: ours (``spotpack.io/gpu-assignment``) first, HAMi's second.

    Raises :class:`InvalidAssignment` when the annotation present is garbage;
    the caller logs it (and may still try :func:`assignment_from_hami`). A
    HAMi assignment without ``hami.io/vgpu-node`` takes the pod's
    ``spec.nodeName``. Terminated pods still return their assignment: see
    :func:`is_terminated`.
    """
    meta = as_mapping(pod.get("metadata"))
    annotations = as_mapping(meta.get("annotations"))
    ours = annotations.get(GPU_ASSIGNMENT)
    if ours is not None:
        return decode_assignment(ours)
    found = assignment_from_hami(annotations, pod_layout(pod))
    if found is not None and not found.node:
        node = as_mapping(pod.get("spec")).get("nodeName")
        if isinstance(node, str) and node:
            found = Assignment(
                node, found.containers, found.names, found.kinds, found.version, found.source
            )
    return found


def is_terminated(pod: Mapping[str, Any]) -> bool:
    """A pod that finished (Succeeded/Failed) holds no GPU, whatever its annotations say."""
    return as_mapping(pod.get("status")).get("phase") in TERMINAL_PHASES


def _add(table: dict[int, list[int]], position: int, load: Load) -> None:
    row = table.get(position)
    if row is None:
        table[position] = [load[0], load[1], load[2]]
    else:
        row[0] += load[0]
        row[1] += load[1]
        row[2] += load[2]


def card_loads(
    gpus: NodeGPUs,
    containers: tuple[tuple[DeviceGrant, ...], ...],
    kinds: tuple[ContainerKind, ...],
) -> tuple[dict[int, Load], tuple[str, ...]]:
    """Per card position, what the pod holds (see the module docstring); and unknown cards."""
    positions, caps = gpus.positions, gpus.cores
    app: dict[int, list[int]] = {}
    sidecars: dict[int, list[int]] = {}
    init_peak: dict[int, list[int]] = {}
    unknown: list[str] = []
    for devices, kind in zip(containers, kinds, strict=True):
        own: dict[int, list[int]] = {}
        target = own if kind is ContainerKind.INIT else sidecars
        target = app if kind is ContainerKind.APP else target
        for grant in devices:
            position = positions.get(grant.uuid)
            if position is None:
                unknown.append(grant.uuid)
                continue
            cores = caps[position] if grant.cores >= FULL_CORES else grant.cores
            _add(target, position, (1, grant.mem_mib, cores))
        for position, row in own.items():
            base = sidecars.get(position, (0, 0, 0))
            peak = init_peak.setdefault(position, [0, 0, 0])
            for k in range(3):
                peak[k] = max(peak[k], row[k] + base[k])
    for position, row in sidecars.items():
        _add(app, position, (row[0], row[1], row[2]))
    loads: dict[int, Load] = {}
    for position in app.keys() | init_peak.keys():
        a = app.get(position, (0, 0, 0))
        p = init_peak.get(position, (0, 0, 0))
        loads[position] = (max(a[0], p[0]), max(a[1], p[1]), max(a[2], p[2]))
    problems = tuple(f"card {uuid} is not on the node" for uuid in unknown)
    return loads, problems


@dataclass(frozen=True, slots=True)
class CardState:
    """One card and what is used on it, for ``/inspect``."""

    card: Card
    used_slots: int
    used_mem_mib: int
    used_cores: int


def open_columns(
    gpus: NodeGPUs, used_slots: list[int], used_mem: list[int], used_cores: list[int]
) -> tuple[list[int], list[int]]:
    """Per card: free MiB if the card is *open*, and free cores; -1 for closed cards.

    Open = healthy, a free vGPU slot, and compute not exhausted (used cores
    below capacity): the cards a new vGPU may go on at all. Precomputed so the
    fit's loop reads two lists instead of six.
    """
    free_open: list[int] = []
    free_cores: list[int] = []
    for i, taken in enumerate(used_cores):
        cap = gpus.cores[i]
        if gpus.healthy[i] and used_slots[i] < gpus.slots[i] and taken < cap:
            free_open.append(max(gpus.mem[i] - used_mem[i], 0))
            free_cores.append(cap - taken)
        else:
            free_open.append(-1)
            free_cores.append(-1)
    return free_open, free_cores


class NodeUsage:
    """Used slots, MiB and cores per card of one node (lists indexed by card position).

    Besides the per-card lists it keeps a summary for the fit's pre-check and
    the node score, refreshed on every change: ``open_cards`` (healthy cards
    with a free slot and cores left), ``idle_cards`` (open and unused),
    ``max_free_mem`` over the open cards (and its
    position ``max_free_pos``), and the node sums ``sum_slots``, ``sum_mem``,
    ``sum_cores``.
    """

    __slots__ = (
        "drift",
        "fill",
        "free_cores",
        "free_desc",
        "free_open",
        "gpus",
        "idle_cards",
        "max_free_mem",
        "max_free_pos",
        "memo",
        "open_cards",
        "sum_cores",
        "sum_mem",
        "sum_slots",
        "used_cores",
        "used_mem",
        "used_slots",
        "version",
    )

    def __init__(self, gpus: NodeGPUs) -> None:
        n = len(gpus.cards)
        self.gpus = gpus
        self.used_slots = [0] * n
        self.used_mem = [0] * n
        self.used_cores = [0] * n
        self.drift = 0
        """How many times a removal would have gone below zero (then clamped)."""
        self.version = 0
        """Bumped after every change: memoized fit results of older versions are ignored."""
        self.memo: dict[int, tuple[object, int, object]] = {}
        """id(prepared demand) -> (prepared, version, result), kept by :mod:`spotpack.gpu.fit`."""
        self.free_open: list[int] = []
        """Per card, free MiB when the card is open, else -1 (see :func:`open_columns`)."""
        self.free_cores: list[int] = []
        self.free_desc: list[int] = []
        """``free_open`` sorted from the most free: ``free_desc[k - 1]`` bounds a k-card fit."""
        self.open_cards = 0
        self.idle_cards = 0
        """Open cards nobody uses: where an exclusive vGPU may go."""
        self.max_free_mem = 0
        self.max_free_pos = -1
        self.sum_slots = self.sum_mem = self.sum_cores = 0
        self.fill = 0.0
        self._refresh()

    @classmethod
    def build(
        cls, gpus: NodeGPUs, assignments: Iterable[Assignment]
    ) -> tuple[NodeUsage, tuple[str, ...]]:
        """Usage of ``gpus`` from the assignments of the pods on the node, and any problems."""
        usage = cls(gpus)
        problems: list[str] = []
        for assignment in assignments:
            problems.extend(usage.add(assignment))
        return usage, tuple(problems)

    def add(self, assignment: Assignment) -> tuple[str, ...]:
        """Count a pod's grants; returns problems (cards not on this node) for the log."""
        loads, problems = card_loads(self.gpus, assignment.containers, assignment.kinds)
        for position, (slots, mem, cores) in loads.items():
            self.used_slots[position] += slots
            self.used_mem[position] += mem
            self.used_cores[position] += cores
        self._refresh()
        return problems

    def remove(self, assignment: Assignment) -> tuple[str, ...]:
        """Un-count a pod's grants, clamping at zero; returns problems (drift) for the log."""
        loads, problems = card_loads(self.gpus, assignment.containers, assignment.kinds)
        drifted: list[str] = []
        columns = (self.used_slots, self.used_mem, self.used_cores)
        for position, load in loads.items():
            for column, amount in zip(columns, load, strict=True):
                left = column[position] - amount
                if left < 0:
                    self.drift += 1
                    drifted.append(f"{self.gpus.describe(position)}: removed more than was used")
                    left = 0
                column[position] = left
        self._refresh()
        return problems + tuple(drifted)

    def free_mem(self, position: int) -> int:
        return self.gpus.mem[position] - self.used_mem[position]

    def copy(self) -> NodeUsage:
        other = NodeUsage.__new__(NodeUsage)
        for name in NodeUsage.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        other.memo = {}
        return other

    def rebase(self, gpus: NodeGPUs) -> NodeUsage:
        """The same usage on a new inventory of the node (health or cordon changed), by UUID.

        Usage on cards that disappeared is dropped: the pods holding them are
        re-added by the caller when their assignments are re-read.
        """
        other = NodeUsage(gpus)
        for position, card in enumerate(self.gpus.cards):
            target = gpus.positions.get(card.uuid)
            if target is not None:
                other.used_slots[target] = self.used_slots[position]
                other.used_mem[target] = self.used_mem[position]
                other.used_cores[target] = self.used_cores[position]
        other.drift = self.drift
        other._refresh()
        return other

    def cards(self) -> tuple[CardState, ...]:
        return tuple(
            CardState(card, self.used_slots[i], self.used_mem[i], self.used_cores[i])
            for i, card in enumerate(self.gpus.cards)
        )

    def _refresh(self) -> None:
        """Recompute the summary, then invalidate memoized fits (version last: see ``memo``)."""
        used_slots, used_mem, used_cores = self.used_slots, self.used_mem, self.used_cores
        self.free_open, self.free_cores = open_columns(self.gpus, used_slots, used_mem, used_cores)
        self.free_desc = sorted(self.free_open, reverse=True)
        best = self.free_desc[0] if self.free_desc else -1
        self.open_cards = sum(1 for free in self.free_open if free >= 0)
        self.idle_cards = sum(
            1 for i, free in enumerate(self.free_open) if free >= 0 and not used_slots[i]
        )
        self.max_free_mem = max(best, 0)
        self.max_free_pos = self.free_open.index(best) if best >= 0 else -1
        self.sum_slots = sum(used_slots)
        self.sum_mem = sum(used_mem)
        self.sum_cores = sum(used_cores)
        inv_slots, inv_mem, inv_cores = self.gpus.inverse_totals
        self.fill = (
            min(self.sum_slots * inv_slots, 1.0)
            + min(self.sum_mem * inv_mem, 1.0)
            + min(self.sum_cores * inv_cores, 1.0)
        )  # HAMi's three usage ratios summed (0..3), for the binpack score
        self.memo = {}
        self.version += 1


__all__ = [
    "GPU_ASSIGNMENT",
    "Assignment",
    "CardState",
    "ContainerKind",
    "DeviceGrant",
    "InvalidAssignment",
    "NodeUsage",
    "assignment_from_hami",
    "assignment_of_pod",
    "build_assignment",
    "card_loads",
    "decode_assignment",
    "encode_assignment",
    "hami_annotations",
    "is_terminated",
    "open_columns",
    "pod_layout",
]
