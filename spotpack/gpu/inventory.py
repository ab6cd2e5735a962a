"""What GPUs a node has: its physical cards, read from the best source available.

Sources, most precise first:

1. **HAMi's registration** ``hami.io/node-nvidia-register``, written by HAMi's
   device plugin: one entry per card with its UUID, split count, memory, cores,
   model, NUMA node and health. Two encodings exist (checked against HAMi's
   ``pkg/device/devices.go`` and its "Protocol design" page):

   - JSON (current): ``[{"id","index","count","devmem","devcore","type",
     "numa","mode","health"}, ...]``. Go's ``omitempty`` drops zero values, so
     a missing ``index``/``numa`` means 0 and a missing ``health`` means
     *false*, exactly as HAMi's own decoder reads it.
   - legacy string: entries ``id,count,devmem,devcore,type,numa,health``
     (newer writers append ``,index,mode``: 9 fields), each followed by ``:``.

2. **GPU feature discovery labels** ``nvidia.com/gpu.count``,
   ``nvidia.com/gpu.memory`` (MiB per card) and ``nvidia.com/gpu.product``.
3. **The instance catalog**, looked up by ``node.kubernetes.io/instance-type``.

Labels and the catalog do not know the split count; HAMi advertises
``count x split`` as allocatable ``nvidia.com/gpu``, so the slots per card are
``allocatable // cards`` (at least 1: the plain NVIDIA plugin gives one pod per
card). They know no UUIDs either: cards get ``<node>/gpu<index>``, stable for
the node's life, which is all the extender's accounting needs.

A malformed annotation is not an error here: the next source is used and the
problem is returned beside the result for the caller to log (this module does
no I/O and no logging). Cards listed in our ``spotpack.io/gpu-cordon``
annotation (comma list of UUIDs or indexes) are marked unhealthy, as are cards
HAMi reports unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import orjson

from spotpack.errors import InvalidQuantity
from spotpack.quantity import parse_whole
from spotpack.vgpu.model import DEFAULT_NAMES, ResourceNames, as_mapping

HAMI_REGISTER = "hami.io/node-nvidia-register"
GPU_CORDON = "spotpack.io/gpu-cordon"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_PRODUCT = "nvidia.com/gpu.product"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"

FULL_CORES = 100
"""A card's SMs in percent: what HAMi's ``devcore`` is without core scaling."""
MAX_CARDS = 64
MAX_ANNOTATION = 256 * 1024
_MAX_INT32 = 2**31 - 1


class InventorySource(StrEnum):
    """Where a node's card list came from."""

    HAMI = "hami"
    LABELS = "labels"
    CATALOG = "catalog"


@dataclass(frozen=True, slots=True)
class Card:
    """One physical GPU.

    ``cores`` is the card's SM capacity in percent (100 = the whole card; HAMi's
    ``devcore``, larger only with core scaling). ``slots`` is how many vGPUs may
    share it (HAMi's ``count``, the split count).
    """

    uuid: str
    index: int
    mem_mib: int
    cores: int = FULL_CORES
    slots: int = 1
    model: str = ""
    numa: int = 0
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """What the catalog knows of an instance type's GPUs: ``count`` cards of one model."""

    count: int
    model: str
    mem_mib: int


