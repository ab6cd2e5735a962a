"""The Kubernetes REST API over a :class:`Store`, as a WSGI app (werkzeug).

Parse -> store call -> JSON response. Every error leaves as a ``Status`` body
(never HTML, never a traceback): :class:`ApiError` carries its own code,
werkzeug's HTTP errors (e.g. 413 for an oversized body) are translated, and
anything unexpected is logged and answered with a 500 ``Status``.

Simplifications, on purpose: no authentication or authorization, no
admission webhooks, lists are in insertion order rather than sorted (with
``limit``, pages are slices of one snapshot, see :mod:`.paging`), and
``dryRun`` is refused rather than silently applied.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from spotpack.devcluster import resources
from spotpack.devcluster.errors import ApiError, bad_request, success_status
from spotpack.devcluster.paging import Pager
from spotpack.devcluster.routing import Route, parse_path
from spotpack.devcluster.selectors import Selector, parse_field_selector, parse_label_selector
from spotpack.devcluster.store import Store, parse_resource_version
from spotpack.devcluster.watch import Event, WatchStream

log = logging.getLogger(__name__)

Obj = dict[str, Any]
StartResponse = Callable[..., Any]
MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's request size limit
_TRUE = ("true", "1")
_NOT_FOUND = "the server could not find the requested resource"
_HEALTH = frozenset({"/healthz", "/livez", "/readyz"})


def json_response(body: Any, code: int = 200) -> Response:
    return Response(orjson.dumps(body), status=code, content_type="application/json")


def error_response(error: ApiError) -> Response:
    return json_response(error.status(), error.code)


class ApiServer:
    """WSGI callable serving the store; :meth:`stop` ends its watch streams."""

    def __init__(
        self,
        store: Store,
        *,
        bookmark_interval: float = 5.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.store = store
        self.bookmark_interval = bookmark_interval
        self.max_body_bytes = max_body_bytes
        self._stopping = threading.Event()
        self._pager = Pager()
        self._discovery = _discovery_documents()
        self._handlers: dict[str, Callable[[Request, Route], Response]] = {
            "get": self._get,
            "list": self._list,
            "watch": self._watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }

    def stop(self) -> None:
        """End every watch stream this app serves (the store may outlive the server)."""
        self._stopping.set()
        self.store.wake_watches()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.max_body_bytes
        try:
            response = self.handle(request)
        except ApiError as exc:
            response = error_response(exc)
        except HTTPException as exc:
            code = exc.code or 400
            response = error_response(ApiError(code, exc.description or exc.name))
        except Exception:
            log.exception(
                "devcluster request failed method=%s path=%s", request.method, request.path
            )
            response = error_response(ApiError(500, "internal error in the dev cluster"))
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """Route one request; raises ApiError for anything the API would refuse."""
        path = request.path
        log.debug("devcluster request method=%s path=%s", request.method, path)
        if request.args.get("dryRun"):
            raise bad_request("dryRun is not supported by the dev cluster")
        if path in _HEALTH:
            return Response("ok", status=200, content_type="text/plain")
        doc = self._discovery.get(path.rstrip("/") or "/")
        if doc is not None:
            if request.method != "GET":
                raise ApiError(405, f"the server does not allow this method on {path}")
            return json_response(doc)
        route = parse_path(path)
        if route is None:
            raise ApiError(404, _NOT_FOUND, details={"causes": [{"message": path}]})
        verb = _verb(request, route)
        self._apply_fault(route, verb)
        return self._handlers[verb](request, route)

    def _apply_fault(self, route: Route, verb: str) -> None:
        fault = self.store.faults.take(route.label, verb)
        if fault is None:
            return
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.code:
            raise ApiError(fault.code, fault.message)

    # --- reads --------------------------------------------------------------------------

    def _get(self, _request: Request, route: Route) -> Response:
        return json_response(self.store.get(route.rtype.plural, route.name, route.namespace))

    def _list(self, request: Request, route: Route) -> Response:
        selector = _selector(request, route)
        parse_resource_version(request.args.get("resourceVersion"))
        limit = _int_arg(request, "limit")
        metadata: dict[str, Any] = {}
        if limit:
            items, rv, token, remaining = self._pager.page(
                limit,
                request.args.get("continue"),
                lambda: self.store.snapshot(route.rtype.plural, route.namespace, selector),
            )
            if token is not None:
                metadata = {"continue": token, "remainingItemCount": remaining}
        else:
            items, rv = self.store.snapshot(route.rtype.plural, route.namespace, selector)
        return json_response(
            {
                "kind": route.rtype.list_kind,
                "apiVersion": route.rtype.api_version,
                "metadata": {"resourceVersion": rv, **metadata},
                "items": items,
            }
        )

    def _watch(self, request: Request, route: Route) -> Response:
        args = request.args
        timeout = _int_arg(request, "timeoutSeconds")
        bookmarks = args.get("allowWatchBookmarks", "").lower() in _TRUE
        sock = request.environ.get("werkzeug.socket")
        stream = self.store.open_watch(
            route.rtype.plural,
            route.namespace,
            resource_version=args.get("resourceVersion"),
            selector=_selector(request, route),
            timeout=float(timeout) if timeout else 1800.0,
            bookmark_interval=self.bookmark_interval if bookmarks else None,
            stop=self._stopping,
            alive=(lambda: _peer_open(sock)) if isinstance(sock, socket.socket) else None,
        )
        body = _stream_events(stream, sock if isinstance(sock, socket.socket) else None)
        return Response(body, status=200, content_type="application/json", direct_passthrough=True)

    # --- writes -------------------------------------------------------------------------

    def _create(self, request: Request, route: Route) -> Response:
        body = _json_body(request)
        if route.bindings or route.subresource == "binding":
            return self._bind(body, route)
        if route.subresource == "eviction":
            return self._evict(body, route)
        if route.name or route.subresource:
            raise ApiError(405, f"create is not allowed on {route.label} {route.name}")
        if route.rtype.namespaced and not route.namespace:
            raise ApiError(405, f"create {route.label} needs a namespace in the path")
        created = self.store.create(
            route.rtype.plural, _object(body), route.namespace, via_api=True
        )
        return json_response(created, 201)

    def _bind(self, body: Any, route: Route) -> Response:
        binding = _object(body)
        meta = binding.get("metadata") if isinstance(binding.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        name = route.name or meta.get("name")
        target = binding.get("target")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "Binding is invalid: metadata.name: Required value")
        if route.name and meta.get("name") not in (None, route.name):
            raise bad_request("the name of the binding does not match the pod in the URL")
        if (
            not isinstance(target, dict)
            or not isinstance(target.get("name"), str)
            or not target["name"]
        ):
            raise ApiError(422, f'Binding "{name}" is invalid: target.name: Required value')
        uid = meta.get("uid")
        annotations = meta.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        ):
            raise ApiError(
                422, f'Binding "{name}" is invalid: metadata.annotations: must be a map of strings'
            )
        self.store.bind(
            route.namespace,
            name,
            target["name"],
            pod_uid=uid if isinstance(uid, str) else "",
            annotations=annotations,
        )
        return json_response(success_status(201), 201)

    def _evict(self, body: Any, route: Route) -> Response:
        eviction = _object(body)
        meta = eviction.get("metadata")
        if isinstance(meta, dict) and meta.get("name") not in (None, route.name):
            raise bad_request("name in URL does not match name in Eviction object")
        options = eviction.get("deleteOptions")
        pre = options.get("preconditions") if isinstance(options, dict) else None
        self.store.evict(
            route.namespace, route.name, preconditions=pre if isinstance(pre, dict) else None
        )
        return json_response(success_status(201), 201)

    def _update(self, request: Request, route: Route) -> Response:
        body = _object(_json_body(request))
        updated = self.store.replace(
            route.rtype.plural,
            route.name,
            body,
            route.namespace,
            subresource=route.subresource,
            via_api=True,
        )
        return json_response(updated)

    def _patch(self, request: Request, route: Route) -> Response:
        body = _json_body(request)
        patched = self.store.patch(
            route.rtype.plural,
            route.name,
            body,
            request.mimetype,
            route.namespace,
            subresource=route.subresource,
            via_api=True,
        )
        return json_response(patched)

    def _delete(self, request: Request, route: Route) -> Response:
        if route.subresource:
            raise ApiError(405, f"delete is not allowed on {route.label}")
        options = _json_body(request, required=False)
        pre = options.get("preconditions") if isinstance(options, dict) else None
        if options is not None and not isinstance(options, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        deleted = self.store.delete(
            route.rtype.plural,
            route.name,
            route.namespace,
            preconditions=pre if isinstance(pre, dict) else None,
        )
        if route.rtype.plural in ("pods", "namespaces"):
            return json_response(deleted)
        meta = deleted["metadata"]
        return json_response(
            success_status(
                200,
                {
                    "name": meta["name"],
                    "kind": route.rtype.plural,
                    "uid": meta.get("uid", ""),
                },
            )
        )

    def _delete_collection(self, request: Request, route: Route) -> Response:
        deleted = self.store.delete_collection(
            route.rtype.plural, route.namespace, _selector(request, route)
        )
        return json_response(
            {
                "kind": route.rtype.list_kind,
                "apiVersion": route.rtype.api_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": deleted,
            }
        )


def _verb(request: Request, route: Route) -> str:
    """The API verb for method + path, or a 405."""
    method = request.method
    if method == "GET" and route.subresource not in ("binding", "eviction"):
        if route.name:
            return "get"
        return "watch" if request.args.get("watch", "").lower() in _TRUE else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method)
    named = bool(route.name)
    if verb == "create" and (not named or route.subresource in ("binding", "eviction")):
        return verb
    if verb in ("update", "patch") and named and route.subresource in ("", "status"):
        return verb
    if verb == "delete":
        return "delete" if named else "deletecollection"
    raise ApiError(
        405, f"method {method} is not allowed on {route.label}", reason="MethodNotAllowed"
    )


def _json_body(request: Request, *, required: bool = True) -> Any:
    data = request.get_data(cache=False)
    if not data.strip():
        if required:
            raise bad_request("the request body is empty")
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body of the request is not valid JSON: {exc}") from exc


def _object(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _int_arg(request: Request, name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise bad_request(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def _selector(request: Request, route: Route) -> Selector:
    labels = parse_label_selector(request.args.get("labelSelector"))
    fields = parse_field_selector(request.args.get("fieldSelector"), route.rtype.plural)
    return labels & fields


def _encode(batch: list[Event]) -> bytes:
    return b"".join(
        orjson.dumps({"type": kind, "object": obj}, option=orjson.OPT_APPEND_NEWLINE)
        for kind, obj in batch
    )


def _stream_events(stream: WatchStream, sock: socket.socket | None) -> Iterator[bytes]:
    """The chunked body of a watch; a dropped stream ends without the final chunk.

    The first, empty, item makes werkzeug send the headers at once, as
    kube-apiserver does: clients block until then and could not be stopped.
    """
    yield b""
    for batch in stream:
        yield _encode(batch)
    if stream.dropped and sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    elif not stream.closed:
        log.debug("watch ended resource=%s cursor=%s", stream.rtype.plural, stream.cursor)


def _peer_open(sock: Any) -> bool:
    """False once the client closed its end (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (OSError, ValueError):
        return False


def _discovery_documents() -> dict[str, Any]:
    docs: dict[str, Any] = {
        "/version": resources.version_info(),
        "/api": resources.api_versions(),
        "/apis": resources.api_group_list(),
    }
    for group, version in resources.group_versions():
        prefix = f"/apis/{group}" if group else "/api"
        docs[f"{prefix}/{version}"] = resources.api_resource_list(group, version)
        if group:
            docs[prefix] = resources.api_group(group)
    docs["/"] = {"paths": sorted([*docs, "/healthz", "/livez", "/readyz"])}
    return docs
