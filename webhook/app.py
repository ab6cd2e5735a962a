"""The webhook's Flask app factory.

``create_app()`` with no arguments reads settings from the environment (this is
what gunicorn calls: ``webhook.app:create_app()``); tests pass settings and
collaborators in. No module-level state: everything the handlers use hangs off
``app.extensions``.
"""

from __future__ import annotations

import logging

from flask import Flask

from spotpack.catalog.load import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.errors import ClusterUnavailable
from spotpack.logs import configure_logging
from webhook.metrics import create_metrics
from webhook.namespaces import NamespaceDefaults, StaticNamespaces
from webhook.routes import WebhookContext, bp, hot_paths, register_errors
from webhook.settings import WebhookSettings, load_settings

log = logging.getLogger(__name__)


def create_app(
    settings: WebhookSettings | None = None,
    namespaces: NamespaceDefaults | None = None,
) -> Flask:
    """Build the app; ``namespaces`` defaults to the cluster's, or to none without a cluster."""
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = Flask("spotpack-webhook")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    ctx = WebhookContext(
        config=settings.mutation_config(
            gpu_models=gpu_models(load_catalog(override=settings.catalog_file))
        ),
        namespaces=namespaces or _cluster_namespaces(settings),
        metrics=create_metrics(),
        max_body_bytes=settings.max_body_bytes,
    )
    app.extensions["spotpack"] = ctx
    app.extensions["spotpack.settings"] = settings
    app.register_blueprint(bp)
    register_errors(app)
    app.wsgi_app = hot_paths(app.wsgi_app, ctx)  # type: ignore[method-assign]
    return app


def gpu_models(catalog: Catalog) -> tuple[str, ...]:
    """The catalog's GPU model names, sorted: computed once per app, not per request."""
    return tuple(sorted({t.gpu.model for t in catalog.all() if t.gpu is not None}))


def _cluster_namespaces(settings: WebhookSettings) -> NamespaceDefaults:
    """Namespace defaults from the cluster; global defaults when none is reachable."""
    if not settings.namespace_defaults:
        return StaticNamespaces()
    from webhook.namespaces import watch_namespaces

    try:
        return watch_namespaces(settings.kubeconfig, settings.ready_timeout_seconds)
    except ClusterUnavailable as exc:
        log.warning(
            "no cluster reachable; namespace defaults are off and global defaults apply",
            extra={"reason": str(exc)},
        )
        return StaticNamespaces()
