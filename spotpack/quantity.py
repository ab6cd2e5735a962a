"""Kubernetes resource quantities (``500m``, ``16Gi``, ``6k``, ``1e3``) as exact numbers.

Quantities are parsed into :class:`fractions.Fraction` so that comparisons such
as "requests equal limits" and "a vGPU count is a whole number" are exact; a
float would call ``0.1 + 0.2`` different from ``0.3``. The grammar follows
``k8s.io/apimachinery/pkg/api/resource``: a signed decimal number followed by
an optional binary suffix (Ki..Ei), decimal suffix (n, u, m, k, M, G, T, P, E)
or decimal exponent (``e3``/``E3``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from spotpack.errors import InvalidQuantity

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_PATTERN = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_MAX_LEN = 64


def parse_quantity(value: object) -> Fraction:
    """Parse a quantity given as a string, int or float into an exact Fraction.

    Raises :class:`InvalidQuantity` for anything that is not a quantity, with
    the offending value in the message.
    """
    if isinstance(value, bool):
        raise InvalidQuantity(f"quantity {value!r} is a boolean, not a number")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidQuantity(f"quantity {value!r} is not a finite number")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise InvalidQuantity(f"quantity {value!r} is not a string or number")
    text = value.strip()
    if len(text) > _MAX_LEN:
        raise InvalidQuantity(f"quantity {text[:20]!r}... is too long")
    match = _PATTERN.match(text)
    if match is None:
        raise InvalidQuantity(f"quantity {value!r} is not a Kubernetes quantity")
    number = Fraction(match.group("num"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    exponent = int(suffix[1:])
    if abs(exponent) > 30:
        raise InvalidQuantity(f"quantity {value!r} has an exponent out of range")
    return number * Fraction(10) ** exponent


def parse_whole(value: object, what: str) -> int:
    """Parse a quantity that must be a whole number (extended resources, counts).

    ``what`` names the field for the error message, e.g. ``nvidia.com/gpu``.
    """
    try:
        number = parse_quantity(value)
    except InvalidQuantity as exc:
        raise InvalidQuantity(f"{what}: {exc}") from exc
    if number.denominator != 1:
        raise InvalidQuantity(f"{what}: {value!r} is not a whole number")
    return int(number)


def cpu_millis(value: object) -> int:
    """CPU quantity in millicores, rounded up (``0.5`` -> 500, ``1`` -> 1000)."""
    number = parse_quantity(value) * 1000
    return -(-number.numerator // number.denominator)


def bytes_of(value: object) -> int:
    """Memory quantity in bytes, rounded up."""
    number = parse_quantity(value)
    return -(-number.numerator // number.denominator)
