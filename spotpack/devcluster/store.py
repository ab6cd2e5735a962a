"""The in-memory object store behind the dev cluster: what etcd plus the registry do.

Objects are plain dicts keyed by ``(resource, namespace, name)``. Every write
takes one global lock, stamps the next resourceVersion and appends one change
to a bounded history that watches replay from; a condition variable on the
same lock wakes the watches.

Stored dicts are never mutated after commit: every write builds a new dict.
That is what lets a list hand out references and serialize 50,000 pods outside
the lock without copying them first. Public methods return copies, so a caller
may edit what it gets back and write it again.

Two kinds of caller: the HTTP server passes ``via_api=True`` and gets the API's
rules (a created pod's status is reset to Pending; updates of the main
resource keep the stored status; a pod's spec is frozen except for the fields
kube lets change). Tests and seeding call the store directly, as if writing to
etcd: what they give is what is stored, and a missing namespace is created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from spotpack.devcluster import objects as o
from spotpack.devcluster.errors import (
    STALE,
    ApiError,
    bad_request,
    conflict,
    not_found,
)
from spotpack.devcluster.faults import Fault, FaultPlan
from spotpack.devcluster.history import ADDED, DELETED, MODIFIED, Change, History
from spotpack.devcluster.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from spotpack.devcluster.resources import RESOURCES, ResourceType
from spotpack.devcluster.selectors import EVERYTHING, Selector
from spotpack.devcluster.watch import Event, WatchStream

Obj = dict[str, Any]
Objs = list[Obj]  # aliases: inside Store, ``list`` names the method
Changes = list[Change]
EvictionPolicy = Callable[[Obj], bool]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_WATCH_TIMEOUT = 1800.0
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def rtype_of(resource: str) -> ResourceType:
    rtype = RESOURCES.get(resource)
    if rtype is None:
        raise ApiError(404, f"the server could not find the requested resource ({resource})")
    return rtype


def parse_resource_version(value: str | None) -> int | None:
    """``None``/``""`` -> None; otherwise a non-negative int, else a 400."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise bad_request(f"invalid resource version: {value!r}")
    return int(value)


