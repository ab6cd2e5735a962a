"""The extender's Flask app factory.

``create_app()`` with no arguments reads settings from the environment and
connects to the cluster (what gunicorn calls: ``extender.app:create_app()``,
one worker process with threads, since the cache and the reservations live in
memory). Tests pass the state and collaborators in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

from extender.binder import Binder
from extender.cache import connect, load_facts
from extender.decide import Weights
from extender.metrics import create_metrics
from extender.routes import ExtenderContext, Hints, PodMemo, bp, hot_paths, register_errors
from extender.settings import ExtenderSettings, load_settings
from extender.state import ClusterState
from spotpack.capacity import scheme_named
from spotpack.logs import configure_logging

SWITCH_INTERVAL = 0.0005
"""Seconds a thread holds the GIL before another may take it (CPython default 0.005)."""


def build_state(settings: ExtenderSettings) -> ClusterState:
    scheme = scheme_named(
        settings.label_scheme, key=settings.capacity_label, spot_value=settings.spot_value
    )
    return ClusterState(
        scheme, load_facts(settings), reservation_ttl=settings.reservation_ttl_seconds
    )


def create_app(
    settings: ExtenderSettings | None = None,
    *,
    state: ClusterState | None = None,
    binder: Binder | None = None,
    fetch_pod: Callable[[str, str], Mapping[str, Any] | None] | None = None,
    ready: Callable[[], bool] | None = None,
) -> Flask:
    """Build the app; without injected collaborators it watches the configured cluster."""
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    # gunicorn's gthread worker hands each request from its event-loop thread to a
    # pool thread; with CPython's default 5 ms GIL switch interval that hand-off
    # alone can cost milliseconds, on every pod's scheduling path.
    sys.setswitchinterval(SWITCH_INTERVAL)
    state = state or build_state(settings)
    app = Flask("spotpack-extender")
    if binder is None:
        wiring = connect(settings, state)
        binder, fetch_pod, ready = wiring.binder, wiring.fetch_pod, wiring.ready
        app.extensions["spotpack.stop"] = wiring.stop
    ctx = ExtenderContext(
        state=state,
        binder=binder,
        fetch_pod=fetch_pod or (lambda _ns, _name: None),
        weights=Weights(settings.weight_gpu, settings.weight_risk, settings.weight_price),
        metrics=create_metrics(state.counts, lambda: state.drift),
        max_body_bytes=settings.max_body_bytes,
        ready=ready or (lambda: True),
        memo=PodMemo(),
        hints=Hints(),
    )
    app.extensions["spotpack"] = ctx
    app.register_blueprint(bp)
    register_errors(app)
    app.wsgi_app = hot_paths(app.wsgi_app, ctx)  # type: ignore[method-assign]
    return app
