"""Creating the ``pods/binding``: the one API call a bind costs.

The Binding carries the GPU assignment as annotations: the API server copies a
Binding's ``metadata.annotations`` onto the pod in the same update that sets
``spec.nodeName`` (``BindingREST.setPodHostAndAnnotations``), so the device
plugin finds its cards and our cache rebuilds its usage from one write, not a
patch followed by a bind. ``metadata.uid`` makes the API server check that the
pod is the one the scheduler chose (a recreated pod of the same name is refused).

The request goes through the kubernetes client's pooled, authenticated
connection with ``_preload_content=False``: no model (de)serialization, no new
TLS handshake per pod.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import orjson

from spotpack.errors import ClusterUnavailable, SpotpackError

log = logging.getLogger(__name__)


class BindError(SpotpackError):
    """The Binding was refused or could not be sent; the message says why."""


class Binder(Protocol):
    def bind(
        self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None: ...


class KubeBinder:
    """Binds through the Kubernetes API with the kubernetes client's connection pool."""

    def __init__(self, api_client: object, timeout: float) -> None:
        self._api = api_client
        self._timeout = timeout

    def bind(
        self, namespace: str, name: str, uid: str, node: str, annotations: Mapping[str, str]
    ) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "annotations": dict(annotations),
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/binding"
        try:
            response = self._api.call_api(  # type: ignore[attr-defined]
                path,
                "POST",
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            raw = response[0] if isinstance(response, tuple) else response
            raw.release_conn()
        except ApiException as exc:
            raise BindError(_api_message(exc)) from exc
        except OSError as exc:
            raise ClusterUnavailable(f"cannot reach the API server to bind: {exc}") from exc


def _api_message(exc: object) -> str:
    """The Status message of a refused Binding, or the HTTP reason."""
    body = getattr(exc, "body", None)
    try:
        status = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        status = {}
    message = status.get("message") if isinstance(status, dict) else None
    return (
        f"binding refused ({getattr(exc, 'status', '?')}): {message or getattr(exc, 'reason', '')}"
    )
