"""One small translator per vGPU dialect, each to a canonical :class:`VGPURequest`.

A translator reads one container (its limits, requests, and the pod's
annotations and labels) and returns the request, or None when every value is 0
(the container asks for no GPU). It raises
:class:`~spotpack.errors.InvalidGPURequest` for anything it cannot read one
way only. The normalizer picks the translator from the keys a container has
and rejects a container that mixes dialects.

Facts checked against each project's own code and documentation:

- **HAMi** (canonical): memory or percentage without a count is one vGPU
  (``defaultGPUNum: 1``); ``gpucores`` 0 = no SM reservation, 100 = exclusive.
- **Volcano** vGPU: HAMi's device plugin with renamed resources
  (``volcano.sh/vgpu-number|vgpu-memory|vgpu-memory-percentage|vgpu-cores``,
  volcano-vgpu-device-plugin config), same defaults; memory is MiB times
  ``gpuMemoryFactor`` (1 by default).
- **KAI** scheduler: *pod annotations* ``gpu-fraction`` (portion of one card's
  memory), ``gpu-memory`` (MiB, digits only), ``gpu-fraction-num-devices`` (N
  cards, each given the fraction or memory), ``gpu-fraction-container-name``
  (which container, app or init; default the first app container). KAI rejects
  fraction and memory together, and a device count without either.
- **Koordinator** GPU share API: ``koordinator.sh/gpu-memory`` (bytes),
  ``gpu-memory-ratio`` (percent of a card), ``gpu-core`` (percent of a card),
  ``gpu.shared`` (number of cards). The totals are divided evenly over the
  ``gpu.shared`` cards (its validating webhook requires core and ratio to be
  multiples of it); memory or ratio is required, not both; when ``gpu.shared``
  is absent its mutating webhook sets it to ratio/100 if the ratio is a
  multiple of 100, else 1. The older ``koordinator.sh/gpu`` (percent, >100 only
  in whole cards) means the same percent of memory and of SMs.
- **gpushare** (Aliyun): ``aliyun.com/gpu-mem`` on one card, in the device
  plugin's ``--memory-unit`` (GiB by default, or MiB). ACK's multi-GPU sharing
  adds ``aliyun.com/gpu-count`` (a pod label in ACK's documentation; accepted
  here as a container resource too): the memory is a total split evenly over
  that many cards, a whole number per card. ACK's ``core_mem`` mode adds
  ``aliyun.com/gpu-core.percentage`` (percent of the card's SMs), which ACK
  does not support across several cards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from spotpack.errors import InvalidGPURequest
from spotpack.vgpu import rules
from spotpack.vgpu.model import ResourceNames, VGPURequest, parse_canonical

if TYPE_CHECKING:
    from spotpack.vgpu.options import NormalizeOptions

HAMI = "hami"
VOLCANO = "volcano"
KAI = "kai"
KOORDINATOR = "koordinator"
GPUSHARE = "gpushare"

VOLCANO_NAMES = ResourceNames(
    count="volcano.sh/vgpu-number",
    memory="volcano.sh/vgpu-memory",
    memory_percent="volcano.sh/vgpu-memory-percentage",
    cores="volcano.sh/vgpu-cores",
)

KAI_FRACTION = "gpu-fraction"
KAI_MEMORY = "gpu-memory"
KAI_NUM_DEVICES = "gpu-fraction-num-devices"
KAI_CONTAINER = "gpu-fraction-container-name"

KOORD_MEMORY = "koordinator.sh/gpu-memory"
KOORD_RATIO = "koordinator.sh/gpu-memory-ratio"
KOORD_CORE = "koordinator.sh/gpu-core"
KOORD_SHARED = "koordinator.sh/gpu.shared"
KOORD_GPU = "koordinator.sh/gpu"

GPUSHARE_MEM = "aliyun.com/gpu-mem"
GPUSHARE_COUNT = "aliyun.com/gpu-count"
GPUSHARE_CORE = "aliyun.com/gpu-core.percentage"

_DIGITS = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


@dataclass(frozen=True, slots=True)
class ContainerInput:
    """What a translator may read: one container's resources and the pod's metadata."""

    name: str
    limits: Mapping[str, Any]
    requests: Mapping[str, Any]
    annotations: Mapping[str, Any]
    labels: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Translation:
    """A translator's answer: the request (None: asks for no GPU), what it read, notes."""

    request: VGPURequest | None
    read: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