@dataclass(frozen=True, slots=True)
class NodeGPUs:
    """A node's cards, in index order, with per-card columns precomputed for the fit loop.

    The columns (``mem``, ``slots``, ``cores``, ``healthy``, ``models_lower``)
    are tuples indexed by *position* in ``cards``, so the per-node fit reads
    plain tuples instead of attributes. Build once per node change, never per
    request.
    """

    cards: tuple[Card, ...]
    source: InventorySource
    mem: tuple[int, ...] = field(init=False, repr=False, compare=False)
    slots: tuple[int, ...] = field(init=False, repr=False, compare=False)
    cores: tuple[int, ...] = field(init=False, repr=False, compare=False)
    healthy: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    models_lower: tuple[str, ...] = field(init=False, repr=False, compare=False)
    positions: Mapping[str, int] = field(init=False, repr=False, compare=False)
    """uuid -> position in ``cards``."""
    healthy_count: int = field(init=False, repr=False, compare=False)
    usable_count: int = field(init=False, repr=False, compare=False)
    """Healthy cards with at least one vGPU slot: the most cards any pod can get here."""
    max_healthy_mem: int = field(init=False, repr=False, compare=False)
    uniform_model: str | None = field(init=False, repr=False, compare=False)
    """The lower-cased model when every card has the same one (the usual case), else None."""
    uniform_mem: int | None = field(init=False, repr=False, compare=False)
    """The cards' MiB when all healthy cards have the same (the usual case), else None."""
    uniform_cores: int | None = field(init=False, repr=False, compare=False)
    """The cards' cores when all healthy cards have the same (always 100 with HAMi), else None."""
    total_mem: int = field(init=False, repr=False, compare=False)
    """MiB over all cards, healthy or not (HAMi's ``totalmem`` in its node score)."""
    total_slots: int = field(init=False, repr=False, compare=False)
    total_cores: int = field(init=False, repr=False, compare=False)
    inverse_totals: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    """1/total slots, 1/total MiB, 1/total cores (0 for a zero total): the binpack score's
    divisions done once per node instead of once per pod."""
    fit_memo: dict[int, tuple[object, bool]] = field(init=False, repr=False, compare=False)
    """Whether a prepared demand fits this node empty, kept by :mod:`spotpack.gpu.fit`."""
    empty_usage: object = field(init=False, repr=False, compare=False)
    """The usage of this node with nothing on it, built once on first need by
    :mod:`spotpack.gpu.fit` (the "would preemption help" check of every new shape)."""

    def __post_init__(self) -> None:
        cards = self.cards
        put = object.__setattr__
        put(self, "mem", tuple(c.mem_mib for c in cards))
        put(self, "slots", tuple(c.slots for c in cards))
        put(self, "cores", tuple(c.cores for c in cards))
        put(self, "healthy", tuple(c.healthy for c in cards))
        put(self, "models_lower", tuple(c.model.lower() for c in cards))
        put(self, "positions", {c.uuid: i for i, c in enumerate(cards)})
        put(self, "healthy_count", sum(1 for c in cards if c.healthy))
        put(self, "usable_count", sum(1 for c in cards if c.healthy and c.slots > 0))
        put(self, "max_healthy_mem", max((c.mem_mib for c in cards if c.healthy), default=0))
        distinct = set(self.models_lower)
        put(self, "uniform_model", distinct.pop() if len(distinct) == 1 else None)
        sizes = {c.mem_mib for c in cards if c.healthy}
        put(self, "uniform_mem", sizes.pop() if len(sizes) == 1 else None)
        cores = {c.cores for c in cards if c.healthy}
        put(self, "uniform_cores", cores.pop() if len(cores) == 1 else None)
        put(self, "total_mem", sum(self.mem))
        put(self, "total_slots", sum(self.slots))
        put(self, "total_cores", sum(self.cores))
        put(
            self,
            "inverse_totals",
            tuple(
                1.0 / t if t > 0 else 0.0
                for t in (self.total_slots, self.total_mem, self.total_cores)
            ),
        )
        put(self, "fit_memo", {})
        put(self, "empty_usage", None)

    @property
    def models(self) -> tuple[str, ...]:
        """Distinct card models, in card order."""
        return tuple(dict.fromkeys(c.model for c in self.cards))

    def describe(self, position: int) -> str:
        """``card 1`` for messages: the index users see in nvidia-smi."""
        return f"card {self.cards[position].index}"


@dataclass(frozen=True, slots=True)
class InventoryResult:
    """The node's GPUs (None: no GPUs known) and what was wrong on the way, for the log."""

    gpus: NodeGPUs | None
    problem: str = ""


GPUSpecLookup = Callable[[str], GPUSpec | None]


