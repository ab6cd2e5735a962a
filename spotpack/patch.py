"""Building RFC 6902 JSON Patch operations against a known document.

The API server applies our patch to the object it sent us, so every operation
must be valid against that exact object: ``add`` into a missing parent fails
the whole patch. These builders look at the document and emit the smallest
valid operation: the value itself when the parent exists, otherwise the value
wrapped into the first missing ancestor (``add /spec/affinity`` whole when a
pod has no affinity at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spotpack.jsonpointer import path as pointer

Op = dict[str, Any]


def _walk(document: Any, tokens: Sequence[str]) -> int:
    """How many leading ``tokens`` lead through objects (mappings) in ``document``.

    A member that is null or not an object counts as missing: it is replaced
    whole rather than patched into, which would fail.
    """
    node = document
    for depth, token in enumerate(tokens):
        child = node.get(token) if isinstance(node, Mapping) else None
        if not isinstance(child, Mapping):
            return depth
        node = child
    return len(tokens)


def _get(document: Mapping[str, Any], tokens: Sequence[str]) -> Any:
    """The value at ``tokens`` whose parents are known to exist, or None."""
    node: Any = document
    for token in tokens:
        node = node.get(token) if isinstance(node, Mapping) else None
    return node


def _nest(tokens: Sequence[str], value: Any) -> Any:
    for token in reversed(tokens):
        value = {token: value}
    return value


def set_value(document: Mapping[str, Any], tokens: Sequence[str], value: Any) -> Op:
    """An ``add`` that leaves ``value`` at ``tokens``, creating missing parents.

    ``add`` on an existing member replaces it (RFC 6902 4.1), so one operation
    covers both cases. A parent present with JSON ``null`` counts as missing.
    """
    existing = _walk(document, tokens[:-1])
    return {
        "op": "add",
        "path": pointer(*tokens[: existing + 1]),
        "value": _nest(tokens[existing + 1 :], value),
    }


def append_items(
    document: Mapping[str, Any], tokens: Sequence[str], items: Iterable[Any]
) -> list[Op]:
    """Append ``items`` to the list at ``tokens``, creating the list when absent."""
    values = list(items)
    if not values:
        return []
    if not isinstance(_get(document, tokens), list):
        return [set_value(document, tokens, values)]
    base = pointer(*tokens)
    return [{"op": "add", "path": base + "/-", "value": v} for v in values]


def merge_map(
    document: Mapping[str, Any], tokens: Sequence[str], entries: Mapping[str, str]
) -> list[Op]:
    """Set string entries in the map at ``tokens`` (labels, annotations).

    Entries whose value is already present are skipped, so the result is empty
    when nothing would change; a missing map is added whole.
    """
    current = _get(document, tokens)
    if not isinstance(current, Mapping):
        return [set_value(document, tokens, dict(entries))] if entries else []
    return [
        {"op": "add", "path": pointer(*tokens, key), "value": value}
        for key, value in entries.items()
        if current.get(key) != value
    ]
