"""Value rules every vGPU dialect shares: quantities, whole numbers, ranges, shapes.

Each check raises :class:`~spotpack.errors.InvalidGPURequest` whose message
names the container, the field as the user wrote it (``volcano.sh/vgpu-memory``,
not our canonical name), the value, and what is allowed, so the person who
wrote the manifest can fix it without reading our code.

Ranges (per vGPU, i.e. per physical card the vGPU lands on):

==========  ============  =====================================================
quantity    allowed       why
==========  ============  =====================================================
count       1..max        each vGPU of a container is on a different card; max
                          is ``max_vgpus_per_container`` (16 by default)
memory      1..1_048_576  MiB; 1 TiB is far above any card and catches byte
                          values written where MiB were meant
percent     1..100        percent of each card's memory
cores       0..100        percent of one card's SMs; 100 = the card exclusively,
                          0 = no SM reservation (HAMi places the vGPU on any
                          card with enough free memory and does not cap its SMs)
==========  ============  =====================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from functools import lru_cache
from typing import Any

from spotpack.errors import InvalidGPURequest, InvalidQuantity
from spotpack.quantity import parse_quantity

MAX_MEM_MIB = 1_048_576
DEFAULT_MAX_VGPUS = 16
MIB = 2**20

CORES_ZERO = (
    "0 means no SM reservation: HAMi may put the vGPU on any card with enough free "
    "memory and does not cap its SM use"
)


def count_allowed(max_count: int) -> str:
    return f"a whole number of vGPUs from 1 to {max_count}, each on a different card"


MEM_ALLOWED = f"a whole number of MiB per vGPU from 1 to {MAX_MEM_MIB}"
PERCENT_ALLOWED = "a whole percent of each card's memory from 1 to 100"
CORES_ALLOWED = (
    f"a whole percent of one card's SMs from 0 to 100 (100 = the card exclusively; {CORES_ZERO})"
)


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Fraction:
    return parse_quantity(text)


def parse(raw: object) -> Fraction:
    """:func:`~spotpack.quantity.parse_quantity`, cached for strings.

    Pods repeat the same few quantity strings (``"1"``, ``"8Gi"``), and the
    webhook parses each on every create: the cache keeps that to a look-up.
    """
    if type(raw) is str:
        return _parse_text(raw)
    return parse_quantity(raw)


def quantity(container: str, field: str, raw: object) -> Fraction:
    """Parse one value as a non-negative Kubernetes quantity."""
    try:
        value = parse(raw)
    except InvalidQuantity as exc:
        raise InvalidGPURequest(
            container, f"{field}: {raw!r} is not a Kubernetes quantity; allowed: a whole number"
        ) from exc
    if value < 0:
        raise InvalidGPURequest(
            container, f"{field}: {raw!r} is negative; GPU requests are whole numbers >= 0"
        )
    return value


def side_value(
    container: str, limits: Mapping[str, Any], requests: Mapping[str, Any], key: str
) -> tuple[object, Fraction] | None:
    """The value of ``key`` as ``(as written, number)``, or None when absent.

    Limits win when present; requests are used when limits are absent. When both
    are present they must be equal by value (``6k`` equals ``6000``), as
    Kubernetes requires of extended resources.
    """
    in_limits = key in limits
    in_requests = key in requests
    if not in_limits and not in_requests:
        return None
    if in_limits:
        raw = limits[key]
        value = quantity(container, key, raw)
        if in_requests:
            other = quantity(container, key, requests[key])
            if other != value:
                raise InvalidGPURequest(
                    container,
                    f"{key}: requests {requests[key]!r} differ from limits {raw!r}; "
                    "allowed: requests equal to limits (or only one of them)",
                )
        return raw, value
    raw = requests[key]
    return raw, quantity(container, key, raw)


def _whole(container: str, field: str, shown: object, value: Fraction, allowed: str) -> int:
    if value.denominator != 1:
        raise InvalidGPURequest(
            container, f"{field}: {shown!r} is not a whole number; allowed: {allowed}"
        )
    return int(value)


def _within(
    container: str, field: str, shown: object, number: int, *, high: int, low: int, allowed: str
) -> int:
    if not low <= number <= high:
        raise InvalidGPURequest(
            container, f"{field}: {shown!r} is out of range; allowed: {allowed}"
        )
    return number


def check_count(container: str, field: str, shown: object, value: Fraction, max_count: int) -> int:
    """A vGPU count: whole, 1..``max_count``."""
    allowed = count_allowed(max_count)
    number = _whole(container, field, shown, value, allowed)
    return _within(container, field, shown, number, low=1, high=max_count, allowed=allowed)


def check_mem_mib(container: str, field: str, shown: object, value: Fraction) -> int:
    """Memory per vGPU in MiB: whole, 1..1_048_576."""
    number = _whole(container, field, shown, value, MEM_ALLOWED)
    return _within(container, field, shown, number, low=1, high=MAX_MEM_MIB, allowed=MEM_ALLOWED)


def check_percent(container: str, field: str, shown: object, value: Fraction) -> int:
    """Percent of each card's memory: whole, 1..100."""
    number = _whole(container, field, shown, value, PERCENT_ALLOWED)
    return _within(container, field, shown, number, low=1, high=100, allowed=PERCENT_ALLOWED)


def check_cores(container: str, field: str, shown: object, value: Fraction) -> int:
    """Percent of one card's SMs: whole, 0..100."""
    number = _whole(container, field, shown, value, CORES_ALLOWED)
    return _within(container, field, shown, number, low=0, high=100, allowed=CORES_ALLOWED)


def check_shape(
    container: str,
    *,
    fields: tuple[str, str, str, str],
    has_count: bool,
    has_mem: bool,
    has_pct: bool,
    has_cores: bool,
) -> None:
    """Reject the combinations no scheduler can read one way only.

    ``fields`` are the dialect's names for (count, memory, percent, cores).
    Memory and percentage together are ambiguous; cores without a count or a
    memory request say nothing about how much of which card is wanted.
    """
    count_f, mem_f, pct_f, cores_f = fields
    if has_mem and has_pct:
        raise InvalidGPURequest(
            container,
            f"{mem_f} and {pct_f} are both set; allowed: one of them "
            "(MiB per vGPU, or percent of each card's memory)",
        )
    if has_cores and not (has_count or has_mem or has_pct):
        raise InvalidGPURequest(
            container,
            f"{cores_f} alone is a cores-only request; allowed: {cores_f} together with "
            f"{count_f} or a memory request ({mem_f} or {pct_f})",
        )


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer division rounding up, for positive denominators."""
    return -(-numerator // denominator)


def ceil_fraction(value: Fraction) -> int:
    """Round a non-negative fraction up to a whole number."""
    return ceil_div(value.numerator, value.denominator)
