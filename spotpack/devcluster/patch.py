"""The three patch formats kube-apiserver accepts for JSON bodies.

* JSON merge patch (RFC 7386): objects merge recursively, ``null`` deletes a
  key, anything else (lists included) replaces.
* Strategic merge patch, simplified: a merge patch in which lists of objects
  are merged item by item on a merge key instead of replaced. The merge key is
  the one kube declares for well-known fields (``containers`` by ``name``,
  ``conditions`` by ``type``, ``volumeMounts`` by ``mountPath``, ...); any other
  list whose items all carry a ``name`` merges by ``name``. An item
  ``{"$patch": "delete", <key>: v}`` removes the item; other ``$`` directives
  (``$setElementOrder``, ``$retainKeys``, ``$deleteFromPrimitiveList``) are
  ignored. Lists of scalars and lists without a merge key (``tolerations``,
  ``taints``, ``args``) are replaced, as kube does for fields without a patch
  strategy.
* JSON patch (RFC 6902): add, remove, replace, move, copy, test. Implemented
  here because the ``jsonpatch`` package is only a dev dependency.

All functions return a new document and never modify their inputs, because
the store hands out its stored objects by reference.
"""

from __future__ import annotations

import copy
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH)

# patchMergeKey of list fields in the core API (by field name, which is
# unambiguous for the resources served here).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "envFrom": "",  # atomic in kube
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "hostAliases": "ip",
    "resourceClaims": "name",
}


class PatchError(ValueError):
    """A patch that is well-formed JSON but cannot be applied (an HTTP 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: apply ``patch`` to ``target`` and return the result."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch that merges keyed lists item by item (see module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _list_merge_key(field: str, items: list[Any]) -> str:
    """The key to merge ``field`` by, or "" to replace the list wholesale."""
    if not items or not all(isinstance(i, dict) for i in items):
        return ""
    key = MERGE_KEYS.get(field)
    if key is None:
        key = "name"
    if key and all(key in i for i in items):
        return key
    return ""


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    key = _list_merge_key(field, patch)
    if not key or not isinstance(current, list):
        return [_strip_directives(i) for i in patch if not _is_delete(i)]
    merged: list[Any] = list(current)
    index = {item.get(key): n for n, item in enumerate(merged) if isinstance(item, dict)}
    deleted: set[int] = set()
    for item in patch:
        pos = index.get(item[key])
        if _is_delete(item):
            if pos is not None:
                deleted.add(pos)
        elif pos is None:
            index[item[key]] = len(merged)
            merged.append(_strip_directives(item))
        else:
            merged[pos] = strategic_merge_patch(merged[pos], item)
    return [item for n, item in enumerate(merged) if n not in deleted]


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get("$patch") == "delete"


def _strip_directives(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: _strip_directives(v) for k, v in item.items() if not k.startswith("$")}
    return copy.deepcopy(item)


# --- RFC 6902 -------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    """Split a JSON pointer (RFC 6901) into unescaped reference tokens."""
    if not isinstance(path, str):
        raise PatchError(f"path must be a string, got {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"path {path!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


_END = "-"  # RFC 6901: the position past the last array element


def _index(ref: str, size: int, *, allow_end: bool) -> int:
    if allow_end and ref == _END:
        return size
    if not ref.isdigit() or (len(ref) > 1 and ref[0] == "0"):
        raise PatchError(f"invalid array index {ref!r}")
    idx = int(ref)
    if idx > size or (idx == size and not allow_end):
        raise PatchError(f"array index {idx} out of range")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"path segment {token!r} does not exist")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(token, len(cur), allow_end=False)]
        else:
            raise PatchError(f"cannot traverse into {type(cur).__name__} at {token!r}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path segment {last!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), allow_end=False)]
    raise PatchError(f"cannot index {type(parent).__name__} with {last!r}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchError(f"cannot add to {type(parent).__name__} at {last!r}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path segment {last!r} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), allow_end=False))
    raise PatchError(f"cannot remove from {type(parent).__name__} at {last!r}")


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _value(op: dict[str, Any]) -> Any:
    if "value" not in op:
        raise PatchError(f"operation {op.get('op')!r} needs a value")
    return copy.deepcopy(op["value"])


def _apply_op(doc: Any, op: Any) -> Any:
    if not isinstance(op, dict) or not isinstance(op.get("op"), str):
        raise PatchError(f"each operation must be an object with an 'op', got {op!r}")
    name = op["op"]
    tokens = _pointer(op.get("path"))
    if name == "add":
        return _add(doc, tokens, _value(op))
    if name == "remove":
        return _remove(doc, tokens)[0]
    if name == "replace":
        _get(doc, tokens)
        if not tokens:
            return _value(op)
        doc, _ = _remove(doc, tokens)
        return _add(doc, tokens, _value(op))
    if name in ("move", "copy"):
        source = _pointer(op.get("from"))
        if name == "move":
            if tokens[: len(source)] == source and len(tokens) > len(source):
                raise PatchError("cannot move a value into one of its children")
            doc, value = _remove(doc, source)
        else:
            value = copy.deepcopy(_get(doc, source))
        return _add(doc, tokens, value)
    if name == "test":
        if not _json_equal(_get(doc, tokens), op.get("value")):
            raise PatchError(f"test operation failed at {op.get('path')!r}")
        return doc
    raise PatchError(f"unknown operation {name!r}")


def json_patch(target: Any, operations: list[Any]) -> Any:
    """RFC 6902: apply ``operations`` in order, atomically (all or nothing)."""
    doc = copy.deepcopy(target)
    for op in operations:
        doc = _apply_op(doc, op)
    return doc