def inventory_from_node(
    node: Mapping[str, Any],
    gpu_spec_for: GPUSpecLookup,
    names: ResourceNames = DEFAULT_NAMES,
) -> InventoryResult:
    """Read a raw Node dict's GPUs: HAMi registration, then GFD labels, then the catalog."""
    meta = as_mapping(node.get("metadata"))
    labels = as_mapping(meta.get("labels"))
    annotations = as_mapping(meta.get("annotations"))
    name = meta.get("name")
    node_name = name if isinstance(name, str) else ""
    problems: list[str] = []
    cards: tuple[Card, ...] | None = None
    source = InventorySource.HAMI

    raw = annotations.get(HAMI_REGISTER)
    if raw is not None:
        try:
            cards = parse_hami_register(raw)
        except ValueError as exc:
            problems.append(f"annotation {HAMI_REGISTER} ignored: {exc}")
    if cards is None:
        per_card = _slots_per_card(node, names)
        cards, problem = _from_labels(labels, node_name, per_card)
        source = InventorySource.LABELS
        if problem:
            problems.append(problem)
        if cards is None:
            cards, problem = _from_catalog(labels, node_name, per_card, gpu_spec_for)
            source = InventorySource.CATALOG
            if problem:
                problems.append(problem)
    if not cards:
        return InventoryResult(None, "; ".join(problems))
    cordon = annotations.get(GPU_CORDON)
    if isinstance(cordon, str) and cordon.strip():
        cards = cordoned(cards, cordon)
    return InventoryResult(NodeGPUs(cards, source), "; ".join(problems))


def cordoned(cards: tuple[Card, ...], value: str) -> tuple[Card, ...]:
    """``cards`` with those named in ``value`` (UUIDs or indexes, comma list) unhealthy."""
    tokens = {t.strip() for t in value.split(",") if t.strip()}
    return tuple(
        replace(c, healthy=False) if c.uuid in tokens or str(c.index) in tokens else c
        for c in cards
    )


# --- HAMi ------------------------------------------------------------------------------------


def parse_hami_register(raw: object) -> tuple[Card, ...]:
    """Cards from HAMi's node registration (JSON or legacy string); ValueError when malformed."""
    if not isinstance(raw, str):
        raise ValueError("not a string")
    text = raw.strip()
    if len(text) > MAX_ANNOTATION:
        raise ValueError(f"longer than {MAX_ANNOTATION} characters")
    if text.startswith(("[", "{")):
        try:
            entries = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(entries, list):
            raise ValueError("not a JSON list")
        cards = [_hami_json_card(e, i) for i, e in enumerate(entries)]
    else:
        cards = _hami_legacy_cards(text)
    if not cards:
        raise ValueError("lists no card")
    if len(cards) > MAX_CARDS:
        raise ValueError(f"lists {len(cards)} cards, more than {MAX_CARDS}")
    return _checked(cards)


def _checked(cards: list[Card]) -> tuple[Card, ...]:
    """Unique UUIDs; unique indexes (else positions: an old writer without ``index``)."""
    if len({c.uuid for c in cards}) != len(cards):
        raise ValueError("lists a card UUID twice")
    if len({c.index for c in cards}) != len(cards):
        cards = [replace(c, index=i) for i, c in enumerate(cards)]
    return tuple(sorted(cards, key=lambda c: c.index))


def _int_field(entry: Mapping[str, Any], key: str, where: str, *, minimum: int = 0) -> int:
    value = entry.get(key, 0)
    if type(value) is not int or not minimum <= value <= _MAX_INT32:
        raise ValueError(f"{where}: {key}={value!r} is not a whole number >= {minimum}")
    return value


def _hami_json_card(entry: object, position: int) -> Card:
    where = f"card {position}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} is not an object")
    uuid = entry.get("id")
    if not isinstance(uuid, str) or not uuid.strip():
        raise ValueError(f"{where} has no id")
    model = entry.get("type", "")
    health = entry.get("health", False)
    if not isinstance(model, str) or not isinstance(health, bool):
        raise ValueError(f"{where}: type must be a string and health a boolean")
    devmem = _int_field(entry, "devmem", where, minimum=1)
    devcore = _int_field(entry, "devcore", where)
    return Card(
        uuid=uuid.strip(),
        index=_int_field(entry, "index", where),
        mem_mib=devmem,
        cores=devcore or FULL_CORES,
        slots=_int_field(entry, "count", where),
        model=model,
        numa=_int_field(entry, "numa", where),
        healthy=health,
    )


_BOOLS = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def _legacy_int(text: str, what: str, where: str, minimum: int = 0) -> int:
    stripped = text.strip()
    if (
        not (stripped.isascii() and stripped.isdigit())
        or not minimum <= int(stripped) <= _MAX_INT32
    ):
        raise ValueError(f"{where}: {what}={text!r} is not a whole number >= {minimum}")
    return int(stripped)


