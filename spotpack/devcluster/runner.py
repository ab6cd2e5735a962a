"""Run the dev cluster on loopback in a background thread, and hand out a kubeconfig.

Tests start one per test (or per module), ``make run`` one per process. It must
start in milliseconds and stop just as fast, so :meth:`DevCluster.stop` first
ends every watch stream (they would otherwise hold their threads for up to
``timeoutSeconds``), then stops the accept loop, then cuts any connection
still open.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from spotpack.devcluster.server import ApiServer
from spotpack.devcluster.store import Store
from spotpack.errors import ConfigError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_POLL_INTERVAL = 0.05  # how quickly the accept loop notices shutdown()


class _Connections:
    """Sockets of requests in flight, so stop() can cut the ones that linger."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def cut_all(self) -> int:
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(socks)


def _handler_class(connections: _Connections) -> type[WSGIRequestHandler]:
    class Handler(WSGIRequestHandler):
        """werkzeug's handler, tracked, with its per-request log line sent to debug.

        HTTP/1.1 keeps connections alive between requests, as kube-apiserver
        does: clients with a connection pool (the kubernetes client, the
        extender's binder) then pay no TCP handshake per request.
        """

        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                connections.discard(self.connection)

        def log(self, type: str, message: str, *args: Any) -> None:
            log.debug("devcluster http %s " + message, type, *args)

    return Handler


class _Server(ThreadedWSGIServer):
    """Threaded werkzeug server whose per-connection errors are logged, not printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("devcluster connection error client=%s", client_address, exc_info=True)


class DevCluster:
    """An in-memory Kubernetes API server on ``127.0.0.1`` with an ephemeral port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The
    :attr:`store` holds the state and the fault hooks; :attr:`url` is what a
    client connects to.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 5.0,
        seed: Iterable[Obj] = (),
        seed_files: Iterable[str | Path] = (),
    ) -> None:
        self.store = store if store is not None else Store()
        self.host = host
        self.port = port
        self.app = ApiServer(self.store, bookmark_interval=bookmark_interval)
        self._seed = list(seed)
        self._seed_files = list(seed_files)
        self._connections = _Connections()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the dev cluster is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Seed, bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        if self._seed:
            self.store.seed(self._seed)
        if self._seed_files:
            self.store.load_yaml(*self._seed_files)
        try:
            server = _Server(
                self.host, self.port, self.app, handler=_handler_class(self._connections)
            )
        except SystemExit as exc:  # werkzeug exits on bind errors; make it ours
            raise ConfigError(f"dev cluster cannot listen on {self.host}:{self.port}") from exc
        self._server = server
        self.port = server.port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"devcluster-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("devcluster started url=%s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End watches, stop accepting, cut lingering connections; idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.app.stop()
        server.shutdown()
        if thread is not None:
            thread.join(timeout)
        self._connections.cut_all()
        server.server_close()
        self._server = None
        self._thread = None
        log.info("devcluster stopped port=%s", self.port)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def kubeconfig(self, *, namespace: str = "default") -> Obj:
        """A kubeconfig for this server: plain http, no credentials."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "devcluster", "cluster": {"server": self.url}}],
            "users": [{"name": "devcluster", "user": {}}],
            "contexts": [
                {
                    "name": "devcluster",
                    "context": {
                        "cluster": "devcluster",
                        "user": "devcluster",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "devcluster",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write :meth:`kubeconfig` to ``path`` (parents created); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            yaml.safe_dump(self.kubeconfig(namespace=namespace), sort_keys=False), encoding="utf-8"
        )
        return target
