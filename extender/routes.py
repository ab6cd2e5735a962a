"""HTTP handlers of the extender: parse -> decide -> build response.

``/filter``, ``/prioritize`` and ``/bind`` are served by the thin WSGI layer of
:mod:`spotpack.wsgi` (they sit on every pod's scheduling path); health,
readiness, metrics and ``/inspect`` go through Flask. No answer is a 5xx: a
body that is not extender arguments gets a 400 saying why; a failure of ours
is reported in the result's ``Error`` field, which the scheduler logs and
retries, never as a 500.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from extender.binder import Binder, BindError
from extender.columns import Candidates
from extender.decide import Verdicts, Weights, filter_nodes, prepared_demand, prioritize_scores
from extender.inspect import inspect_state
from extender.metrics import ExtenderMetrics
from extender.schema import (
    BadArgs,
    BindingArgs,
    ExtenderArgs,
    binding_result,
    encode_priorities,
    filter_result,
    parse,
)
from extender.state import Claim, ClusterState
from spotpack.capacity import LabelScheme
from spotpack.errors import InvalidInput, SpotpackError
from spotpack.gpu import GPU_ASSIGNMENT, encode_assignment, hami_annotations, pod_layout
from spotpack.podview import PodView, pod_view
from spotpack.wsgi import JSONEndpoints

log = logging.getLogger(__name__)
bp = Blueprint("extender", __name__)
PodLookup = Callable[[str, str], Mapping[str, Any] | None]


@dataclass
class Seen:
    """A pod as read at filter time, kept for its prioritize and bind calls."""

    view: PodView
    layout: Any


class Hints:
    """What filter passed for the last few pods, for their prioritize calls.

    kube-scheduler calls prioritize right after filter for the same pod, so a
    handful is enough; each holds up to thousands of names, so few are kept.
    """

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[str, Candidates] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, uid: str, candidates: Candidates | None) -> None:
        with self._lock:
            self._items.pop(uid, None)
            if candidates is None:
                return
            self._items[uid] = candidates
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, uid: str) -> Candidates | None:
        with self._lock:
            return self._items.get(uid)


class PodMemo:
    """The last pods the scheduler asked about, by (uid, resourceVersion); bounded."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[tuple[str, str], Seen] = OrderedDict()
        self._by_uid: dict[str, tuple[str, str]] = {}
        self._size = size
        self._lock = threading.Lock()

    def read(self, pod: Mapping[str, Any], scheme: LabelScheme) -> Seen:
        metadata = pod.get("metadata") or {}
        key = (str(metadata.get("uid", "")), str(metadata.get("resourceVersion", "")))
        with self._lock:
            seen = self._items.get(key)
            if seen is not None:
                self._items.move_to_end(key)
                return seen
        seen = Seen(pod_view(pod, scheme), pod_layout(pod))
        with self._lock:
            self._items[key] = seen
            self._by_uid[key[0]] = key
            while len(self._items) > self._size:
                old, _ = self._items.popitem(last=False)
                if self._by_uid.get(old[0]) == old:
                    del self._by_uid[old[0]]
        return seen

    def by_uid(self, uid: str) -> Seen | None:
        with self._lock:
            key = self._by_uid.get(uid)
            return self._items.get(key) if key is not None else None


@dataclass
class ExtenderContext:
    state: ClusterState
    binder: Binder
    fetch_pod: PodLookup
    """Reads a pod from the API when the scheduler binds one we never saw (after a restart)."""
    weights: Weights
    metrics: ExtenderMetrics
    max_body_bytes: int
    ready: Callable[[], bool]
    memo: PodMemo
    hints: Hints


def _bad(ctx: ExtenderContext, verb: str, exc: Exception) -> tuple[int, dict[str, Any]]:
    ctx.metrics.bad_requests.labels(verb).inc()
    return 400, {"Error": str(exc)}


def handle_filter(body: bytes, ctx: ExtenderContext) -> tuple[int, Any]:
    started = time.perf_counter()
    try:
        args = parse(ExtenderArgs, body)
    except BadArgs as exc:
        return _bad(ctx, "filter", exc)
    names = args.names()
    ctx.state.sweep()
    try:
        seen = ctx.memo.read(args.pod, ctx.state.scheme)
        verdicts = filter_nodes(ctx.state, seen.view, names)
        ctx.hints.put(seen.view.uid, verdicts.candidates)
    except InvalidInput as exc:
        verdicts = Verdicts([], {}, dict.fromkeys(names, f"pod cannot be placed: {exc}"))
    except Exception as exc:
        log.exception("filter failed")
        return 200, filter_result(args, [], {}, {}, error=f"extender filter failed: {exc}")
    ctx.metrics.decisions.labels("filter", "passed").inc(len(verdicts.passed))
    ctx.metrics.decisions.labels("filter", "failed").inc(
        len(verdicts.failed) + len(verdicts.unresolvable)
    )
    ctx.metrics.latency.labels("filter").observe(time.perf_counter() - started)
    return 200, filter_result(args, verdicts.passed, verdicts.failed, verdicts.unresolvable)