def _hami_legacy_cards(text: str) -> list[Card]:
    """``id,count,devmem,devcore,type,numa,health[,index,mode]:`` per card."""
    if ":" not in text:
        raise ValueError("neither JSON nor HAMi's 'id,count,devmem,devcore,type,numa,health:' form")
    cards = []
    for position, entry in enumerate(e for e in text.split(":") if e):
        where = f"card {position}"
        items = entry.split(",")
        if len(items) not in (7, 9):
            raise ValueError(f"{where} has {len(items)} fields, expected 7 or 9")
        health = _BOOLS.get(items[6].strip().lower())
        if health is None or not items[0].strip():
            raise ValueError(f"{where}: bad id or health {items[6]!r}")
        cards.append(
            Card(
                uuid=items[0].strip(),
                index=_legacy_int(items[7], "index", where) if len(items) == 9 else position,
                mem_mib=_legacy_int(items[2], "devmem", where, minimum=1),
                cores=_legacy_int(items[3], "devcore", where) or FULL_CORES,
                slots=_legacy_int(items[1], "count", where),
                model=items[4],
                numa=_legacy_int(items[5], "numa", where),
                healthy=health,
            )
        )
    return cards


# --- labels and catalog ----------------------------------------------------------------------


def _slots_per_card(node: Mapping[str, Any], names: ResourceNames) -> int | None:
    """Allocatable vGPUs of the node (count x split under HAMi), None when absent or bad."""
    status = as_mapping(node.get("status"))
    allocatable = as_mapping(status.get("allocatable"))
    value = allocatable.get(names.count)
    if value is None:
        return None
    try:
        return parse_whole(value, names.count)
    except InvalidQuantity:
        return None


def _uniform_cards(node_name: str, spec: GPUSpec, allocatable: int | None) -> tuple[Card, ...]:
    slots = max(1, (allocatable or 0) // spec.count)
    prefix = node_name or "node"
    return tuple(
        Card(uuid=f"{prefix}/gpu{i}", index=i, mem_mib=spec.mem_mib, slots=slots, model=spec.model)
        for i in range(spec.count)
    )


def _from_labels(
    labels: Mapping[str, Any], node_name: str, allocatable: int | None
) -> tuple[tuple[Card, ...] | None, str]:
    count = labels.get(LABEL_COUNT)
    if count is None:
        return None, ""
    memory = labels.get(LABEL_MEMORY)
    product = labels.get(LABEL_PRODUCT, "")
    try:
        n = _legacy_int(str(count), LABEL_COUNT, "label")
        if n == 0:
            return None, ""
        if memory is None:
            return None, f"GPU labels ignored: {LABEL_COUNT} without {LABEL_MEMORY}"
        mem = _legacy_int(str(memory), LABEL_MEMORY, "label", minimum=1)
    except ValueError as exc:
        return None, f"GPU labels ignored: {exc}"
    if n > MAX_CARDS:
        return None, f"GPU labels ignored: {LABEL_COUNT}={n} is more than {MAX_CARDS}"
    spec = GPUSpec(count=n, model=str(product), mem_mib=mem)
    return _uniform_cards(node_name, spec, allocatable), ""


def _from_catalog(
    labels: Mapping[str, Any],
    node_name: str,
    allocatable: int | None,
    gpu_spec_for: GPUSpecLookup,
) -> tuple[tuple[Card, ...] | None, str]:
    instance_type = labels.get(INSTANCE_TYPE) or labels.get(INSTANCE_TYPE_BETA)
    if not isinstance(instance_type, str) or not instance_type:
        return None, ""
    spec = gpu_spec_for(instance_type)
    if spec is None or spec.count <= 0:
        return None, ""
    if spec.mem_mib <= 0 or spec.count > MAX_CARDS:
        return None, f"catalog GPU spec of {instance_type} ignored: {spec}"
    return _uniform_cards(node_name, spec, allocatable), ""


__all__ = [
    "FULL_CORES",
    "GPU_CORDON",
    "HAMI_REGISTER",
    "Card",
    "GPUSpec",
    "GPUSpecLookup",
    "InventoryResult",
    "InventorySource",
    "NodeGPUs",
    "cordoned",
    "inventory_from_node",
    "parse_hami_register",
]
