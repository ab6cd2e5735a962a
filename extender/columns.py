"""What filter and prioritize read of every node, as arrays: one vector pass per request.

kube-scheduler sends prioritize the names of every feasible node (500 at
5,000 nodes, up to all of them), and the answer sits on the scheduling cycle
of every pod. A loop in Python costs ~0.6 us a node; the same arithmetic
over numpy arrays costs one dict lookup a name plus microseconds, 4-6x less
at 500 and 5,000 names (measured on the benchmark cluster).

The columns mirror :class:`~extender.state.ClusterState`: the state marks a
node *dirty* whenever its price, risk or GPU usage changes (a handful of
places, all under the state's lock) and :meth:`NodeColumns.sync` copies the
dirty rows before a read. Rows of deleted nodes are reused.

Per row: hourly price (NaN: unknown), risk score, spot, interrupted, HAMi fill (the three usage
ratios summed), ``1/total slots`` and ``1/total MiB``, whether the node has
a GPU inventory, and the ``K`` largest free MiB of its open cards, sorted
down (``-1`` padded): the simple shape's exact fit test is then
``free[row, count - 1] >= MiB`` (see :func:`extender.decide.simple_shape`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spotpack.scoring.binpack import SNAP
from spotpack.scoring.combine import MAX_SCORE
from spotpack.scoring.price import NEUTRAL

if TYPE_CHECKING:
    from extender.state import NodeEntry

K = 16
"""Free-memory columns kept per node: pods asking more vGPUs than this take the loop path."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """The columns of the requested rows (copies: safe to use after the lock is gone)."""

    idx: np.ndarray
    """The row of each name (-1: not cached)."""
    known: np.ndarray
    """Whether the name is a cached node."""
    price: np.ndarray
    risk: np.ndarray
    has_gpu: np.ndarray
    fill: np.ndarray
    inv_slots: np.ndarray
    inv_mem: np.ndarray
    free: np.ndarray | None
    """``free[:, count - 1]`` of each row when a GPU shape was asked, else None."""
    spot: np.ndarray
    interrupted: np.ndarray
    card_mem: np.ndarray | None
    """``card_mem[:, count - 1]``: the ``count``-th largest usable card (None with ``free``)."""
    top_card: np.ndarray
    """Each row's largest usable card, MiB (-1 without GPUs)."""


