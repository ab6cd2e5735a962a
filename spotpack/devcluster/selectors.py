"""Label and field selectors, parsed once per request and matched per object.

Label grammar (``k8s.io/apimachinery/pkg/labels``): comma-separated
requirements ``key``, ``!key``, ``key=v``, ``key==v``, ``key!=v``,
``key in (a,b)``, ``key notin (a,b)``. ``!=`` and ``notin`` also match objects
without the key, as in kube. Field grammar: ``path=v``, ``path==v``,
``path!=v``; only the field labels a real server supports for the resource are
accepted (others are a 400, as in kube), and a missing field compares as its
default (``spec.nodeName=`` selects unbound pods).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spotpack.devcluster.errors import bad_request
from spotpack.devcluster.resources import FIELD_LABELS

Obj = dict[str, Any]
Requirement = Callable[[Mapping[str, Any]], bool]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_KEY = rf"(?:{_PREFIX}/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_SET_RE = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_RE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")
_EXISTS_RE = re.compile(rf"^(?P<neg>!)?\s*(?P<key>{_KEY})$")
_FIELD_RE = re.compile(r"^(?P<path>[A-Za-z0-9_.]+)\s*(?P<op>==|=|!=)(?P<value>.*)$", re.DOTALL)


def _split_outside_parens(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set values contain commas)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise bad_request(f"unable to parse requirement: unbalanced ')' in {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise bad_request(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append(text[start:])
    return parts


def _check_value(value: str) -> str:
    if not _VALUE_RE.match(value):
        raise bad_request(f"unable to parse requirement: invalid label value: {value!r}")
    return value


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def _parse_requirement(text: str) -> Requirement:
    if m := _SET_RE.match(text):
        key, op = m["key"], m["op"]
        values = frozenset(_check_value(v.strip()) for v in m["values"].split(","))
        if op == "in":
            return lambda o: _labels(o).get(key) in values
        return lambda o: _labels(o).get(key) not in values
    if m := _EQ_RE.match(text):
        key, op, value = m["key"], m["op"], _check_value(m["value"])
        if op == "!=":
            return lambda o: _labels(o).get(key) != value
        return lambda o: _labels(o).get(key) == value
    if m := _EXISTS_RE.match(text):
        key = m["key"]
        if m["neg"]:
            return lambda o: key not in _labels(o)
        return lambda o: key in _labels(o)
    raise bad_request(f"unable to parse requirement: {text!r}")


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(req(obj) for req in self.requirements)

    def __and__(self, other: Selector) -> Selector:
        return Selector(self.requirements + other.requirements)


EVERYTHING = Selector()


def parse_label_selector(text: str | None) -> Selector:
    """Parse a ``labelSelector`` query value; malformed input is a 400."""
    if not text or not text.strip():
        return EVERYTHING
    reqs = []
    for raw in _split_outside_parens(text):
        part = raw.strip()
        if not part:
            raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
        reqs.append(_parse_requirement(part))
    return Selector(tuple(reqs))


def field_value(obj: Mapping[str, Any], path: str, default: str = "") -> str:
    """The string form of a dotted field, as kube's field-label functions render it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    if cur is None:
        return default
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return cur if isinstance(cur, str) else str(cur)


def _split_fields(text: str) -> list[str]:
    r"""Split on commas not escaped with a backslash (``\,`` is a literal comma)."""
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _field_requirement(path: str, op: str, value: str, default: str) -> Requirement:
    if op == "!=":
        return lambda o: field_value(o, path, default) != value
    return lambda o: field_value(o, path, default) == value


def parse_field_selector(text: str | None, resource: str) -> Selector:
    """Parse a ``fieldSelector`` for ``resource``; unsupported fields are a 400."""
    if not text or not text.strip():
        return EVERYTHING
    supported = FIELD_LABELS.get(resource, {})
    reqs = []
    for part in _split_fields(text):
        m = _FIELD_RE.match(part.strip())
        if not m:
            raise bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        path = m["path"]
        if path in ("metadata.name", "metadata.namespace"):
            default = ""
        elif path in supported:
            default = supported[path]
        else:
            raise bad_request(f"field label not supported: {path}")
        reqs.append(_field_requirement(path, m["op"], m["value"], default))
    return Selector(tuple(reqs))


def valid_label_key(key: str) -> bool:
    return bool(_KEY_RE.match(key))
