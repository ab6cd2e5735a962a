"""The few Kubernetes writes the provisioner makes, behind a small Protocol.

The loop reads the cluster through informers; it *writes* through
:class:`ClusterApi`: patch and delete nodes, evict pods, list a node's pods
(the re-check before a removal), create Events. :class:`KubeClusterApi` does
it with the kubernetes client and raw JSON; tests use an in-memory fake.

Errors are translated once, here: 409 is :class:`Conflict` (re-read and try
again), everything else a :class:`~spotpack.errors.ClusterUnavailable`
chained to the client's exception. An eviction's answer is a value, not an
exception, because 429 (a PodDisruptionBudget says not now) is an ordinary
outcome the drain retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

import orjson

from provisioner.decide import with_taint
from spotpack.errors import ClusterUnavailable, SpotpackError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
TAINT_ATTEMPTS = 5


class Conflict(SpotpackError):  # noqa: N818 - the API's own word
    """409: the object changed since it was read (or exists already)."""


class Evicted(StrEnum):
    EVICTED = "evicted"
    BLOCKED = "blocked"
    """429: a PodDisruptionBudget does not allow it now."""
    GONE = "gone"
    """404: the pod is gone already."""


class ClusterApi(Protocol):
    """The provisioner's writes to the API server."""

    def read_node(self, name: str) -> Obj | None: ...

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> Obj:
        """JSON merge patch; a ``metadata.resourceVersion`` in it is a precondition (409)."""
        ...

    def delete_node(self, name: str) -> None:
        """Delete; a node that is gone is not an error."""
        ...

    def pods_on_node(self, name: str) -> list[Obj]: ...

    def evict(self, namespace: str, name: str) -> Evicted: ...

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> None: ...


def add_taint(api: ClusterApi, node: str, taint: Mapping[str, str]) -> bool:
    """Add ``taint`` to ``node`` (read, modify, write with the resourceVersion; retry on 409).

    ``spec.taints`` has no merge key, so a patch replaces the whole list:
    without the precondition a concurrent writer's taint would be lost.
    Returns False when the node is gone.
    """
    for _ in range(TAINT_ATTEMPTS):
        current = api.read_node(node)
        if current is None:
            return False
        meta = current.get("metadata") or {}
        taints = with_taint((current.get("spec") or {}).get("taints") or [], taint)
        if taints is None:
            return True
        try:
            api.patch_node(
                node,
                {
                    "metadata": {"resourceVersion": meta.get("resourceVersion")},
                    "spec": {"taints": taints},
                },
            )
            return True
        except Conflict:
            continue
    raise ClusterUnavailable(f"node {node}: taint not written after {TAINT_ATTEMPTS} conflicts")


def cordon(api: ClusterApi, node: str, unschedulable: bool = True) -> None:
    api.patch_node(node, {"spec": {"unschedulable": unschedulable}})


class KubeClusterApi:
    """:class:`ClusterApi` over the kubernetes client (``CoreV1Api``), raw JSON in and out."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._timeout = timeout

    def read_node(self, name: str) -> Obj | None:
        return self._json("read node", self._core.read_node, name, missing=None)

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> Obj:
        found = self._json(
            "patch node",
            self._core.patch_node,
            name,
            dict(patch),
            _content_type=MERGE_PATCH,
        )
        if found is None:
            raise ClusterUnavailable(f"patch node {name}: not found")
        return found

    def delete_node(self, name: str) -> None:
        self._json("delete node", self._core.delete_node, name, missing={})

    def pods_on_node(self, name: str) -> list[Obj]:
        found = self._json(
            "list pods",
            self._core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={name}",
        )
        items = (found or {}).get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def evict(self, namespace: str, name: str) -> Evicted:
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        from kubernetes.client.exceptions import ApiException

        try:
            self._raw(self._core.create_namespaced_pod_eviction, name, namespace, body)
        except ApiException as exc:
            if exc.status == 429:
                return Evicted.BLOCKED
            if exc.status == 404:
                return Evicted.GONE
            raise _translate("evict pod", exc) from exc
        return Evicted.EVICTED

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        self._json("create event", self._core.create_namespaced_event, namespace, dict(event))

    # --- plumbing ------------------------------------------------------------------------

    def _raw(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        try:
            response = method(
                *args, **kwargs, _preload_content=False, _request_timeout=self._timeout
            )
        except OSError as exc:
            raise ClusterUnavailable(f"cannot reach the API server: {exc}") from exc
        try:
            data: bytes = response.data
        finally:
            response.release_conn()
        return data

    def _json(
        self,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        missing: Obj | None = None,
        **kwargs: Any,
    ) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        try:
            raw = self._raw(method, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and (missing is not None or what.startswith("read")):
                return missing
            raise _translate(what, exc) from exc
        value = orjson.loads(raw) if raw else {}
        return value if isinstance(value, dict) else {}


def _translate(what: str, exc: Any) -> SpotpackError:
    if exc.status == 409:
        return Conflict(f"{what}: conflict ({exc.reason})")
    return ClusterUnavailable(f"{what} refused ({exc.status}): {exc.reason}")


__all__ = ["ClusterApi", "Conflict", "Evicted", "KubeClusterApi", "add_taint", "cordon"]