def handle_prioritize(body: bytes, ctx: ExtenderContext) -> tuple[int, Any]:
    started = time.perf_counter()
    try:
        args = parse(ExtenderArgs, body)
    except BadArgs as exc:
        return _bad(ctx, "prioritize", exc)
    names = args.names()
    try:
        seen = ctx.memo.read(args.pod, ctx.state.scheme)
        hint = ctx.hints.get(seen.view.uid)
        scores, parts = prioritize_scores(ctx.state, seen.view, names, ctx.weights, hint)
    except Exception:  # neutral scores keep the pod schedulable
        log.exception("prioritize failed")
        scores, parts = [0] * len(names), [None] * len(names)
    answer = encode_priorities(names, scores, parts)
    ctx.metrics.latency.labels("prioritize").observe(time.perf_counter() - started)
    return 200, answer


def handle_bind(body: bytes, ctx: ExtenderContext) -> tuple[int, Any]:
    started = time.perf_counter()
    try:
        args = parse(BindingArgs, body)
    except BadArgs as exc:
        return _bad(ctx, "bind", exc)
    try:
        error = _bind(args, ctx)
    except SpotpackError as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("bind failed", extra={"pod": f"{args.pod_namespace}/{args.pod_name}"})
        error = f"extender bind failed: {exc}"
    ctx.metrics.decisions.labels("bind", "error" if error else "bound").inc()
    ctx.metrics.latency.labels("bind").observe(time.perf_counter() - started)
    if error:
        log.info(
            "bind refused",
            extra={
                "pod": f"{args.pod_namespace}/{args.pod_name}",
                "node": args.node,
                "reason": error,
            },
        )
    return 200, binding_result(error)


def _seen_for_bind(args: BindingArgs, ctx: ExtenderContext) -> Seen:
    seen = ctx.memo.by_uid(args.pod_uid)
    if seen is not None:
        return seen
    pod = ctx.fetch_pod(args.pod_namespace, args.pod_name)
    if pod is None:
        raise BindError(f"pod {args.pod_namespace}/{args.pod_name} no longer exists")
    uid = (pod.get("metadata") or {}).get("uid")
    if uid != args.pod_uid:
        raise BindError(
            f"pod {args.pod_namespace}/{args.pod_name} was recreated "
            f"(uid {uid}, expected {args.pod_uid})"
        )
    return ctx.memo.read(pod, ctx.state.scheme)


def _bind(args: BindingArgs, ctx: ExtenderContext) -> str:
    """Reserve the cards (GPU pods), then send the one Binding. Returns an error or ''."""
    seen = _seen_for_bind(args, ctx)
    annotations: dict[str, str] = {}
    if seen.view.demand.is_gpu_pod:
        claim = Claim(
            args.pod_uid, seen.view.key, seen.view.demand, prepared_demand(seen.view), seen.layout
        )
        held = ctx.state.reserve(claim, args.node)
        if isinstance(held, str):
            return f"pod no longer fits on node {args.node}: {held}"
        annotations = {
            GPU_ASSIGNMENT: encode_assignment(held),
            **hami_annotations(held, time.time()),
        }
    try:
        ctx.binder.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node, annotations)
    except SpotpackError:
        ctx.state.release(args.pod_uid)
        raise
    return ""


def hot_paths(inner: Any, ctx: ExtenderContext) -> JSONEndpoints:
    """The three verbs, served without Flask's per-request machinery."""

    def rejected(status: int, reason: str, message: str) -> tuple[int, Any]:
        ctx.metrics.bad_requests.labels(reason).inc()
        return status, {"Error": f"{reason}: {message}"}

    return JSONEndpoints(
        inner,
        {
            "/filter": lambda body: handle_filter(body, ctx),
            "/prioritize": lambda body: handle_prioritize(body, ctx),
            "/bind": lambda body: handle_bind(body, ctx),
        },
        ctx.max_body_bytes,
        rejected,
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _context() -> ExtenderContext:
    ctx: ExtenderContext = current_app.extensions["spotpack"]
    return ctx


@bp.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    if _context().ready():
        return _json({"status": "ready"})
    return _json({"status": "waiting for the node and pod caches to sync"}, 503)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    return Response(generate_latest(_context().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/inspect")
def inspect_endpoint() -> Response:
    node = request.args.get("node")
    return _json(inspect_state(_context().state, node))


def register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _json({"Error": exc.description or exc.name}, exc.code or 400)
