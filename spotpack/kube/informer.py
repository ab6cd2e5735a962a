"""A watch-based cache of one Kubernetes resource (client-go's informer, in small).

List, then watch from the list's resourceVersion, keeping a local dict of
plain-dict objects that handlers are told about. What makes it correct rather
than merely working on a good day:

* **410 Gone** (a watch ERROR event with code 410, or an ``ApiException``
  410) means the server no longer has the history to resume from: relist and
  emit the *differences* against the cache, including deletes of objects that
  vanished while we were not watching.
* **Dropped connections and other errors** resume the watch from the last
  resourceVersion seen (bookmarks advance it too); attempts that make no
  progress back off exponentially with jitter, bounded, so a down API server
  is not hammered.
* **Periodic resync** (optional) is a full relist with the same diffing: it
  heals any drift a bug or a missed event could leave.

Raw JSON is used throughout (``_preload_content=False`` and orjson): turning
50,000 pods into client model objects takes far longer than the list itself.
Stored values are the parsed dicts after ``transform`` (by default without
``managedFields``); they are shared, so callers must treat them as read-only.

Handlers run on the informer's thread, one at a time, outside the cache lock
(a handler may call :meth:`Informer.get`). A handler that raises is logged and
skipped; bad input is logged and skipped; the thread only ends on
:meth:`Informer.stop`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self

import orjson

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
Transform = Callable[[Obj], Obj]
Objs = list[Obj]  # aliases: inside Informer, ``list`` names the method
Keys = list[str]
Handlers = list[Callable[..., None]]

GONE = 410
_PROGRESS_SECONDS = 1.0  # a watch that lasted this long counts as progress
_CONNECT_TIMEOUT = 10.0


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace")
    return f"{namespace}/{name}" if namespace else str(name)


def key_for(name: str, namespace: str = "") -> str:
    """The cache key of an object by name (and namespace, if namespaced)."""
    return f"{namespace}/{name}" if namespace else name


def strip_managed_fields(obj: Obj) -> Obj:
    """Default transform: ``managedFields`` is often half an object and never needed."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def resource_version_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) else ""


class WatchExpiredError(Exception):
    """The server cannot resume the watch from our resourceVersion (410)."""


class WatchFailedError(Exception):
    """The watch stream carried an ERROR event other than 410."""