Translate = Callable[[ContainerInput, "NormalizeOptions"], Translation]


@dataclass(frozen=True, slots=True)
class Dialect:
    """A dialect's name, the container resource keys it owns, and its translator.

    The owned keys are dropped from a container after translation: no device
    plugin advertises them once the pod is canonical.
    """

    name: str
    resource_keys: tuple[str, ...]
    translate: Translate


def _values(c: ContainerInput, keys: tuple[str, ...]) -> dict[str, tuple[object, Fraction]]:
    return {k: v for k in keys if (v := rules.side_value(c.name, c.limits, c.requests, k))}


def _shown(values: Mapping[str, tuple[object, Fraction]]) -> tuple[str, ...]:
    return tuple(f"{k}={raw}" for k, (raw, _) in values.items())


def _default_count_note(c: ContainerInput, given: str, count_key: str, names: ResourceNames) -> str:
    return (
        f"container {c.name!r}: {given} without {count_key} asks for one vGPU; "
        f"{names.count} set to 1 (HAMi and Volcano default to 1 too); set {count_key} to say so"
    )


def _hami_like(c: ContainerInput, o: NormalizeOptions, names: ResourceNames) -> Translation:
    read = parse_canonical(c.name, c.limits, c.requests, names, o.max_vgpus_per_container)
    warnings: tuple[str, ...] = ()
    if read.count_defaulted and read.request is not None:
        given = next(k for k in read.present if k != names.cores)
        warnings = (_default_count_note(c, given, names.count, o.names),)
    return Translation(read.request, read.shown, warnings)


def translate_hami(c: ContainerInput, o: NormalizeOptions) -> Translation:
    """The canonical form itself: validated, count defaulted to 1 when only memory is given."""
    return _hami_like(c, o, o.names)


def translate_volcano(c: ContainerInput, o: NormalizeOptions) -> Translation:
    """Volcano vGPU: HAMi's rules under ``volcano.sh/vgpu-*`` names.

    ``vgpu-memory`` is in units of ``gpuMemoryFactor`` MiB:
    ``mem_mib = vgpu-memory * volcano_memory_factor``.
    """
    out = _hami_like(c, o, VOLCANO_NAMES)
    request = out.request
    factor = o.volcano_memory_factor
    if request is None or request.mem_mib is None or factor == 1:
        return out
    mem = rules.check_mem_mib(
        c.name,
        f"{VOLCANO_NAMES.memory} x gpuMemoryFactor {factor}",
        request.mem_mib * factor,
        Fraction(request.mem_mib * factor),
    )
    scaled = VGPURequest(request.count, mem_mib=mem, cores=request.cores)
    return Translation(scaled, out.read, out.warnings)


def _annotation(annotations: Mapping[str, Any], key: str) -> str | None:
    """A KAI annotation's value; absent or empty is None, as KAI reads it."""
    value = annotations.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def kai_requested(annotations: Mapping[str, Any]) -> bool:
    """Whether a pod carries KAI GPU-sharing annotations (checked before any parsing)."""
    return (
        _annotation(annotations, KAI_FRACTION) is not None
        or _annotation(annotations, KAI_MEMORY) is not None
        or KAI_NUM_DEVICES in annotations
    )


