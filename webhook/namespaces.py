"""Namespace defaults: the ``spotpack.io/`` annotations of each namespace.

Read through the Kubernetes API the standard way (in-cluster config, else
``KUBECONFIG``), kept in a watch-based cache so an admission never waits on the
API. With no cluster reachable the global defaults apply and a warning says so
once, at start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from spotpack.policy import PREFIX

if TYPE_CHECKING:
    from spotpack.kube.informer import Informer

log = logging.getLogger(__name__)
EMPTY: Mapping[str, str] = {}


class NamespaceDefaults(Protocol):
    """Where the webhook reads namespace annotations from."""

    def annotations(self, namespace: str) -> Mapping[str, str]: ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...


class StaticNamespaces:
    """Fixed annotations per namespace: no cluster, or tests."""

    def __init__(self, annotations: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._annotations = {k: dict(v) for k, v in (annotations or {}).items()}

    def annotations(self, namespace: str) -> Mapping[str, str]:
        return self._annotations.get(namespace, EMPTY)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        return None


def keep_policy_annotations(namespace: dict[str, Any]) -> dict[str, Any]:
    """Informer transform: keep a namespace's name and our annotations, drop the rest.

    Clusters have thousands of namespaces with large annotations; the cache
    holds only what the decision reads.
    """
    metadata = namespace.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "resourceVersion": metadata.get("resourceVersion"),
            "annotations": {k: v for k, v in annotations.items() if k.startswith(PREFIX)},
        }
    }


class WatchedNamespaces:
    """Namespace annotations from a watch-based cache (list + watch, relist on 410).

    Ready once the first list has landed, or after ``ready_timeout`` seconds
    without it: a webhook that never becomes ready blocks nothing useful, it only
    makes every pod fall back to failurePolicy; serving global defaults is better.
    """

    def __init__(
        self, informer: Informer, ready_timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._informer = informer
        self._clock = clock
        self._deadline = self._clock() + ready_timeout
        self._warned = False

    def annotations(self, namespace: str) -> Mapping[str, str]:
        obj = self._informer.get(namespace)
        if obj is None:
            return EMPTY
        annotations: Mapping[str, str] = obj["metadata"]["annotations"]
        return annotations

    def ready(self) -> bool:
        if self._informer.has_synced:
            return True
        if self._clock() < self._deadline:
            return False
        if not self._warned:
            self._warned = True
            log.warning("namespace cache not synced in time; serving with global defaults")
        return True

    def close(self) -> None:
        self._informer.stop()


def watch_namespaces(kubeconfig: str | None, ready_timeout: float) -> WatchedNamespaces:
    """Start the namespace cache; raises ClusterUnavailable when no cluster is configured."""
    from kubernetes import client

    from spotpack.kube.config import load_api_client
    from spotpack.kube.informer import Informer

    api = client.CoreV1Api(load_api_client(kubeconfig))
    informer = Informer(
        api.list_namespace,
        name="namespaces",
        transform=keep_policy_annotations,
        resync_period=600.0,
    ).start()
    return WatchedNamespaces(informer, ready_timeout)