class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random, capped.

    delay_n = b/2 + uniform(0, b/2) with b = min(maximum, initial * 2**n), so
    retries spread out (no thundering herd after an API server restart) yet
    never wait less than half the nominal delay.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    def next(self) -> float:
        base = min(self.maximum, self.initial * (2.0**self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self._attempt = 0


def _parse_list(body: bytes) -> tuple[list[Any], str, str]:
    """(items, resourceVersion, continue token or "") of one list page."""
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        raise ValueError(f"list response is not an object: {type(doc).__name__}")
    items = doc.get("items") or []
    rv = resource_version_of(doc)
    if not isinstance(items, list) or not rv:
        raise ValueError("list response lacks items or metadata.resourceVersion")
    token = (doc.get("metadata") or {}).get("continue") or ""
    return items, rv, str(token)


def _lines(resp: Any) -> Iterator[bytes]:
    """Complete lines of a streamed body, as they arrive."""
    buffer = b""
    for chunk in resp.stream(65536, decode_content=True):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer


def _shutdown(resp: Any) -> None:
    """Unblock a thread reading ``resp`` by shutting its socket down.

    urllib3 2.x detaches the socket from its connection once the response
    headers are read (``resp.connection.sock`` is None); the socket then lives
    only under the http.client response's buffered reader. The Python object
    there reports itself closed, but its descriptor stays open while the
    reader holds it, and ``shutdown`` on it ends the blocked read at once.
    """
    candidates = (
        getattr(getattr(resp, "connection", None), "sock", None),
        getattr(
            getattr(getattr(getattr(resp, "_fp", None), "fp", None), "raw", None), "_sock", None
        ),
    )
    for sock in candidates:
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handlers:
    def __init__(self) -> None:
        self.add: list[AddHandler] = []
        self.update: list[UpdateHandler] = []
        self.delete: list[DeleteHandler] = []


class Informer:
    """Cache of one resource kept current by list + watch; see the module docstring.

    ``list_func`` is a kubernetes client list method (``CoreV1Api.list_node``,
    ``list_pod_for_all_namespaces``, ``list_namespaced_pod`` ...) and
    ``list_kwargs`` its arguments (``namespace``, ``label_selector``,
    ``field_selector``); the informer adds the watch arguments itself.
    """

    def __init__(
        self,
        list_func: Callable[..., Any],
        *,
        list_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        transform: Transform | None = strip_managed_fields,
        resync_period: float | None = None,
        watch_timeout: float = 300.0,
        request_timeout: float = 60.0,
        backoff: Backoff | None = None,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
        page_size: int = 500,
    ) -> None:
        self.name = name or getattr(list_func, "__name__", "informer")
        self._list_func = list_func
        self._list_kwargs = dict(list_kwargs or {})
        self._transform = transform
        self._resync_period = resync_period
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._backoff = backoff or Backoff()
        self._handlers = _Handlers()
        self.add_handlers(on_add=on_add, on_update=on_update, on_delete=on_delete)
        self._lock = threading.Lock()
        self._items: dict[str, Obj] = {}
        self._rv = ""
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._resp: Any = None
        self._next_resync = float("inf")
        self.relists = 0  # how many lists so far (observability and tests)
        self._events_seen = 0

    # --- lifecycle ----------------------------------------------------------------------

    def add_handlers(
        self,
        *,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Register handlers; only before :meth:`start`, so none misses an event."""
        if getattr(self, "_thread", None) is not None:
            raise RuntimeError("register informer handlers before start()")
        if on_add:
            self._handlers.add.append(on_add)
        if on_update:
            self._handlers.update.append(on_update)
        if on_delete:
            self._handlers.delete.append(on_delete)

    def start(self) -> Self:
        """Run in a daemon thread; returns self. Use :meth:`wait_for_sync` to wait."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"informer-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the thread, cutting an open watch so this returns at once."""
        self._stopping.set()
        resp = self._resp
        if resp is not None:
            _shutdown(resp)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "informer did not stop in time informer=%s timeout=%s", self.name, timeout
                )

    @property
    def has_synced(self) -> bool:
        """True once the first list is stored and handed to the handlers (stays true)."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def resource_version(self) -> str:
        """The last resourceVersion the cache is known to be current with."""
        with self._lock:
            return self._rv

    # --- the cache ----------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        """The cached object under ``key`` (``ns/name`` or ``name``); read-only."""
        with self._lock:
            return self._items.get(key)

    def list(self) -> Objs:
        """A snapshot list of the cached objects (the objects themselves are shared)."""
        with self._lock:
            return list(self._items.values())

    def keys(self) -> Keys:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        need_list = True
        while not self._stopping.is_set():
            started, seen = time.monotonic(), self._events_seen
            progressed = False
            try:
                if need_list or time.monotonic() >= self._next_resync:
                    need_list = True
                    self._relist()
                    need_list = False
                progressed = self._watch()
            except WatchExpiredError:
                log.info("informer watch expired, relisting informer=%s rv=%s", self.name, self._rv)
                need_list = True
                progressed = time.monotonic() - started >= _PROGRESS_SECONDS
            except Exception as exc:
                if self._stopping.is_set():
                    break
                if getattr(exc, "status", None) == GONE:
                    need_list = True
                log.warning(
                    "informer error informer=%s relist=%s error=%s",
                    self.name,
                    need_list,
                    _describe(exc),
                )
            # A stream that delivered events and then broke reconnects at once.
            progressed = progressed or self._events_seen > seen
            if progressed:
                self._backoff.reset()
            elif not self._stopping.is_set():
                self._stopping.wait(self._backoff.next())
        log.debug("informer stopped informer=%s", self.name)

    def _call(self, **extra: Any) -> Any:
        resp = self._list_func(**self._list_kwargs, **extra, _preload_content=False)
        self._resp = resp
        if self._stopping.is_set():
            _shutdown(resp)
        return resp

    def _relist(self) -> None:
        """List page by page (``limit``/``continue``), transforming each page at once.

        Pages keep the peak memory of a relist at one page of raw objects instead of
        the whole cluster's (50,000 pods are hundreds of MB as parsed JSON, and
        freed memory does not go back to the system). All pages come from one
        snapshot, so the last page's resourceVersion is the list's.
        """
        fresh: dict[str, Obj] = {}
        token = ""
        while True:
            paging: dict[str, Any] = {"limit": self._page_size} if self._page_size else {}
            if token:
                paging["_continue"] = token
            resp = self._call(_request_timeout=self._request_timeout, **paging)
            try:
                items, rv, token = _parse_list(resp.data)
            finally:
                self._resp = None
                resp.release_conn()
            for raw in items:
                prepared = self._prepare(raw)
                if prepared is not None:
                    fresh[prepared[0]] = prepared[1]
            del items
            if self._stopping.is_set():
                return  # a partial list must not be diffed: it would "delete" the rest
            if not token:
                break
        with self._lock:
            old, self._items, self._rv = self._items, fresh, rv
        self.relists += 1
        if self._resync_period:
            self._next_resync = time.monotonic() + self._resync_period
        log.info(
            "informer listed informer=%s items=%d rv=%s first=%s",
            self.name,
            len(fresh),
            rv,
            not self._synced.is_set(),
        )
        self._emit_diff(old, fresh)
        # Synced only after the handlers have seen the first list, so a service that
        # builds state in its handlers is complete when it reports ready.
        self._synced.set()

    def _emit_diff(self, old: dict[str, Obj], fresh: dict[str, Obj]) -> None:
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._notify(self._handlers.add, obj)
            elif resource_version_of(before) != resource_version_of(obj):
                self._notify(self._handlers.update, before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._notify(self._handlers.delete, obj)

    def _watch_seconds(self) -> int:
        seconds = self._watch_timeout * (1 + random.random())  # noqa: S311 - spread re-watches
        if self._resync_period:
            seconds = min(seconds, self._next_resync - time.monotonic())
        return max(1, int(seconds))

    def _watch(self) -> bool:
        """One watch request; returns whether it made progress. Raises on failure."""
        seconds = self._watch_seconds()
        started, events = time.monotonic(), 0
        resp = self._call(
            watch=True,
            resource_version=self._rv,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            _request_timeout=(_CONNECT_TIMEOUT, seconds + 30),
        )
        try:
            for line in _lines(resp):
                if self._stopping.is_set():
                    break
                self._handle_line(line)
                self._events_seen += 1
                events += 1
                if time.monotonic() >= self._next_resync:
                    break  # bookmarks keep lines coming, so a resync is never late for long
        finally:
            self._resp = None
            resp.close()
            resp.release_conn()
        return events > 0 or time.monotonic() - started >= _PROGRESS_SECONDS

    # --- events -------------------------------------------------------------------------

    def _handle_line(self, line: bytes) -> None:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning(
                "informer skipped a malformed watch line informer=%s line=%.200r", self.name, line
            )
            return
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict) or not isinstance(kind, str):
            log.warning("informer skipped a watch event without type/object informer=%s", self.name)
            return
        if kind == "ERROR":
            if obj.get("code") == GONE:
                raise WatchExpiredError(obj.get("message", "resource version expired"))
            raise WatchFailedError(
                f"watch error code={obj.get('code')} "
                f"reason={obj.get('reason')} message={obj.get('message')}"
            )
        if kind == "BOOKMARK":
            self._advance(resource_version_of(obj))
        elif kind in ("ADDED", "MODIFIED"):
            self._upsert(obj)
        elif kind == "DELETED":
            self._delete(obj)
        else:
            log.warning(
                "informer skipped an unknown event type informer=%s type=%s", self.name, kind
            )

    def _advance(self, rv: str) -> None:
        if rv:
            with self._lock:
                self._rv = rv

    def _prepare(self, raw: Any) -> tuple[str, Obj] | None:
        """(key, transformed object), or None (logged) if the object is unusable."""
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("metadata"), dict)
            or not raw["metadata"].get("name")
        ):
            log.warning("informer skipped an object without metadata.name informer=%s", self.name)
            return None
        try:
            obj = self._transform(raw) if self._transform else raw
        except Exception:
            log.exception(
                "informer transform failed informer=%s key=%s", self.name, object_key(raw)
            )
            return None
        return object_key(raw), obj

    def _upsert(self, raw: Obj) -> None:
        prepared = self._prepare(raw)
        rv = resource_version_of(raw)
        if prepared is None:
            self._advance(rv)
            return
        key, obj = prepared
        with self._lock:
            before = self._items.get(key)
            self._items[key] = obj
            self._rv = rv or self._rv
        if before is None:
            self._notify(self._handlers.add, obj)
        else:
            self._notify(self._handlers.update, before, obj)

    def _delete(self, raw: Obj) -> None:
        key, rv = object_key(raw), resource_version_of(raw)
        with self._lock:
            before = self._items.pop(key, None)
            self._rv = rv or self._rv
        if before is None:
            log.debug(
                "informer got DELETED for an unknown object informer=%s key=%s", self.name, key
            )
            return
        prepared = self._prepare(raw)
        self._notify(self._handlers.delete, prepared[1] if prepared else before)

    def _notify(self, handlers: Handlers, *args: Obj) -> None:
        for handler in handlers:
            try:
                handler(*args)
            except Exception:
                log.exception(
                    "informer handler failed informer=%s handler=%s key=%s",
                    self.name,
                    getattr(handler, "__name__", handler),
                    object_key(args[-1]),
                )


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return f"{type(exc).__name__} status={status} reason={getattr(exc, 'reason', '')}"
    return f"{type(exc).__name__}: {exc}"