def translate_kai(c: ContainerInput, o: NormalizeOptions) -> Translation:
    """KAI pod annotations, applied to the container they target.

    ``gpu-fraction`` f (0 < f <= 1) -> percent = ceil(100 * f) of each card's
    memory (0.333 -> 34); ``gpu-memory`` m -> m MiB;
    ``gpu-fraction-num-devices`` N -> N vGPUs (default 1). Fraction and memory
    together are rejected, as KAI does; so is a device count without either.
    KAI itself asks for f < 1; f = 1 is read here as the whole card's memory.
    """
    fraction = _annotation(c.annotations, KAI_FRACTION)
    memory = _annotation(c.annotations, KAI_MEMORY)
    devices = c.annotations.get(KAI_NUM_DEVICES)
    if fraction is not None and memory is not None:
        raise InvalidGPURequest(
            c.name,
            f"pod annotations {KAI_FRACTION}={fraction!r} and {KAI_MEMORY}={memory!r} are both "
            f"set; allowed: one of them (KAI rejects both too)",
        )
    if fraction is None and memory is None:
        raise InvalidGPURequest(
            c.name,
            f"pod annotation {KAI_NUM_DEVICES}={devices!r} without {KAI_FRACTION} or "
            f"{KAI_MEMORY}; allowed: together with one of them",
        )
    read: list[str] = []
    warnings: list[str] = []
    count = 1
    if devices is not None:
        read.append(f"{KAI_NUM_DEVICES}={devices}")
        text = str(devices).strip()
        allowed = rules.count_allowed(o.max_vgpus_per_container)
        if not _DIGITS.match(text):
            raise InvalidGPURequest(
                c.name, f"pod annotation {KAI_NUM_DEVICES}: {devices!r} is not {allowed}"
            )
        count = rules.check_count(
            c.name, KAI_NUM_DEVICES, devices, Fraction(int(text)), o.max_vgpus_per_container
        )
    if fraction is not None:
        read.insert(0, f"{KAI_FRACTION}={fraction}")
        percent = _kai_percent(c.name, fraction, warnings)
        request = VGPURequest(count, mem_percent=percent)
    else:
        assert memory is not None
        read.insert(0, f"{KAI_MEMORY}={memory}")
        text = memory.strip()
        if not _DIGITS.match(text):
            raise InvalidGPURequest(
                c.name,
                f"pod annotation {KAI_MEMORY}: {memory!r} is not a whole number of MiB; "
                f"allowed: {rules.MEM_ALLOWED}, digits only (KAI does not read units)",
            )
        mem = rules.check_mem_mib(c.name, KAI_MEMORY, memory, Fraction(int(text)))
        request = VGPURequest(count, mem_mib=mem)
    return Translation(request, tuple(read), tuple(warnings))


def _kai_percent(container: str, raw: str, warnings: list[str]) -> int:
    allowed = "a decimal fraction of one card's memory, 0 < f <= 1 (e.g. 0.5)"
    text = raw.strip()
    if not _DECIMAL.match(text):
        raise InvalidGPURequest(
            container, f"pod annotation {KAI_FRACTION}: {raw!r} is not a number; allowed: {allowed}"
        )
    value = Fraction(text)
    if not 0 < value <= 1:
        raise InvalidGPURequest(
            container, f"pod annotation {KAI_FRACTION}: {raw!r} is out of range; allowed: {allowed}"
        )
    exact = value * 100
    percent = rules.ceil_fraction(exact)
    if exact.denominator != 1:
        warnings.append(
            f"container {container!r}: {KAI_FRACTION} {raw} is {float(exact):g}% of a card's "
            f"memory; rounded up to {percent}%"
        )
    return percent


def _koord_percent_total(c: ContainerInput, key: str, raw: object, value: Fraction) -> int:
    """A Koordinator percent total: whole; over 100 only as a multiple of 100 (whole cards)."""
    allowed = "1..100 (percent of one card) or a multiple of 100 (whole cards)"
    if value.denominator != 1:
        raise InvalidGPURequest(c.name, f"{key}: {raw!r} is not a whole number; allowed: {allowed}")
    total = int(value)
    if total > 100 and total % 100:
        raise InvalidGPURequest(
            c.name, f"{key}: {raw!r} is over 100 but not a multiple of 100; allowed: {allowed}"
        )
    return total


def _split(c: ContainerInput, key: str, raw: object, total: int, cards: int) -> int:
    if total % cards:
        raise InvalidGPURequest(
            c.name,
            f"{key}: {raw!r} does not split evenly over {cards} cards "
            f"({KOORD_SHARED}); allowed: a multiple of {cards}",
        )
    return total // cards


