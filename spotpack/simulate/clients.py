"""The simulator's edges: the API server (through the kubernetes client) and the three services.

Everything goes over HTTP as in production. The API server is reached with
the kubeconfig the stack wrote (any cluster works), raw JSON in and out; the
services with one keep-alive connection each, HTTPS verified against the
stack's CA when the URL says https. Library errors are translated here, once,
into :class:`SimulationError` (chained).
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from spotpack.errors import SpotpackError

Obj = dict[str, Any]
TIMEOUT = 15.0


class SimulationError(SpotpackError):
    """The run cannot go on: a service or the API server failed or refused us."""


class ApiRefused(SimulationError):  # noqa: N818
    """The API server answered with an error status (``status`` holds the code)."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class KubeApi:
    """The few API calls the simulator makes, over the kubernetes client's ``ApiClient``."""

    def __init__(self, api_client: Any) -> None:
        self._api = api_client

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeApi:
        from spotpack.kube.config import load_api_client

        return cls(load_api_client(str(path)))

    def close(self) -> None:
        self._api.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Obj:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=TIMEOUT,
            )
        except ApiException as exc:
            raise ApiRefused(
                f"{method} {path}: {exc.status} {_message(exc.body)}", exc.status
            ) from exc
        except OSError as exc:
            raise SimulationError(f"cannot reach the API server: {exc}") from exc
        raw = response[0] if isinstance(response, tuple) else response
        data = raw.data
        raw.release_conn()
        loaded = orjson.loads(data) if data else {}
        return loaded if isinstance(loaded, dict) else {}

    def list_nodes(self) -> list[Obj]:
        return _items(self._call("GET", "/api/v1/nodes"))

    def list_pods(self, selector: str) -> list[Obj]:
        return _items(self._call("GET", "/api/v1/pods", query=[("labelSelector", selector)]))

    def ensure_namespace(self, name: str) -> None:
        try:
            self._call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        except ApiRefused as exc:
            if exc.status != 409:
                raise

    def create_pod(self, pod: Obj) -> Obj:
        ns = pod["metadata"]["namespace"]
        return self._call("POST", f"/api/v1/namespaces/{ns}/pods", pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._call(
                "DELETE",
                f"/api/v1/namespaces/{namespace}/pods/{name}",
                {"gracePeriodSeconds": 0},
            )
        except ApiRefused as exc:
            if exc.status != 404:
                raise

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self._call("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/binding", body)

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": dict(status)},
            content_type="application/merge-patch+json",
        )


def _items(listing: Obj) -> list[Obj]:
    return [i for i in listing.get("items") or [] if isinstance(i, dict)]


def _message(body: object) -> str:
    try:
        status = orjson.loads(body) if isinstance(body, bytes | str) and body else {}
    except orjson.JSONDecodeError:
        return str(body)[:200]
    return str(status.get("message", "")) if isinstance(status, dict) else ""


class ServiceClient:
    """JSON over one keep-alive connection to a service (http or https with our CA)."""

    def __init__(self, url: str, ca_file: Path | None, *, name: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SimulationError(f"{name}: not an http(s) URL: {url!r}")
        self.name = name
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base = parts.path.rstrip("/")
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._context is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, context=self._context, timeout=TIMEOUT
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT)
        return self._conn

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST JSON; (status, decoded body). One retry on a dropped keep-alive connection."""
        data = orjson.dumps(body)
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(
                    "POST",
                    self._base + path,
                    body=data,
                    headers={"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt:
                    raise SimulationError(f"{self.name}: POST {path} failed: {exc}") from exc
                continue
            try:
                return resp.status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError as exc:
                raise SimulationError(
                    f"{self.name}: POST {path}: {resp.status}, not JSON: {raw[:200]!r}"
                ) from exc
        raise SimulationError(f"{self.name}: POST {path} failed")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def review(pod: Obj, uid: str) -> Obj:
    """The AdmissionReview the API server sends a mutating webhook for a pod CREATE."""
    meta = pod["metadata"]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:sim:controller"},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def admission_patch(response: Any) -> tuple[bool, list[Any], str]:
    """(allowed, JSON Patch operations, message) of an AdmissionReview answer."""
    if not isinstance(response, dict) or not isinstance(response.get("response"), dict):
        raise SimulationError(f"webhook: not an AdmissionReview answer: {str(response)[:200]}")
    answer = response["response"]
    allowed = bool(answer.get("allowed"))
    message = str((answer.get("status") or {}).get("message", ""))
    patch = answer.get("patch")
    if not allowed or not patch:
        return allowed, [], message
    ops = orjson.loads(base64.b64decode(patch))
    if not isinstance(ops, list):
        raise SimulationError("webhook: the patch is not a JSON Patch list")
    return allowed, ops, message


__all__ = [
    "ApiRefused",
    "KubeApi",
    "ServiceClient",
    "SimulationError",
    "admission_patch",
    "review",
]