# Columns of the float matrix (one row per node); flags are stored as 0.0 / 1.0.
PRICE, RISK, FILL, INV_SLOTS, INV_MEM, HAS_GPU, SPOT, INTERRUPTED = range(8)
_EMPTY_NUM = (np.nan, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class NodeColumns:
    """Numbers per node in two matrices indexed by row; ``rows`` maps node names to rows.

    ``num`` holds the floats (see the column indices above) and ``ints`` the
    free MiB of the ``K`` most free open cards then the MiB of the ``K`` largest
    usable cards, so a read is two fancy-index copies, whatever the columns.
    ``generation`` changes whenever a row is given to another node: row numbers
    remembered across requests are valid only for the same generation.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.rows: dict[str, int] = {}
        self.fragments: list[tuple[bytes, ...]] = [()] * capacity
        """Each row's ready ``{"Host", "Score"}`` JSON (see ``NodeEntry.priorities``)."""
        self.generation = 0
        self._free_rows: list[int] = list(range(capacity - 1, -1, -1))
        self._dirty: set[str] = set()
        self.num = np.tile(np.array(_EMPTY_NUM), (capacity, 1))
        self.ints = np.full((capacity, 2 * K), -1, dtype=np.int64)

    def _grow(self) -> None:
        old = len(self.num)
        self.num = np.vstack([self.num, np.tile(np.array(_EMPTY_NUM), (old, 1))])
        self.ints = np.vstack([self.ints, np.full((old, 2 * K), -1, dtype=np.int64)])
        self.fragments.extend([()] * old)
        self._free_rows.extend(range(old * 2 - 1, old - 1, -1))

    # --- writes (the state's lock held) ----------------------------------------------

    def mark(self, name: str) -> None:
        """The node's numbers changed (or it went away): copy them before the next read."""
        self._dirty.add(name)

    def sync(self, nodes: Mapping[str, NodeEntry]) -> None:
        """Copy every dirty node's numbers into its row; free the rows of deleted nodes."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        for name in dirty:
            entry = nodes.get(name)
            if entry is None:
                self._forget(name)
            else:
                self._write(name, entry)

    def _forget(self, name: str) -> None:
        row = self.rows.pop(name, None)
        if row is None:
            return
        self.num[row] = _EMPTY_NUM
        self.ints[row] = -1
        self.fragments[row] = ()
        self._free_rows.append(row)
        self.generation += 1

    def _write(self, name: str, entry: NodeEntry) -> None:
        row = self.rows.get(name)
        if row is None:
            if not self._free_rows:
                self._grow()
            row = self._free_rows.pop()
            self.rows[name] = row
            self.generation += 1
        self.fragments[row] = entry.priorities
        values = list(_EMPTY_NUM)
        values[PRICE] = np.nan if entry.price is None else entry.price
        values[RISK] = entry.risk
        values[SPOT] = float(entry.view.spot)
        values[INTERRUPTED] = float(bool(entry.view.interrupted))
        ints = self.ints[row]
        ints[:] = -1
        usage, gpus = entry.usage, entry.view.gpus
        if usage is not None and gpus is not None:
            values[HAS_GPU] = 1.0
            values[FILL] = usage.fill
            values[INV_SLOTS], values[INV_MEM] = gpus.inverse_totals[:2]
            top = usage.free_desc[:K]
            ints[: len(top)] = top
            usable = sorted(
                (
                    mem
                    for mem, healthy, slots in zip(gpus.mem, gpus.healthy, gpus.slots, strict=True)
                    if healthy and slots > 0
                ),
                reverse=True,
            )[:K]
            ints[K : K + len(usable)] = usable
        self.num[row] = values

    # --- reads (the state's lock held) ------------------------------------------------

    def index(self, names: Iterable[str]) -> np.ndarray:
        """The row of each name, -1 for names not cached."""
        get = self.rows.get
        return np.array([get(name, -1) for name in names], dtype=np.int64)

    def gather(self, idx: np.ndarray, count: int | None) -> Gathered:
        """Copies of the rows' columns; ``free`` at ``count - 1`` when ``count`` is given."""
        known = idx >= 0
        at = np.where(known, idx, 0)
        num = self.num[at]
        k = (count or 1) - 1
        ints = self.ints[at[:, None], np.array([k, K + k, K])]
        has_gpu = (num[:, HAS_GPU] > 0) & known
        return Gathered(
            idx=idx,
            known=known,
            price=num[:, PRICE],
            risk=num[:, RISK],
            has_gpu=has_gpu,
            fill=num[:, FILL],
            inv_slots=num[:, INV_SLOTS],
            inv_mem=num[:, INV_MEM],
            free=ints[:, 0] if count is not None else None,
            spot=num[:, SPOT] > 0,
            interrupted=num[:, INTERRUPTED] > 0,
            card_mem=ints[:, 1] if count is not None else None,
            top_card=ints[:, 2],
        )


@dataclass(frozen=True, slots=True)
class FilterMasks:
    """The filter's buckets over gathered rows; every row is in exactly one mask."""

    ok: np.ndarray
    not_cached: np.ndarray
    wrong_type: np.ndarray
    """Capacity type against the pod's need (same reason for every such node)."""
    no_gpus: np.ndarray
    full: np.ndarray
    """Nodes the pod would fit if pods were evicted (resolvable)."""
    too_small: np.ndarray
    """Nodes whose cards are smaller than the vGPU asked (unresolvable)."""
    too_few: np.ndarray
    """Nodes without ``count`` usable cards big enough, even empty (unresolvable)."""
    interrupted: np.ndarray
    """Interrupted nodes: the reason names the notice, so they are visited one by one."""

    @property
    def all_ok(self) -> bool:
        """Whether every node passed, so the answer needs no failure reasons."""
        return bool(self.ok.all())


def filter_masks(cols: Gathered, *, on_demand: bool, spot: bool, need: int | None) -> FilterMasks:
    """Sort the rows: not cached, interrupted, wrong capacity type, no GPUs, too full, ok.

    ``need`` is the MiB per vGPU of the pod's simple shape (``cols.free`` then
    holds each row's ``count``-th largest free MiB), None for a pod without GPUs.
    """
    known = cols.known
    if on_demand:
        wrong = cols.spot
    elif spot:
        wrong = ~cols.spot
    else:
        wrong = np.zeros_like(known)
    interrupted = known & cols.interrupted
    eligible = known & ~cols.interrupted & ~wrong
    nothing = np.zeros_like(known)
    ok, no_gpus, full, too_small, too_few = eligible, nothing, nothing, nothing, nothing
    if need is not None and cols.free is not None and cols.card_mem is not None:
        gpu = eligible & cols.has_gpu
        ok = gpu & (cols.free >= need)
        no_gpus = eligible & ~cols.has_gpu
        refused = gpu & ~ok
        too_small = refused & (cols.top_card < need)
        empty_fits = cols.card_mem >= need
        full = refused & ~too_small & empty_fits
        too_few = refused & ~too_small & ~empty_fits
    return FilterMasks(
        ok=ok,
        not_cached=~known,
        wrong_type=known & ~cols.interrupted & wrong,
        no_gpus=no_gpus,
        full=full,
        too_small=too_small,
        too_few=too_few,
        interrupted=interrupted,
    )


@dataclass(frozen=True, slots=True)
class Candidates:
    """The nodes a pod passed filter with, kept for its prioritize call.

    kube-scheduler sends prioritize the nodes that passed every filter, usually
    exactly the names the extender passed: then their rows need no lookup again.
    Valid while the columns' ``generation`` is the one recorded.
    """

    names: list[str]
    rows: np.ndarray
    generation: int


def passed_candidates(
    cols: Gathered, names: list[str], mask: np.ndarray, generation: int
) -> Candidates:
    """The rows that passed (``mask``) for prioritize; ``names`` are kept as given, so a
    caller whose every node passed needs no copy (the others replace them with the passed)."""
    return Candidates(names, cols.idx[mask], generation)


def rows_for(columns: NodeColumns, names: list[str], hint: Candidates | None) -> np.ndarray:
    """The rows of ``names``: the filter's when the names are the ones it passed."""
    if hint is not None and hint.generation == columns.generation and hint.names == names:
        return hint.rows
    return columns.index(names)


def answer_parts(columns: NodeColumns, idx: np.ndarray, scores: list[int]) -> list[bytes | None]:
    """Each row's JSON for its score (None for names not cached); under the state's lock."""
    kept = columns.fragments
    rows = idx.tolist()
    return [kept[row][score] if row >= 0 else None for row, score in zip(rows, scores, strict=True)]


def pick(names: list[str], mask: np.ndarray) -> list[str]:
    """The names where ``mask`` is set, in input order."""
    return [names[i] for i in np.flatnonzero(mask).tolist()]


def pick_by(names: list[str], mask: np.ndarray, values: np.ndarray) -> dict[int, list[str]]:
    """The names where ``mask`` is set, grouped by their ``values`` (e.g. card size)."""
    groups: dict[int, list[str]] = {}
    for i, value in zip(np.flatnonzero(mask).tolist(), values[mask].tolist(), strict=True):
        groups.setdefault(value, []).append(names[i])
    return groups


def vector_scores(
    cols: Gathered,
    shape: tuple[int, int] | None,
    spread: bool,
    *,
    weights: tuple[float, float, float],
) -> list[int]:
    """Scores 0..10 of the gathered rows: the same formula as the loop in
    :func:`extender.decide.prioritize_scores`, term for term and in the same
    order of operations, so both give the same integers (a property test checks).

    ``shape`` is the pod's simple vGPU shape ``(count, MiB)``, None for a pod
    without GPUs (then no node has a GPU term); ``weights`` are (GPU, risk, price).
    """
    w_gpu, w_risk, w_price = weights
    known_price = cols.known & ~np.isnan(cols.price)
    if known_price.any():
        priced = cols.price[known_price]
        lo, hi = float(priced.min()), float(priced.max())
    else:
        lo = hi = 0.0
    per_dollar = w_price * 100.0 / (hi - lo) if hi > lo else 0.0
    best, neutral = w_price * 100.0, w_price * NEUTRAL
    price_part = np.where(known_price, best - (cols.price - lo) * per_dollar, neutral)
    total = w_risk * cols.risk + price_part
    base = w_risk + w_price
    with_gpu = base + w_gpu
    mean = total / base if base > 0 else np.zeros_like(total)
    if shape is not None and cols.free is not None:
        count, need = shape
        packed = cols.fill + count * cols.inv_slots + (need * count) * cols.inv_mem
        packed = np.floor(np.minimum(packed, 3.0) * (100.0 / 3.0) * SNAP + 0.5) / SNAP
        term = 100.0 - packed if spread else packed
        gpu = np.where(cols.free >= need, term, 0.0)
        mixed = (total + w_gpu * gpu) / with_gpu if with_gpu > 0 else np.zeros_like(total)
        mean = np.where(cols.has_gpu, mixed, mean)
    scores = np.minimum((mean * 0.1 + 0.5).astype(np.int64), MAX_SCORE)
    scores[~cols.known] = 0
    result: list[int] = scores.tolist()
    return result
