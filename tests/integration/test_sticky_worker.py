"""The connection-affine ``gthread`` worker (:mod:`spotpack.stickythread`), served for real.

The servers are the ones of ``test_serving_tls.py`` (gunicorn through
``spotpack.serving.serve``); these tests check what the lingering thread must
not break: pipelined requests already buffered, more busy connections than
threads, a prompt exit while a thread lingers, and both worker classes.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spotpack.serving import WORKER_CLASSES, ServeSettings, gunicorn_options
from spotpack.stickythread import LINGER
from tests.integration.test_serving_tls import (  # noqa: F401 - fixtures
    IO_TIMEOUT,
    Server,
    get,
    out,
    start,
    verified_context,
)

pytestmark = pytest.mark.integration


def test_sticky_is_the_default_worker_class() -> None:
    options = gunicorn_options(ServeSettings())
    assert options["worker_class"] == WORKER_CLASSES["sticky"]
    assert gunicorn_options(ServeSettings(worker_class="gthread"))["worker_class"] == "gthread"


def _pipelined(port: int, count: int) -> list[bytes]:
    """Send ``count`` requests in one write, then read the answers in order."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(request * count)
        reader = sock.makefile("rb")
        bodies = []
        for _ in range(count):
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            bodies.append(reader.read(length))
        return bodies


@pytest.mark.parametrize("worker_class", ["sticky", "gthread"])
def test_pipelined_requests_on_one_connection_are_all_answered(
    start: Callable[..., Server],  # noqa: F811
    worker_class: str,
) -> None:
    server = start(None, worker_class=worker_class, threads=4)
    bodies = _pipelined(server.port, 5)
    assert len(bodies) == 5 and all(b'"scheme":"http"' in b.replace(b" ", b"") for b in bodies)


def test_more_busy_connections_than_threads_are_all_served(
    start: Callable[..., Server],  # noqa: F811
) -> None:
    """Two threads, six connections each sending requests back to back: one thread may
    linger, the other keeps turning over the rest, so every request is answered."""
    server = start(None, threads=2)
    served: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=IO_TIMEOUT)
        try:
            for _ in range(20):
                get(conn)
                with lock:
                    served.append(1)
        except BaseException as exc:  # reported below, with the count
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(served) == 120


def test_tls_keep_alive_stays_on_one_connection(start: Callable[..., Server], out: Path) -> None:  # noqa: F811
    server = start(out, threads=3)
    assert server.ca_file is not None
    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, timeout=IO_TIMEOUT, context=verified_context(server.ca_file)
    )
    try:
        first = get(conn)
        sock = conn.sock
        for pause in (0.0, 0.0, LINGER * 2, 0.0):  # one pause outlasts the linger
            time.sleep(pause)
            assert get(conn)["remote_port"] == first["remote_port"]
        assert conn.sock is sock
    finally:
        conn.close()


def test_stop_is_prompt_while_a_thread_lingers(
    start: Callable[..., Server],  # noqa: F811
) -> None:
    server = start(None, threads=4, graceful_timeout=10)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=IO_TIMEOUT)
    get(conn)  # the serving thread now waits on this open connection
    began = time.monotonic()
    assert server.stop() == 0
    conn.close()
    assert time.monotonic() - began < 5
