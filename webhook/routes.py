"""HTTP handlers: parse -> decide -> build response. Nothing else happens here.

Every answer is JSON and no answer is a 5xx: a body that is not an
AdmissionReview gets a 400 that says what is wrong, a body over the cap a 413,
and a pod we cannot process an ``allowed`` review with a warning, so a bug of
ours never blocks a pod and never shows a traceback.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from spotpack.errors import InvalidInput
from webhook.mutate import Decision, MutationConfig, Outcome, mutate_pod
from webhook.namespaces import NamespaceDefaults
from webhook.schema import AdmissionRequest, BadReview, build_response, parse_review

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)
UNPROCESSED_WARNING = "spotpack could not process this pod; it was admitted unchanged"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _error(status: int, reason: str, message: str) -> Response:
    current_app.extensions["spotpack.metrics"].rejected_bodies.labels(reason).inc()
    return _json({"error": reason, "message": message}, status)


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


@bp.post("/mutate")
def mutate() -> Response:
    started = time.perf_counter()
    metrics = current_app.extensions["spotpack.metrics"]
    try:
        review = parse_review(request.get_data(cache=False))
    except BadReview as exc:
        return _error(400, "BadRequest", str(exc))
    req = review.request
    try:
        decision = review_request(
            req,
            current_app.extensions["spotpack.namespaces"],
            current_app.extensions["spotpack.config"],
        )
    except InvalidInput as exc:
        decision = Decision(Outcome.DENIED, message=str(exc))
    except Exception:
        log.exception("admission failed", extra={"uid": req.uid, "namespace": req.namespace})
        decision = Decision(Outcome.UNCHANGED, warnings=(UNPROCESSED_WARNING,))
    body = _respond(req, decision)
    metrics.admissions.labels(decision.outcome.value, decision.role).inc()
    metrics.latency.observe(time.perf_counter() - started)
    return _json(body)


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


@bp.get("/healthz")
def healthz() -> Response:
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    namespaces: NamespaceDefaults = current_app.extensions["spotpack.namespaces"]
    if namespaces.ready():
        return _json({"status": "ready"})
    return _json({"status": "waiting for the namespace cache"}, 503)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    registry = current_app.extensions["spotpack.metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def register_errors(app: Flask) -> None:
    """JSON for every HTTP error (404, 405, 413 ...) and for anything unexpected."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = exc.code or 400
        reason = exc.name.replace(" ", "")
        message = exc.description or exc.name
        if code == 413:
            message = f"body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes"
        return _error(code, reason, message)
