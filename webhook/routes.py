"""HTTP handlers: parse -> decide -> build response. Nothing else happens here.

Every answer is JSON and no answer is a 5xx: a body that is not an
AdmissionReview gets a 400 that says what is wrong, a body over the cap a 413,
and a pod we cannot process an ``allowed`` review with a warning, so a bug of
ours never blocks a pod and never shows a traceback.

``POST /mutate`` is on every pod creation's path, so it is served by the thin
WSGI layer of :mod:`spotpack.wsgi` in front of Flask (see :func:`hot_paths`);
everything else goes through Flask.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException

from spotpack.errors import InvalidInput
from spotpack.wsgi import JSONEndpoints
from webhook.metrics import WebhookMetrics
from webhook.mutate import Decision, MutationConfig, Outcome, mutate_pod
from webhook.namespaces import NamespaceDefaults
from webhook.schema import AdmissionRequest, BadReview, build_response, parse_review

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)
UNPROCESSED_WARNING = "spotpack could not process this pod; it was admitted unchanged"


@dataclass(frozen=True)
class WebhookContext:
    """What the handlers need, built once by the app factory."""

    config: MutationConfig
    namespaces: NamespaceDefaults
    metrics: WebhookMetrics
    max_body_bytes: int


def review_request(
    req: AdmissionRequest, namespaces: NamespaceDefaults, config: MutationConfig
) -> Decision:
    """Decide one admission request: only pod CREATE is ours, everything else passes."""
    if (
        req.kind.kind != "Pod"
        or req.resource.resource != "pods"
        or req.sub_resource
        or req.operation != "CREATE"
        or not isinstance(req.object, dict)
    ):
        return Decision(Outcome.SKIPPED, message="not a pod create")
    return mutate_pod(req.object, req.namespace, namespaces.annotations(req.namespace), config)


def answer(body: bytes, ctx: WebhookContext) -> tuple[int, dict[str, Any]]:
    """One ``POST /mutate``: the HTTP status and the JSON body to send."""
    started = time.perf_counter()
    try:
        review = parse_review(body)
    except BadReview as exc:
        return _rejected(ctx, 400, "BadRequest", str(exc))
    req = review.request
    try:
        decision = review_request(req, ctx.namespaces, ctx.config)
    except InvalidInput as exc:
        decision = Decision(Outcome.DENIED, message=str(exc))
    except Exception:
        log.exception("admission failed", extra={"uid": req.uid, "namespace": req.namespace})
        decision = Decision(Outcome.UNCHANGED, warnings=(UNPROCESSED_WARNING,))
    response = _respond(req, decision)
    ctx.metrics.admissions.labels(decision.outcome.value, decision.role).inc()
    ctx.metrics.latency.observe(time.perf_counter() - started)
    return 200, response


def hot_paths(inner: Any, ctx: WebhookContext) -> JSONEndpoints:
    """``POST /mutate`` served without Flask's per-request machinery."""
    return JSONEndpoints(
        inner,
        {"/mutate": lambda body: answer(body, ctx)},
        ctx.max_body_bytes,
        lambda status, reason, message: _rejected(ctx, status, reason, message),
    )


def _rejected(
    ctx: WebhookContext, status: int, reason: str, message: str
) -> tuple[int, dict[str, Any]]:
    ctx.metrics.rejected_bodies.labels(reason).inc()
    return status, {"error": reason, "message": message}


def _respond(req: AdmissionRequest, decision: Decision) -> dict[str, Any]:
    name = req.name or "(generated name)"
    if not decision.allowed:
        log.info(
            "denied pod",
            extra={"namespace": req.namespace, "pod": name, "reason": decision.message},
        )
        return build_response(
            req.uid,
            allowed=False,
            code=422,
            message=f"spotpack denied pod {req.namespace}/{name}: {decision.message}",
        )
    return build_response(req.uid, patch=list(decision.ops), warnings=decision.warnings)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _context() -> WebhookContext:
    ctx: WebhookContext = current_app.extensions["spotpack"]
    return ctx


@bp.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    if _context().namespaces.ready():
        return _json({"status": "ready"})
    return _json({"status": "waiting for the namespace cache"}, 503)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    return Response(_context().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)


def register_errors(app: Flask) -> None:
    """JSON for every HTTP error Flask raises (404, 405 ...)."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = exc.code or 400
        reason = exc.name.replace(" ", "")
        _context().metrics.rejected_bodies.labels(reason).inc()
        return _json({"error": reason, "message": exc.description or exc.name}, code)
