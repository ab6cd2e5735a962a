"""``POST /local/interruptions``: spot interruptions on request, for the local cloud only.

The local cloud has no machines, so nothing ever warns that one will go away.
Simulations and demos need that warning to exercise the interruption path
(taint, replace at once, drain through the Eviction API, delete), so with
``cloud=local`` the provisioner's HTTP app accepts::

    POST /local/interruptions
    {"node": "local-c-abc", "kind": "spot-interruption", "window_seconds": 2.0}

and hands the loop an :class:`~spotpack.cloud.base.InterruptionNotice` through
:meth:`~provisioner.loop.Controller.submit`, exactly as the SQS pump does, so
everything after the notice is the production path. ``kind`` defaults to a spot
warning; ``window_seconds`` (default: the loop's notice window) sets its
deadline, which compressed-time simulations make short. The route is never
registered for a real cloud: there, a request like this would destroy capacity.

Answers: 202 with the notice queued; 400 for a body that is not such a request;
413 for a body over :data:`MAX_BODY_BYTES`; 404 for a node the provisioner's
cache does not hold; 409 for a node without an instance id (not launched by a
cloud); 503 when this replica is not the leader (a follower's loop drops
notices, so it must not accept them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from provisioner.views import instance_id_of
from spotpack.cloud.base import InterruptionNotice, NoticeKind
from spotpack.cloud.local import INSTANCE_ID_ANNOTATION

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
PATH = "/local/interruptions"

Obj = dict[str, Any]


class InterruptionRequest(BaseModel):
    """The request body; unknown keys are refused (a typo would silently change the kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str = Field(min_length=1, max_length=253)
    kind: NoticeKind = "spot-interruption"
    window_seconds: float | None = Field(default=None, gt=0, le=3600)


def instance_of(node: Mapping[str, Any]) -> str:
    """The node's instance id: from its providerID, else our annotation; "" when neither."""
    spec = node.get("spec") if isinstance(node.get("spec"), Mapping) else {}
    from_provider = instance_id_of(str(spec.get("providerID") or "")) if spec else ""
    if from_provider:
        return from_provider
    meta = node.get("metadata") if isinstance(node.get("metadata"), Mapping) else {}
    annotations = meta.get("annotations") if meta else None
    if isinstance(annotations, Mapping):
        return str(annotations.get(INSTANCE_ID_ANNOTATION) or "")
    return ""


def build_notice(
    req: InterruptionRequest, instance_id: str, *, now: datetime, window: float
) -> InterruptionNotice:
    """The notice the cloud would have sent, decided purely.

    ============================  =========================================
    kind                          deadline
    ============================  =========================================
    spot-interruption,            ``now + window`` (the request's window, else
    scheduled-change              the loop's notice window)
    rebalance                     none: advice, the instance is not going
    state-change                  ``now``: the instance is stopping already
    ============================  =========================================
    """
    seconds = req.window_seconds if req.window_seconds is not None else window
    deadline: datetime | None
    if req.kind == "rebalance":
        deadline = None
    elif req.kind == "state-change":
        deadline = now
    else:
        deadline = now + timedelta(seconds=seconds)
    receipt = f"local-{uuid.uuid4().hex}"
    return InterruptionNotice(
        kind=req.kind,
        instance_id=instance_id,
        time=now,
        deadline=deadline,
        receipt=receipt,
        detail="stopping" if req.kind == "state-change" else "local",
        event_id=receipt,
    )


def add_local_routes(
    app: Flask,
    *,
    nodes: Callable[[], list[Obj]],
    submit: Callable[[list[InterruptionNotice]], None],
    acting: Callable[[], bool],
    window: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Register ``POST /local/interruptions`` on ``app`` (call only for the local cloud)."""

    @app.post(PATH)
    def local_interruption() -> tuple[Response, int]:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _error(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            req = InterruptionRequest.model_validate_json(request.get_data(cache=False))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, f"{where}: {first['msg']}")
        if not acting():
            return _error(503, "not the leader: send notices to the leading replica")
        node = next((n for n in nodes() if _name(n) == req.node), None)
        if node is None:
            return _error(404, f"node {req.node!r} is not in the provisioner's cache")
        instance_id = instance_of(node)
        if not instance_id:
            return _error(409, f"node {req.node!r} has no instance id (not launched by a cloud)")
        notice = build_notice(req, instance_id, now=clock(), window=window)
        submit([notice])
        log.info(
            "local interruption notice",
            extra={"node": req.node, "instance": instance_id, "kind": req.kind},
        )
        body = {
            "node": req.node,
            "instance": instance_id,
            "kind": req.kind,
            "deadline": notice.deadline.isoformat() if notice.deadline else None,
        }
        return jsonify(body), 202


def _name(node: Mapping[str, Any]) -> str:
    meta = node.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


__all__ = ["PATH", "InterruptionRequest", "add_local_routes", "build_notice", "instance_of"]