def translate_koordinator(c: ContainerInput, o: NormalizeOptions) -> Translation:
    """Koordinator's GPU share resources, divided evenly over ``gpu.shared`` cards.

    With N = ``gpu.shared`` (default: ratio/100 when the ratio is a multiple of
    100 over 100, else 1)::

        mem_mib per vGPU = ceil(gpu-memory bytes / N / 2**20)
        percent per vGPU = gpu-memory-ratio / N
        cores per vGPU   = gpu-core / N

    Each division must be exact. ``koordinator.sh/gpu`` P alone means P percent
    of one card's memory and SMs (P <= 100), or P/100 whole cards.
    """
    keys = (KOORD_SHARED, KOORD_MEMORY, KOORD_RATIO, KOORD_CORE, KOORD_GPU)
    values = _values(c, keys)
    read = _shown(values)
    if all(v == 0 for _, v in values.values()):
        return Translation(None, read)
    if KOORD_GPU in values:
        return Translation(_koord_legacy(c, o, values), read)
    if KOORD_MEMORY in values and KOORD_RATIO in values:
        raise InvalidGPURequest(
            c.name,
            f"{KOORD_MEMORY} and {KOORD_RATIO} are both set; allowed: one of them "
            "(Koordinator rejects both too)",
        )
    if KOORD_MEMORY not in values and KOORD_RATIO not in values:
        what = "a cores-only request" if KOORD_CORE in values else "no memory request"
        raise InvalidGPURequest(
            c.name,
            f"{', '.join(values)} without {KOORD_MEMORY} or {KOORD_RATIO} is {what}; "
            f"allowed: one of {KOORD_MEMORY} (bytes) or {KOORD_RATIO} (percent), as Koordinator "
            "requires",
        )
    warnings: list[str] = []
    ratio_total = None
    if KOORD_RATIO in values:
        ratio_total = _koord_percent_total(c, KOORD_RATIO, *values[KOORD_RATIO])
    if KOORD_SHARED in values:
        cards = rules.check_count(
            c.name, KOORD_SHARED, *values[KOORD_SHARED], o.max_vgpus_per_container
        )
    else:
        cards = ratio_total // 100 if ratio_total is not None and ratio_total > 100 else 1
        cards = rules.check_count(
            c.name, f"{KOORD_RATIO} / 100", cards, Fraction(cards), o.max_vgpus_per_container
        )
        warnings.append(
            f"container {c.name!r}: {KOORD_SHARED} is not set; {cards} card(s) assumed, "
            "as Koordinator's webhook does"
        )
    mem = percent = cores = None
    if KOORD_MEMORY in values:
        raw, value = values[KOORD_MEMORY]
        total_bytes = rules.ceil_fraction(value)
        per_card = _split(c, KOORD_MEMORY, raw, total_bytes, cards)
        mem = rules.check_mem_mib(
            c.name,
            f"{KOORD_MEMORY} per card",
            f"{raw} / {cards}",
            Fraction(rules.ceil_div(per_card, rules.MIB)),
        )
    if ratio_total is not None:
        raw = values[KOORD_RATIO][0]
        per = _split(c, KOORD_RATIO, raw, ratio_total, cards)
        percent = rules.check_percent(
            c.name, f"{KOORD_RATIO} per card", f"{raw} / {cards}", Fraction(per)
        )
    if KOORD_CORE in values:
        raw, value = values[KOORD_CORE]
        total = _koord_percent_total(c, KOORD_CORE, raw, value)
        per = _split(c, KOORD_CORE, raw, total, cards)
        cores = rules.check_cores(
            c.name, f"{KOORD_CORE} per card", f"{raw} / {cards}", Fraction(per)
        )
    request = VGPURequest(cards, mem_mib=mem, mem_percent=percent, cores=cores)
    return Translation(request, read, tuple(warnings))


