"""Edge cases of the keep-alive fast path (``spotpack/http1.py``, ``fastpath.py``,
``stickythread.py``): requests the fast path must leave to gunicorn, and what it must
do when it does serve them. Unit level, over a socketpair; the same cases against a
real gunicorn are in ``tests/integration/test_fast_path_edges.py``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.http.unreader import SocketUnreader

from spotpack import fastpath, stickythread
from spotpack.http1 import parse_head
from spotpack.stickythread import StickyThreadWorker
from spotpack.wsgi import JSONEndpoints


def head(*lines: str | bytes) -> bytes:
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    return b"\r\n".join(raw) + b"\r\n\r\n"


PLAIN = ("POST /filter HTTP/1.1", "Host: x", "Content-Type: application/json")


# --- heads gunicorn refuses (400) must not be plain ----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        # RFC 9110 5.5: gunicorn rejects control bytes in a field value; a bare LF is a line
        # end to lenient peers, so this one hides a Transfer-Encoding from us but not them
        head(*PLAIN, b"X-A: a\nTransfer-Encoding: chunked", "Content-Length: 2"),
        head(*PLAIN, b"X-A: a\x00b", "Content-Length: 2"),
        head(*PLAIN, b"X-A: a\rb", "Content-Length: 2"),
        head(*PLAIN, b"X-A: a\x7fb", "Content-Length: 2"),
        # RFC 9110 5.3: singleton fields twice
        head(*PLAIN, "Host: y", "Content-Length: 2"),
        head(*PLAIN, "Content-Type: text/plain", "Content-Length: 2"),
        # gunicorn's limit_request_fields (100) and field size (8190)
        head(*PLAIN, *[f"X-{i}: {i}" for i in range(100)], "Content-Length: 2"),
        head(*PLAIN, "X-Big: " + "a" * 9000, "Content-Length: 2"),
        # HEAD answers carry no body: only gunicorn's Response knows that
        head("HEAD /filter HTTP/1.1", "Host: x", "Content-Length: 0"),
        # gunicorn: 400 for methods outside its convention; CONNECT closes the connection
        head("post /filter HTTP/1.1", "Host: x", "Content-Length: 0"),
        head("PO /filter HTTP/1.1", "Host: x", "Content-Length: 0"),
        head("CONNECT /filter HTTP/1.1", "Host: x", "Content-Length: 0"),
    ],
    ids=[
        "bare-lf",
        "nul",
        "bare-cr",
        "del",
        "two-hosts",
        "two-types",
        "101-fields",
        "8k-field",
        "head",
        "lowercase-method",
        "short-method",
        "connect",
    ],
)
def test_heads_gunicorn_treats_specially_are_not_plain(raw: bytes) -> None:
    assert parse_head(raw) is None


def test_a_content_length_of_thousands_of_digits_is_not_plain_and_does_not_raise() -> None:
    # int() refuses more than 4300 digits (Python >= 3.11): a ValueError escaped the
    # worker's handle() and the connection was dropped with no answer (gunicorn: 400)
    assert parse_head(head(*PLAIN, "Content-Length: " + "0" * 5000)) is None


def test_connection_close_is_kept_when_a_later_connection_header_says_keep_alive() -> None:
    # gunicorn decides on the first Connection header ("close"); the fast path let the
    # last one win and kept a connection open that the client asked to close
    parsed = parse_head(
        head(*PLAIN, "Content-Length: 0", "Connection: close", "Connection: keep-alive")
    )
    assert parsed is not None and parsed.close


# --- serve_plain over a socketpair ---------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    yield server, client
    server.close()
    client.close()


def conn_of(sock: socket.socket) -> Any:
    return SimpleNamespace(sock=sock, parser=SimpleNamespace(unreader=SocketUnreader(sock)))


def endpoints(handler: Any) -> JSONEndpoints:
    def rejected(status: int, reason: str, message: str) -> tuple[int, Any]:
        return status, {"Error": f"{reason}: {message}"}

    return JSONEndpoints(lambda e, s: [], {"/filter": handler}, 1024, rejected)


def read_all(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def test_a_handler_that_raises_gets_a_500_not_a_silent_drop(
    pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = pair

    def boom(body: bytes) -> tuple[int, Any]:
        raise RuntimeError("bug in a handler")

    client.sendall(head(*PLAIN, "Content-Length: 2") + b"{}")
    # before: the exception left serve_plain, the worker's handle() and the pool thread;
    # gunicorn's finish_request closed the socket without an answer and without a log
    served = fastpath.serve_plain(conn_of(server), endpoints(boom), keep_open=True)
    assert served is False
    server.shutdown(socket.SHUT_WR)
    answer = read_all(client)
    assert answer.startswith(b"HTTP/1.1 500 "), answer
    assert b"Connection: close\r\n" in answer
    assert "bug in a handler" in caplog.text


def test_the_max_requests_th_answer_says_connection_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # gunicorn's handle_request force-closes the response that reaches max_requests;
    # the fast path counted after answering, so that answer announced keep-alive and the
    # connection was closed under a client free to send its next POST on it
    server, client = pair
    cfg = SimpleNamespace(limit_request_fields=100, limit_request_field_size=0)
    worker: Any = SimpleNamespace(alive=True, nr=9, max_requests=10, cfg=cfg)
    worker._limits = lambda: StickyThreadWorker._limits(worker)
    client.sendall(head(*PLAIN, "Content-Length: 2") + b"{}")
    kept = StickyThreadWorker._next(worker, conn_of(server), endpoints(lambda b: (200, {})))
    assert worker.alive is False and worker.nr == 10
    assert kept is False
    server.shutdown(socket.SHUT_WR)
    assert b"Connection: close\r\n" in read_all(client)


def test_waiting_on_a_descriptor_above_1024_times_out_instead_of_saying_readable(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # select.select() raises ValueError for fds >= FD_SETSIZE; the helpers took that as
    # "readable", so the next recv() blocked with no timeout: an idle kept-alive
    # connection pinned its lingering thread until the client spoke or left
    server, _client = pair
    high = os.dup2(server.fileno(), 1500)
    sock = socket.socket(fileno=high)
    try:
        conn = SimpleNamespace(sock=sock, parser=None)
        assert stickythread._readable(conn, 0.05) is False
        saved = fastpath.READ_TIMEOUT
        fastpath.READ_TIMEOUT = 0.05
        try:
            assert fastpath._wait(sock, time.monotonic() + 10) is False
        finally:
            fastpath.READ_TIMEOUT = saved
    finally:
        sock.close()


@pytest.mark.parametrize("stall", ["head", "body"])
def test_a_client_that_trickles_loses_the_connection_instead_of_holding_a_thread(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch, stall: str
) -> None:
    """One byte just often enough to beat the per-read timeout, never the whole request:
    the request deadline closes the connection (gunicorn's own read has no timeout)."""
    server, client = pair
    monkeypatch.setattr(fastpath, "READ_TIMEOUT", 0.2)
    monkeypatch.setattr(fastpath, "REQUEST_DEADLINE", 0.6)
    whole = head(*PLAIN, "Content-Length: 50") + b"{" * 50
    start = whole.index(b"\r\n\r\n") + 4 if stall == "body" else 10
    client.sendall(whole[:start])
    stop = threading.Event()

    def trickle() -> None:
        for byte in whole[start : start + 40]:
            if stop.wait(0.1):
                return
            client.sendall(bytes([byte]))

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    began = time.monotonic()
    try:
        served = fastpath.serve_plain(
            conn_of(server), endpoints(lambda b: (200, {})), keep_open=True
        )
    finally:
        stop.set()
        feeder.join(5)
    assert served is False
    assert time.monotonic() - began < 2.0
