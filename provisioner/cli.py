"""``spotpack provisioner``: validate the settings, run the loop, stop cleanly on SIGTERM.

Flags override ``SPOTPACK_PROVISIONER_*`` variables. SIGTERM and SIGINT stop
the loop first (no new launch or removal starts), then release the lease so
another replica takes over at once, then exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from provisioner.app import build_service
from provisioner.settings import load_settings
from spotpack.logs import configure_logging

log = logging.getLogger(__name__)

FLAGS = (
    "cloud",
    "kubeconfig",
    "region",
    "cluster_name",
    "sqs_queue_url",
    "aws_endpoint_url",
    "catalog_file",
    "host",
    "port",
    "log_format",
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "provisioner",
        help="run the node provisioner",
        description=(
            "Watch unschedulable pods, launch the cheapest safe nodes for them, remove empty "
            "nodes, handle spot interruptions. Serves /healthz, /readyz, /metrics, /claims."
        ),
    )
    parser.add_argument(
        "--local", action="store_true", help="embedded in-memory cluster and the local cloud"
    )
    parser.add_argument("--cloud", choices=["aws", "local"], help="where nodes come from")
    parser.add_argument("--kubeconfig", help="kubeconfig (else in-cluster config, else KUBECONFIG)")
    parser.add_argument("--region", help="cloud region (default us-east-1)")
    parser.add_argument("--cluster-name", help="tags and finds our instances")
    parser.add_argument("--sqs-queue-url", help="interruption notices (EventBridge -> SQS)")
    parser.add_argument("--aws-endpoint-url", help="another EC2/SQS endpoint (moto, a proxy)")
    parser.add_argument("--catalog-file", help="catalog override file")
    parser.add_argument("--host", help="address of the HTTP endpoints (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port of the HTTP endpoints (default 8080)")
    parser.add_argument("--log-format", choices=["json", "text"])
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="act without a lease (one replica only)",
    )
    return parser


def overrides(args: argparse.Namespace) -> dict[str, object]:
    found: dict[str, object] = {
        name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None
    }
    if args.local:
        found["local"] = True
    if args.no_leader_election:
        found["leader_election"] = False
    return found


def run(args: argparse.Namespace) -> int:
    settings = load_settings(**overrides(args))
    configure_logging(settings.log_format, settings.log_level)
    service = build_service(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
