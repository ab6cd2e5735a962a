"""Object-level rules: validation, defaults and the fields a write may change.

Kept apart from the store so that locking and bookkeeping (store.py) and the
API's rules about what a valid object looks like (here) can be read, and
tested, separately. Functions here take and return plain dicts and raise
:class:`ApiError` with the code kube-apiserver would use: 400 for bodies that
would not even decode into the Go type, 422 for decoded but invalid objects.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from spotpack.devcluster.errors import ApiError, bad_request, invalid
from spotpack.devcluster.resources import ResourceType
from spotpack.devcluster.selectors import valid_label_key

Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's: no vowels, no look-alikes

# Pod spec fields kube lets an update change (ValidatePodUpdate); the rest is frozen.
_MUTABLE_POD_SPEC = (
    "activeDeadlineSeconds",
    "tolerations",
    "terminationGracePeriodSeconds",
    "schedulingGates",
)


def clone(obj: Any) -> Any:
    """Deep copy through orjson: several times faster than ``copy.deepcopy``."""
    return orjson.loads(orjson.dumps(obj))


def clone_manifest(obj: Any) -> Any:
    """Deep copy of YAML-loaded data: datetimes become RFC 3339 ``...Z`` strings."""
    opts = orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
    try:
        return orjson.loads(orjson.dumps(obj, option=opts))
    except TypeError as exc:
        raise bad_request(f"object is not JSON-serializable: {exc}") from exc


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: Obj) -> Obj:
    """``obj.metadata``, created if absent (the object is owned by the caller)."""
    m = obj.setdefault("metadata", {})
    if not isinstance(m, dict):
        raise bad_request("metadata must be an object")
    return m


def name_of(obj: Obj) -> str:
    m = obj.get("metadata")
    name = m.get("name") if isinstance(m, dict) else None
    return name if isinstance(name, str) else ""


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def check_type(obj: Any, rtype: ResourceType) -> Obj:
    """Require a JSON object whose kind/apiVersion, if given, match ``rtype``; fill them."""
    if not isinstance(obj, dict):
        raise bad_request(f"expected a {rtype.kind} object, got {type(obj).__name__}")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind not in (None, "", rtype.kind):
        raise bad_request(f"the kind of the object ({kind}) does not match {rtype.kind}")
    if api_version not in (None, "", rtype.api_version):
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({rtype.api_version})"
        )
    obj["kind"] = rtype.kind
    obj["apiVersion"] = rtype.api_version
    for section in ("spec", "status"):
        if section in obj and obj[section] is not None and not isinstance(obj[section], dict):
            raise bad_request(f"{section} must be an object")
    _check_metadata(obj, rtype)
    return obj


def _check_string_map(m: Obj, field: str, kind: str, name: str) -> None:
    value = m.get(field)
    if value is None:
        return
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise bad_request(f"metadata.{field} must be a map of strings to strings")
    if field == "labels":
        for key in value:
            if not valid_label_key(key):
                raise invalid(
                    kind,
                    name,
                    f"metadata.labels: Invalid value: {key!r}: "
                    "name part must consist of alphanumeric characters, '-', '_' "
                    "or '.'",
                )


def _check_metadata(obj: Obj, rtype: ResourceType) -> None:
    m = meta(obj)
    for field in ("name", "namespace", "generateName", "resourceVersion", "uid"):
        if m.get(field) is not None and not isinstance(m[field], str):
            raise bad_request(f"metadata.{field} must be a string")
    _check_string_map(m, "labels", rtype.kind, name_of(obj))
    _check_string_map(m, "annotations", rtype.kind, name_of(obj))


def valid_name(rtype: ResourceType, name: str) -> bool:
    """Namespaces are DNS-1123 labels; everything else here a DNS-1123 subdomain."""
    if rtype.plural == "namespaces":
        return len(name) <= 63 and bool(_LABEL.match(name))
    return len(name) <= 253 and bool(_SUBDOMAIN.match(name))


def check_name(rtype: ResourceType, name: str) -> None:
    if not name:
        raise invalid(
            rtype.kind, name, "metadata.name: Required value: name or generateName is required"
        )
    if not valid_name(rtype, name):
        raise invalid(
            rtype.kind,
            name,
            f"metadata.name: Invalid value: {name!r}: a lowercase "
            "RFC 1123 name must consist of lower case alphanumeric characters, '-' "
            "or '.', and must start and end with an alphanumeric character",
        )


def place(obj: Obj, rtype: ResourceType, namespace: str) -> str:
    """Reconcile the object's namespace with the request's; return the namespace."""
    m = meta(obj)
    if not rtype.namespaced:
        m.pop("namespace", None)
        return ""
    body_ns = m.get("namespace") or ""
    if namespace and body_ns and body_ns != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    ns = namespace or body_ns or "default"
    m["namespace"] = ns
    return str(ns)


def stamp_new(obj: Obj) -> None:
    """System fields every created object gets."""
    m = meta(obj)
    m["uid"] = str(uuid.uuid4())
    m["creationTimestamp"] = now_rfc3339()
    for field in ("resourceVersion", "deletionTimestamp", "managedFields", "selfLink"):
        m.pop(field, None)


def apply_defaults(obj: Obj, rtype: ResourceType, *, via_api: bool) -> None:
    """Defaults kube applies on create. Through the API a pod's status is reset
    (its status belongs to the kubelet); direct store writes keep what they give."""
    if rtype.plural == "pods":
        spec = obj.get("spec") or {}
        obj["spec"] = spec
        if via_api:
            containers = spec.get("containers")
            if not isinstance(containers, list) or not containers:
                raise invalid("Pod", name_of(obj), "spec.containers: Required value")
            obj["status"] = {"phase": "Pending"}
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("restartPolicy", "Always")
        status = obj.get("status") or {}
        status.setdefault("phase", "Pending")
        obj["status"] = status
    elif rtype.plural == "namespaces":
        status = obj.get("status") or {}
        status.setdefault("phase", "Active")
        obj["status"] = status


def carry_system_fields(new: Obj, current: Obj) -> None:
    """An update may not change uid or creationTimestamp; keep the stored ones."""
    m, old = meta(new), current["metadata"]
    for field in ("uid", "creationTimestamp"):
        if field in old:
            m[field] = old[field]
        else:
            m.pop(field, None)
    m.pop("managedFields", None)


def check_pod_update(new: Obj, current: Obj) -> None:
    """Kube freezes a pod's spec except a few fields; ``nodeName`` moves only by Binding."""

    def frozen(spec: Any) -> Any:
        if not isinstance(spec, dict):
            return spec
        out = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_SPEC}
        for field in ("containers", "initContainers"):
            if isinstance(out.get(field), list):
                out[field] = [
                    {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                    for c in out[field]
                ]
        return out

    if frozen(new.get("spec")) != frozen(current.get("spec")):
        raise ApiError(
            422,
            f'Pod "{name_of(current)}" is invalid: spec: Forbidden: pod updates '
            "may not change fields other than `spec.containers[*].image`, "
            "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
            "`spec.tolerations`, `spec.terminationGracePeriodSeconds`",
        )


def set_condition(status: Obj, condition: Obj) -> None:
    """Replace the condition of the same type, or append it."""
    conditions = [
        c
        for c in status.get("conditions") or []
        if not isinstance(c, dict) or c.get("type") != condition["type"]
    ]
    conditions.append(condition)
    status["conditions"] = conditions
