"""gunicorn's ``gthread`` worker, with a thread staying on a busy keep-alive connection.

Why: kube-scheduler and kube-apiserver each talk to us over a few keep-alive
connections, one request after another, and wait for every answer. Stock
``gthread`` hands every request across threads four times (event loop ->
pool thread -> done callback through a pipe -> event loop re-registers the
socket), which on a small VM costs more than our decision itself: ~230 us of
a ~110 us request (loopback, one connection, empty app; measured with wrk).

Here the pool thread that served a request waits on the same connection for
the next one, up to :data:`LINGER` seconds, and serves it directly; only an
idle connection goes back to the event loop. So that pinned connections
leave room for new ones, at most ``threads - 1`` threads linger at a time
(a trickling client loses its connection after
:data:`spotpack.fastpath.REQUEST_DEADLINE`); the others behave exactly like
``gthread``, including its untimed reads. Shutdown is delayed by at most
``LINGER``: a lingering thread stops after its current request once the
worker stops being ``alive``. Connections also get ``TCP_NODELAY`` (gunicorn
sends headers and body separately; Nagle would hold the body back): -25% at
the median for a 12 KB answer.

On a lingering connection, plain requests to the app's hot JSON endpoints
skip gunicorn's request machinery (:mod:`spotpack.fastpath`); everything else
is served by ``gthread`` as before.

Use it as gunicorn's ``worker_class``
``"spotpack.stickythread.StickyThreadWorker"`` (what
:func:`spotpack.serving.gunicorn_options` sets for ``worker_class="sticky"``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from spotpack.fastpath import readable, serve_plain
from spotpack.http1 import MAX_FIELD_SIZE
from spotpack.wsgi import JSONEndpoints

LINGER = 0.5
"""Seconds a thread waits on its connection for the next request before handing it back."""


def _no_delay(sock: socket.socket) -> None:
    """Send small writes at once: gunicorn writes a response's headers and body in two
    sends, and Nagle's algorithm would hold the body until the headers are acknowledged."""
    with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _buffered(conn: Any) -> bool:
    """Whether the next request's bytes are already read (parser buffer or TLS record)."""
    if conn.parser is not None and conn.parser.unreader.buf.getvalue():
        return True
    pending = getattr(conn.sock, "pending", None)
    return bool(pending is not None and pending())


def _readable(conn: Any, timeout: float) -> bool:
    """Wait until the connection has bytes to read (or was closed), at most ``timeout``."""
    return readable(conn.sock, timeout)


class StickyThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``gthread`` where a pool thread keeps serving its keep-alive connection while it is busy."""

    alive: bool
    nr: int
    max_requests: int

    def init_process(self) -> None:
        self._linger_lock = threading.Lock()
        self._lingering = 0
        super().init_process()

    def _may_linger(self) -> bool:
        with self._linger_lock:
            if self._lingering >= self.cfg.threads - 1:
                return False
            self._lingering += 1
            return True

    def _done_lingering(self) -> None:
        with self._linger_lock:
            self._lingering -= 1

    def _endpoints(self) -> JSONEndpoints | None:
        """The app's hot JSON endpoints, when it has them and access logs are off (the
        fast path writes no access line)."""
        app = getattr(self.wsgi, "wsgi_app", self.wsgi)
        if isinstance(app, JSONEndpoints) and not self.cfg.accesslog:
            return app
        return None

    def handle(self, conn: Any) -> Any:
        """Serve one request as ``gthread`` does, then the next ones on this connection.

        The next ones go through :func:`spotpack.fastpath.serve_plain` when they
        are plain requests to the app's hot endpoints, else through ``gthread``.
        Returns what ``gthread``'s ``handle`` returns for the last request
        served: True hands a kept-alive connection back to the event loop,
        anything else closes or defers it as usual.
        """
        if not conn.initialized:
            _no_delay(conn.sock)
        keep = super().handle(conn)
        if keep is not True or not self._may_linger():
            return keep
        endpoints = self._endpoints()
        try:
            while keep is True and self.alive:
                if not _buffered(conn) and not _readable(conn, LINGER):
                    break
                keep = self._next(conn, endpoints)
        finally:
            self._done_lingering()
        return keep

    def _limits(self) -> tuple[int, int]:
        """(limit_request_fields, limit_request_field_size) as gunicorn's parser applies them."""
        fields = self.cfg.limit_request_fields
        size = self.cfg.limit_request_field_size
        return (fields if 0 < fields <= 32768 else 32768, size if size > 0 else MAX_FIELD_SIZE)

    def _next(self, conn: Any, endpoints: JSONEndpoints | None) -> Any:
        """Serve the connection's next request: the fast path when it takes it (counted
        toward ``max_requests`` as gunicorn counts), else ``gthread``'s ``handle``."""
        if endpoints is not None:
            # gunicorn's max_requests: the answer that reaches it says "Connection: close"
            last = self.nr + 1 >= self.max_requests
            try:
                served = serve_plain(
                    conn, endpoints, keep_open=self.alive and not last, limits=self._limits()
                )
            except OSError:  # reset or broken pipe: the connection is gone
                return False
            if served is not None:
                self.nr += 1
                if self.nr >= self.max_requests:
                    self.alive = False  # recycle the worker
                return served
        return super().handle(conn)