def _koord_legacy(
    c: ContainerInput, o: NormalizeOptions, values: Mapping[str, tuple[object, Fraction]]
) -> VGPURequest:
    others = [k for k in values if k != KOORD_GPU]
    if others:
        raise InvalidGPURequest(
            c.name,
            f"{KOORD_GPU} together with {', '.join(others)}; allowed: {KOORD_GPU} alone, or the "
            "GPU share resources without it (Koordinator rejects both too)",
        )
    raw, value = values[KOORD_GPU]
    total = _koord_percent_total(c, KOORD_GPU, raw, value)
    if total <= 100:
        return VGPURequest(1, mem_percent=total, cores=total)
    cards = rules.check_count(
        c.name, f"{KOORD_GPU} / 100", raw, Fraction(total // 100), o.max_vgpus_per_container
    )
    return VGPURequest(cards, mem_percent=100, cores=100)


def translate_gpushare(c: ContainerInput, o: NormalizeOptions) -> Translation:
    """gpushare's ``aliyun.com/gpu-mem``, optionally over ``aliyun.com/gpu-count`` cards.

    With M cards (resource, else pod label ``aliyun.com/gpu-count``, else 1) and
    unit u (1024 MiB for GiB, 1 for MiB)::

        mem_mib per vGPU = ceil(gpu-mem / M * u)     (gpu-mem / M a whole number when M > 1)
        cores per vGPU   = aliyun.com/gpu-core.percentage (one card only)
    """
    values = _values(c, (GPUSHARE_MEM, GPUSHARE_COUNT, GPUSHARE_CORE))
    read = _shown(values)
    if all(v == 0 for _, v in values.values()):
        return Translation(None, read)
    if GPUSHARE_MEM not in values:
        what = "a cores-only request" if GPUSHARE_CORE in values else "a count without memory"
        raise InvalidGPURequest(
            c.name,
            f"{', '.join(values)} without {GPUSHARE_MEM} is {what}; allowed: {GPUSHARE_MEM} "
            f"({o.gpushare_unit} per card) with optional {GPUSHARE_COUNT} and {GPUSHARE_CORE}",
        )
    cards, read = _gpushare_cards(c, o, values, read)
    raw, value = values[GPUSHARE_MEM]
    if cards > 1 and (value / cards).denominator != 1:
        raise InvalidGPURequest(
            c.name,
            f"{GPUSHARE_MEM}: {raw!r} {o.gpushare_unit} does not split evenly over {cards} cards "
            f"({GPUSHARE_COUNT}); allowed: a multiple of {cards}",
        )
    unit = 1024 if o.gpushare_unit == "GiB" else 1
    per_card = value / cards * unit
    mem = rules.check_mem_mib(
        c.name,
        f"{GPUSHARE_MEM} ({o.gpushare_unit}) per card in MiB",
        f"{raw} / {cards}" if cards > 1 else raw,
        Fraction(rules.ceil_fraction(per_card)),
    )
    cores = None
    if GPUSHARE_CORE in values:
        if cards > 1:
            raise InvalidGPURequest(
                c.name,
                f"{GPUSHARE_CORE} with {GPUSHARE_COUNT}={cards}; allowed: {GPUSHARE_CORE} on one "
                "card only (ACK's multi-GPU sharing does not isolate SMs either)",
            )
        cores = rules.check_cores(c.name, GPUSHARE_CORE, *values[GPUSHARE_CORE])
    return Translation(VGPURequest(cards, mem_mib=mem, cores=cores), read)


def _gpushare_cards(
    c: ContainerInput,
    o: NormalizeOptions,
    values: Mapping[str, tuple[object, Fraction]],
    read: tuple[str, ...],
) -> tuple[int, tuple[str, ...]]:
    label = c.labels.get(GPUSHARE_COUNT)
    from_label = None
    if label is not None:
        text = str(label).strip()
        if not _DIGITS.match(text):
            raise InvalidGPURequest(
                c.name,
                f"pod label {GPUSHARE_COUNT}: {label!r} is not "
                f"{rules.count_allowed(o.max_vgpus_per_container)}",
            )
        from_label = rules.check_count(
            c.name,
            f"pod label {GPUSHARE_COUNT}",
            label,
            Fraction(int(text)),
            o.max_vgpus_per_container,
        )
        read = (*read, f"label {GPUSHARE_COUNT}={label}")
    if GPUSHARE_COUNT in values:
        cards = rules.check_count(
            c.name, GPUSHARE_COUNT, *values[GPUSHARE_COUNT], o.max_vgpus_per_container
        )
        if from_label is not None and from_label != cards:
            raise InvalidGPURequest(
                c.name,
                f"{GPUSHARE_COUNT}: resource {cards} differs from pod label {from_label}; "
                "allowed: the same number in both, or only one of them",
            )
        return cards, read
    return (from_label if from_label is not None else 1), read


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(HAMI, (), translate_hami),
        Dialect(VOLCANO, VOLCANO_NAMES.keys, translate_volcano),
        Dialect(KAI, (), translate_kai),
        Dialect(
            KOORDINATOR,
            (KOORD_SHARED, KOORD_MEMORY, KOORD_RATIO, KOORD_CORE, KOORD_GPU),
            translate_koordinator,
        ),
        Dialect(GPUSHARE, (GPUSHARE_MEM, GPUSHARE_COUNT, GPUSHARE_CORE), translate_gpushare),
    )
}
"""Every dialect by name. HAMi's keys are ``NormalizeOptions.names``; KAI's are annotations."""


def key_owners(names: ResourceNames) -> dict[str, str]:
    """Every container resource key we read, mapped to its dialect.

    The canonical names win, so a cluster that made Volcano's names canonical
    reads them as canonical rather than translating them away.
    """
    owners = {key: d.name for d in DIALECTS.values() for key in d.resource_keys}
    owners.update({key: HAMI for key in names.keys})
    return owners
