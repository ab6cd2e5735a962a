"""``spotpack extender``: validate the settings, then serve the extender with gunicorn.

One worker process with threads (``-w 1 -k gthread``): the node/pod cache and
the card reservations live in that process's memory, so two workers would
each reserve the same cards. Flags override ``SPOTPACK_EXTENDER_*`` variables
and are written back into the environment for the worker's ``create_app()``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from extender.settings import ExtenderSettings, load_settings
from spotpack.errors import ClusterUnavailable, ConfigError
from spotpack.logs import configure_logging
from spotpack.serving import ServeSettings, serve
from spotpack.settings import export_flags

APP_URI = "extender.app:create_app()"
FLAGS = {
    "host": "HOST",
    "port": "PORT",
    "cert_file": "CERT_FILE",
    "key_file": "KEY_FILE",
    "threads": "THREADS",
    "kubeconfig": "KUBECONFIG",
    "label_scheme": "LABEL_SCHEME",
    "local_seed": "LOCAL_SEED",
    "log_format": "LOG_FORMAT",
}


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "extender",
        help="serve the kube-scheduler extender",
        description="Serve POST /filter, /prioritize, /bind; GET /healthz, /readyz, /inspect.",
    )
    parser.add_argument("--host", help="address to bind (SPOTPACK_EXTENDER_HOST, default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (SPOTPACK_EXTENDER_PORT, default 8444)")
    parser.add_argument("--cert-file", help="serving certificate (default certs/out/tls.crt)")
    parser.add_argument("--key-file", help="serving key (default certs/out/tls.key)")
    parser.add_argument(
        "--plain-http", action="store_true", help="no TLS (sidecar of the scheduler)"
    )
    parser.add_argument("--threads", type=int, help="request threads")
    parser.add_argument("--kubeconfig", help="kubeconfig (else in-cluster config, else KUBECONFIG)")
    parser.add_argument(
        "--local", action="store_true", help="serve from an embedded in-memory cluster"
    )
    parser.add_argument("--local-seed", help="directory of YAML objects for the embedded cluster")
    parser.add_argument("--label-scheme", choices=["karpenter", "eks", "gke", "aks"])
    parser.add_argument("--log-format", choices=["json", "text"])
    return parser


def serve_settings(settings: ExtenderSettings) -> ServeSettings:
    tls = bool(settings.cert_file) and bool(settings.key_file)
    return ServeSettings(
        host=settings.host,
        port=settings.port,
        workers=1,
        threads=settings.threads,
        certfile=Path(settings.cert_file) if tls and settings.cert_file else None,
        keyfile=Path(settings.key_file) if tls and settings.key_file else None,
        keepalive=75,
        timeout=60,
        proc_name="spotpack-extender",
        env_prefix="SPOTPACK_EXTENDER_",
    )


def run(args: argparse.Namespace) -> int:
    export_flags(args, FLAGS, "SPOTPACK_EXTENDER_")
    if args.local:
        os.environ["SPOTPACK_EXTENDER_LOCAL"] = "true"
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    if not settings.local:
        _check_cluster(settings.kubeconfig)
    serve(APP_URI, serve_settings(settings))
    return 0


def _check_cluster(kubeconfig: str | None) -> None:
    """Fail here, in one line, when no cluster is configured (not in every worker)."""
    from spotpack.kube.config import load_api_client

    try:
        load_api_client(kubeconfig).close()
    except ClusterUnavailable as exc:
        raise ConfigError(
            f"{exc}; set SPOTPACK_EXTENDER_KUBECONFIG, or --local for the embedded cluster"
        ) from exc
