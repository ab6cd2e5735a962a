"""``python -m spotpack.devcluster``: serve an in-memory cluster until interrupted.

The benchmarks start it this way (``spotpack run`` embeds the same server in
its own process): the services read the kubeconfig it writes and cannot tell
it from a (very small, very fast) real cluster.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from spotpack.devcluster.runner import DevCluster
from spotpack.devcluster.store import Store


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spotpack.devcluster", description="Serve an in-memory Kubernetes API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="YAML",
        help="manifests to load at start (repeatable)",
    )
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server here")
    parser.add_argument(
        "--history", type=int, default=10_000, help="watch history length (older versions get 410)"
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    done = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    cluster = DevCluster(
        Store(history_size=args.history), host=args.host, port=args.port, seed_files=args.seed
    )
    with cluster:
        if args.kubeconfig:
            cluster.write_kubeconfig(args.kubeconfig)
        print(f"devcluster serving {cluster.url}", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