class Store:
    """Thread-safe in-memory Kubernetes object store with watch history and fault hooks."""

    def __init__(self, *, history_size: int = 10_000, default_namespaces: bool = True) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in RESOURCES}
        self._history = History(history_size)
        self._watches: set[WatchStream] = set()
        self._eviction_refused: EvictionPolicy | None = None
        self.faults = FaultPlan()
        if default_namespaces:
            for ns in DEFAULT_NAMESPACES:
                self.create("namespaces", {"metadata": {"name": ns}})

    # --- reads --------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion (of the last write to any resource)."""
        with self._cond:
            return str(self._history.last)

    def get(self, resource: str, name: str, namespace: str = "") -> Obj:
        """A copy of one object; ApiError 404 if absent."""
        rtype = rtype_of(resource)
        with self._cond:
            current = self._lookup(rtype, namespace, name)
        result: Obj = o.clone(current)
        return result

    def snapshot(
        self, resource: str, namespace: str = "", selector: Selector = EVERYTHING
    ) -> tuple[Objs, str]:
        """Matching objects *by reference* (read-only!) and the list's resourceVersion.

        O(n) in the objects of that resource, no copies: this is what the server
        serializes for a list.
        """
        rtype = rtype_of(resource)
        with self._cond:
            table = self._objects[rtype.plural].values()
            items = [
                obj
                for obj in table
                if (not namespace or obj["metadata"].get("namespace") == namespace)
                and (not selector or selector.matches(obj))
            ]
            return items, str(self._history.last)

    def list(
        self, resource: str, namespace: str = "", selector: Selector = EVERYTHING
    ) -> tuple[Objs, str]:
        """Copies of the matching objects and the list's resourceVersion."""
        items, rv = self.snapshot(resource, namespace, selector)
        copies: Objs = o.clone(items)
        return copies, rv

    # --- writes -------------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, namespace: str = "", *, via_api: bool = False) -> Obj:
        """Create ``obj``; fills uid, creationTimestamp, resourceVersion and generateName."""
        rtype = rtype_of(resource)
        new, ns = _prepare_new(rtype, obj, namespace, via_api=via_api)
        with self._cond:
            if ns and ("", ns) not in self._objects["namespaces"]:
                if via_api:
                    raise not_found("namespaces", ns)
                ns_obj, _ = _prepare_new(RESOURCES["namespaces"], {"metadata": {"name": ns}}, "")
                self._insert(RESOURCES["namespaces"], ns_obj, "")
            committed = self._insert(rtype, new, ns)
        result: Obj = o.clone(committed)
        return result

    def replace(
        self,
        resource: str,
        name: str,
        obj: Obj,
        namespace: str = "",
        *,
        subresource: str = "",
        via_api: bool = False,
    ) -> Obj:
        """PUT: replace the object (or only its status); a stale resourceVersion is a 409."""
        rtype = rtype_of(resource)
        new = o.check_type(o.clone_manifest(obj), rtype)
        body_name = o.name_of(new) or name
        if body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        o.meta(new)["name"] = name
        with self._cond:
            current = self._lookup(rtype, namespace, name)
            o.place(new, rtype, namespace or current["metadata"].get("namespace", ""))
            committed = self._update(rtype, current, new, subresource, via_api=via_api)
        result: Obj = o.clone(committed)
        return result

    def patch(
        self,
        resource: str,
        name: str,
        body: Any,
        content_type: str,
        namespace: str = "",
        *,
        subresource: str = "",
        via_api: bool = False,
    ) -> Obj:
        """PATCH with one of the three JSON patch types (see :mod:`patch`)."""
        rtype = rtype_of(resource)
        with self._cond:
            current = self._lookup(rtype, namespace, name)
            new = _apply_patch(o.clone(current), body, content_type, rtype, name)
            if o.name_of(new) != name:
                raise bad_request(
                    f"the name of the object ({o.name_of(new)}) does not match "
                    f"the name on the URL ({name})"
                )
            o.place(new, rtype, current["metadata"].get("namespace", ""))
            committed = self._update(rtype, current, new, subresource, via_api=via_api)
        result: Obj = o.clone(committed)
        return result

    def delete(
        self, resource: str, name: str, namespace: str = "", *, preconditions: Obj | None = None
    ) -> Obj:
        """Delete at once (no graceful termination); a namespace takes its objects along."""
        rtype = rtype_of(resource)
        with self._cond:
            current = self._lookup(rtype, namespace, name)
            _check_preconditions(rtype, current, preconditions)
            if rtype.plural == "namespaces":
                self._delete_namespace_contents(name)
            committed = self._remove(rtype, current)
        result: Obj = o.clone(committed)
        return result

    def delete_collection(
        self, resource: str, namespace: str = "", selector: Selector = EVERYTHING
    ) -> Objs:
        """Delete every matching object; returns what was deleted."""
        rtype = rtype_of(resource)
        with self._cond:
            doomed = [
                obj
                for obj in self._objects[rtype.plural].values()
                if (not namespace or obj["metadata"].get("namespace") == namespace)
                and selector.matches(obj)
            ]
            for obj in doomed:
                if rtype.plural == "namespaces":
                    self._delete_namespace_contents(o.name_of(obj))
            deleted = [self._remove(rtype, obj) for obj in doomed]
        copies: Objs = o.clone(deleted)
        return copies

    def bind(
        self,
        namespace: str,
        pod_name: str,
        node_name: str,
        *,
        pod_uid: str = "",
        annotations: Mapping[str, str] | None = None,
    ) -> Obj:
        """What ``pods/binding`` does: set spec.nodeName once, mark PodScheduled=True,
        and merge the Binding's annotations into the pod's, in the same update.

        404 if the pod is gone, 409 if it is already bound or ``pod_uid`` names
        another incarnation of the pod. The node's existence is not checked,
        as kube-apiserver does not check it either.
        """
        pods = RESOURCES["pods"]
        with self._cond:
            current = self._lookup(pods, namespace, pod_name)
            uid = current["metadata"].get("uid", "")
            if pod_uid and pod_uid != uid:
                raise conflict(
                    "pods/binding",
                    pod_name,
                    f"Precondition failed: UID in precondition: {pod_uid}, "
                    f"UID in object meta: {uid}",
                )
            bound = (current.get("spec") or {}).get("nodeName")
            if bound:
                raise conflict(
                    "pods/binding",
                    pod_name,
                    f'pod {pod_name} is already assigned to node "{bound}"',
                )
            new: Obj = o.clone(current)
            new.setdefault("spec", {})["nodeName"] = node_name
            if annotations:
                metadata = new.setdefault("metadata", {})
                metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
            status = new.get("status") or {}
            o.set_condition(
                status,
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": o.now_rfc3339(),
                },
            )
            new["status"] = status
            committed = self._commit(pods, MODIFIED, new, current)
        result: Obj = o.clone(committed)
        return result

    def evict(self, namespace: str, pod_name: str, *, preconditions: Obj | None = None) -> Obj:
        """What ``pods/eviction`` does: delete the pod unless a (simulated) PDB refuses."""
        pods = RESOURCES["pods"]
        with self._cond:
            current = self._lookup(pods, namespace, pod_name)
            phase = (current.get("status") or {}).get("phase")
            refuse = self._eviction_refused
            if refuse is not None and phase not in ("Succeeded", "Failed") and refuse(current):
                raise ApiError(
                    429,
                    PDB_MESSAGE,
                    details={
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": "The disruption budget does not allow it",
                            }
                        ]
                    },
                )
            _check_preconditions(pods, current, preconditions)
            committed = self._remove(pods, current)
        result: Obj = o.clone(committed)
        return result

    # --- seeding ------------------------------------------------------------------------

    def seed(self, manifests: Iterable[Obj]) -> Objs:
        """Create objects from manifests (namespaces first); returns what was created."""
        from spotpack.devcluster.seed import create_all

        return create_all(self, manifests)

    def load_yaml(self, *paths: str | Path) -> Objs:
        """Seed from multi-document YAML files (``kind: List`` is unpacked)."""
        from spotpack.devcluster.seed import load_manifests

        return self.seed(load_manifests(paths))

    # --- watches ------------------------------------------------------------------------

    def open_watch(
        self,
        resource: str,
        namespace: str = "",
        *,
        resource_version: str | None = None,
        selector: Selector = EVERYTHING,
        timeout: float = DEFAULT_WATCH_TIMEOUT,
        bookmark_interval: float | None = None,
        stop: threading.Event | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> WatchStream:
        """Open a watch; iterate the result for event batches.

        ``resource_version`` None, "" or "0" starts with synthetic ADDED events
        for what exists now (kube's "start at most recent"); any other version
        replays the changes after it, or yields one ERROR 410 if it is too old.
        """
        rtype = rtype_of(resource)
        rv = parse_resource_version(resource_version)
        with self._cond:
            initial: Objs | None = None
            if not rv:
                initial = [
                    obj
                    for obj in self._objects[rtype.plural].values()
                    if (not namespace or obj["metadata"].get("namespace") == namespace)
                    and selector.matches(obj)
                ]
                rv = self._history.last
            stream = WatchStream(
                self,
                rtype,
                namespace=namespace,
                selector=selector,
                cursor=min(rv, self._history.last),
                initial=initial,
                timeout=timeout,
                bookmark_interval=bookmark_interval,
                stop=stop,
                alive=alive,
            )
            self._watches.add(stream)
        return stream

    def watch(self, resource: str, namespace: str = "", **kwargs: Any) -> Iterator[Event]:
        """:meth:`open_watch`, one event at a time (for in-process consumers)."""
        for batch in self.open_watch(resource, namespace, **kwargs):
            yield from batch

    def _changes_after(self, stream: WatchStream, wait: float) -> Changes:
        """Changes after the stream's cursor, waiting up to ``wait`` s for the first."""
        with self._cond:
            if stream.closed:
                return []  # a dropped stream delivers nothing written after the drop
            changes = self._history.since(stream.cursor, _BATCH)
            if not changes and wait > 0:
                self._cond.wait(wait)
                if stream.closed:
                    return []
                changes = self._history.since(stream.cursor, _BATCH)
            return changes

    def _forget_watch(self, stream: WatchStream) -> None:
        with self._cond:
            self._watches.discard(stream)

    @property
    def open_watches(self) -> int:
        with self._cond:
            return len(self._watches)

    def wake_watches(self) -> None:
        """Make every idle watch re-check its end conditions now."""
        with self._cond:
            self._cond.notify_all()

    # --- fault hooks --------------------------------------------------------------------

    def compact(self) -> str:
        """Drop the watch history: resuming from any older version now gets 410."""
        with self._cond:
            self._history.compact()
            return str(self._history.last)

    def close_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch; ``abrupt`` drops the connection instead of ending cleanly."""
        with self._cond:
            streams = list(self._watches)
            for stream in streams:
                stream.close(abrupt=abrupt)
            self._cond.notify_all()
        return len(streams)

    def refuse_evictions(self, refuse: bool | EvictionPolicy = True) -> None:
        """Answer evictions with 429 as a PodDisruptionBudget would (for all pods, or
        those ``refuse(pod)`` picks); ``False`` allows them again."""
        if refuse is True:
            self._eviction_refused = _always
        elif refuse is False:
            self._eviction_refused = None
        else:
            self._eviction_refused = refuse

    def inject_fault(
        self,
        resource: str,
        verb: str,
        *,
        delay: float = 0.0,
        code: int | None = None,
        message: str = "injected fault",
        times: int | None = None,
    ) -> None:
        """Delay and/or fail API requests for ``resource`` (e.g. ``pods/binding``) + ``verb``."""
        self.faults.add(Fault(resource, verb, delay=delay, code=code, message=message, times=times))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.refuse_evictions(False)

    # --- internals (lock held) ------------------------------------------------------------

    def _lookup(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        ns = (namespace or "default") if rtype.namespaced else ""
        obj = self._objects[rtype.plural].get((ns, name))
        if obj is None:
            raise not_found(rtype.plural, name, rtype.group)
        return obj

    def _insert(self, rtype: ResourceType, new: Obj, ns: str) -> Obj:
        m = new["metadata"]
        table = self._objects[rtype.plural]
        if not m.get("name") and m.get("generateName"):
            prefix = m["generateName"]
            for _ in range(16):
                m["name"] = o.generate_name(prefix)
                if (ns, m["name"]) not in table:
                    break
        o.check_name(rtype, m.get("name", ""))
        if (ns, m["name"]) in table:
            raise ApiError(
                409,
                f'{rtype.plural} "{m["name"]}" already exists',
                reason="AlreadyExists",
                details={"name": m["name"], "kind": rtype.plural},
            )
        return self._commit(rtype, ADDED, new, None)

    def _update(
        self, rtype: ResourceType, current: Obj, new: Obj, subresource: str, *, via_api: bool
    ) -> Obj:
        name = current["metadata"]["name"]
        want_rv = new["metadata"].get("resourceVersion")
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, STALE, rtype.group)
        if subresource == "status":
            status = new.get("status")
            new = o.clone(current)
            new["status"] = status if status is not None else {}
        elif subresource:
            raise ApiError(404, f"{rtype.plural}/{subresource} cannot be updated")
        else:
            o.carry_system_fields(new, current)
            if via_api and rtype.has_status:
                new["status"] = current.get("status")
            if via_api and rtype.plural == "pods":
                o.check_pod_update(new, current)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return current  # kube skips no-op writes: no new version, no event
        return self._commit(rtype, MODIFIED, new, current)

    def _remove(self, rtype: ResourceType, current: Obj) -> Obj:
        gone: Obj = o.clone(current)
        return self._commit(rtype, DELETED, gone, current)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rtype in RESOURCES.values():
            if not rtype.namespaced:
                continue
            table = self._objects[rtype.plural]
            for key in [k for k in table if k[0] == namespace]:
                self._remove(rtype, table[key])

    def _commit(self, rtype: ResourceType, kind: str, obj: Obj, prev: Obj | None) -> Obj:
        """Stamp the next version, store (or drop) ``obj``, log the change, wake watches."""
        rv = self._history.last + 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        ns = meta.get("namespace", "") if rtype.namespaced else ""
        key = (ns, meta["name"])
        if kind == DELETED:
            self._objects[rtype.plural].pop(key, None)
        else:
            self._objects[rtype.plural][key] = obj
        self._history.append(Change(rv, kind, rtype.plural, ns, obj, prev))
        self._cond.notify_all()
        return obj


_BATCH = 512


def _prepare_new(
    rtype: ResourceType, obj: Obj, namespace: str, *, via_api: bool = False
) -> tuple[Obj, str]:
    """A validated, defaulted, stamped copy of ``obj`` and its namespace."""
    new = o.check_type(o.clone_manifest(obj), rtype)
    ns = o.place(new, rtype, namespace)
    o.apply_defaults(new, rtype, via_api=via_api)
    o.stamp_new(new)
    return new, ns


def _always(_pod: Obj) -> bool:
    return True


def _check_preconditions(rtype: ResourceType, current: Obj, pre: Obj | None) -> None:
    """DeleteOptions.preconditions: uid and resourceVersion must match, else 409."""
    if not pre:
        return
    meta = current["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        want = pre.get(field)
        if want and want != meta.get(field):
            raise conflict(
                rtype.plural,
                meta["name"],
                f"Precondition failed: {label} in precondition: {want}, "
                f"{label} in object meta: {meta.get(field)}",
                rtype.group,
            )


def _apply_patch(base: Obj, body: Any, content_type: str, rtype: ResourceType, name: str) -> Obj:
    """Apply one patch document; shape errors are 400, failed operations 422."""
    try:
        if content_type == JSON_PATCH:
            if not isinstance(body, list):
                raise bad_request("json patch must be a list of operations")
            result = json_patch(base, body)
        elif content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if not isinstance(body, dict):
                raise bad_request("merge patch must be a JSON object")
            merge = merge_patch if content_type == MERGE_PATCH else strategic_merge_patch
            result = merge(base, body)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {JSON_PATCH}, {MERGE_PATCH}, "
                f"{STRATEGIC_MERGE_PATCH}",
            )
    except PatchError as exc:
        raise ApiError(
            422, f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    if not isinstance(result, dict):
        raise ApiError(422, f'{rtype.kind} "{name}" is invalid: the patch must leave an object')
    return o.check_type(result, rtype)
