"""Map a request path to the resource it addresses (pure, no HTTP objects).

URL shapes served, for group ``""`` under ``/api/v1`` and named groups under
``/apis/<group>/<version>``::

    /<resource>                                 cluster-scoped, or all namespaces
    /<resource>/<name>[/<subresource>]          cluster-scoped objects
    /namespaces/<ns>/<resource>                 one namespace
    /namespaces/<ns>/<resource>/<name>[/<sub>]
    /namespaces/<ns>/bindings                   legacy Binding create (core only)

``/namespaces/<ns>/status`` is the namespace's status, not a resource called
``status``: the third segment is a resource only if one by that name is served.
"""

from __future__ import annotations

from dataclasses import dataclass

from spotpack.devcluster.resources import RESOURCES, SUBRESOURCES, ResourceType


@dataclass(frozen=True, slots=True)
class Route:
    """What a path addresses. ``name`` is "" for collections."""

    rtype: ResourceType
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    bindings: bool = False  # POST /api/v1/namespaces/<ns>/bindings

    @property
    def label(self) -> str:
        """``resource[/subresource]``, as fault injection and logs name it."""
        if self.bindings:
            return "pods/binding"
        return f"{self.rtype.plural}/{self.subresource}" if self.subresource else self.rtype.plural


def _group_version(parts: list[str]) -> tuple[str, str, list[str]] | None:
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        return "", "v1", parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _served(group: str, version: str, plural: str) -> ResourceType | None:
    rtype = RESOURCES.get(plural)
    if rtype is None or rtype.group != group or rtype.version != version:
        return None
    return rtype


def parse_path(path: str) -> Route | None:
    """The route for a resource path, or None if nothing is served there."""
    if path.endswith("/"):
        path = path[:-1]
    parsed = _group_version(path.split("/")[1:])
    if parsed is None:
        return None
    group, version, rest = parsed
    if not rest or "" in rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        if group == "" and rest[2] == "bindings" and len(rest) == 3:
            return Route(RESOURCES["pods"], namespace=rest[1], bindings=True)
        rtype = _served(group, version, rest[2])
        if rtype is not None and rtype.namespaced:
            return _object_route(rtype, rest[1], rest[3:])
    rtype = _served(group, version, rest[0])
    if rtype is None or (rtype.namespaced and len(rest) > 1):
        return None
    return _object_route(rtype, "", rest[1:])


def _object_route(rtype: ResourceType, namespace: str, rest: list[str]) -> Route | None:
    if len(rest) > 2:
        return None
    name = rest[0] if rest else ""
    sub = rest[1] if len(rest) > 1 else ""
    if sub and sub not in SUBRESOURCES.get(rtype.plural, {}):
        return None
    return Route(rtype, namespace=namespace, name=name, subresource=sub)
