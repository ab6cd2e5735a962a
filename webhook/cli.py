"""``spotpack webhook``: validate the settings, then serve the app with gunicorn over TLS.

Flags override ``SPOTPACK_WEBHOOK_*`` variables. They are written back into the
environment before gunicorn starts, because each worker builds its own app with
``create_app()`` from the environment: one source of truth for master and workers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from spotpack.logs import configure_logging
from spotpack.serving import ServeSettings, serve
from spotpack.settings import export_flags
from webhook.settings import WebhookSettings, load_settings

log = logging.getLogger(__name__)
APP_URI = "webhook.app:create_app()"
FLAGS = {
    "host": "HOST",
    "port": "PORT",
    "cert_file": "CERT_FILE",
    "key_file": "KEY_FILE",
    "workers": "WORKERS",
    "threads": "THREADS",
    "kubeconfig": "KUBECONFIG",
    "label_scheme": "LABEL_SCHEME",
    "log_format": "LOG_FORMAT",
}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "webhook",
        help="serve the mutating admission webhook",
        description="Serve POST /mutate, /healthz, /readyz and /metrics over TLS with gunicorn.",
    )
    parser.add_argument("--host", help="address to bind (SPOTPACK_WEBHOOK_HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (SPOTPACK_WEBHOOK_PORT, default 8443)")
    parser.add_argument("--cert-file", help="serving certificate (default certs/out/tls.crt)")
    parser.add_argument("--key-file", help="serving key (default certs/out/tls.key)")
    parser.add_argument(
        "--plain-http", action="store_true", help="serve without TLS (local use only)"
    )
    parser.add_argument("--workers", type=int, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, help="threads per worker")
    parser.add_argument(
        "--kubeconfig", help="kubeconfig for namespace defaults (else in-cluster, KUBECONFIG)"
    )
    parser.add_argument("--label-scheme", choices=["karpenter", "eks", "gke", "aks"])
    parser.add_argument("--log-format", choices=["json", "text"])
    return parser


def serve_settings(settings: WebhookSettings) -> ServeSettings:
    """gunicorn settings for the webhook: keep-alive for the API server's connection reuse."""
    tls = bool(settings.cert_file) and bool(settings.key_file)
    return ServeSettings(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        threads=settings.threads,
        certfile=Path(settings.cert_file) if tls and settings.cert_file else None,
        keyfile=Path(settings.key_file) if tls and settings.key_file else None,
        keepalive=75,
        proc_name="spotpack-webhook",
        env_prefix="SPOTPACK_WEBHOOK_",
        shared_metrics=settings.workers > 1,
    )


def run(args: argparse.Namespace) -> int:
    export_flags(args, FLAGS, "SPOTPACK_WEBHOOK_")
    settings = load_settings()
    settings.mutation_config()
    configure_logging(settings.log_format, settings.log_level)
    serve(APP_URI, serve_settings(settings))
    return 0
