"""Edge cases of the keep-alive fast path, against a real gunicorn.

Each test first sends one plain request (served by gunicorn; the thread then
lingers), so the request under test reaches :func:`spotpack.fastpath.serve_plain`.
The fast path must answer exactly as gunicorn would: here, gunicorn answers
these with a 400 or 431 (or, for ``HEAD``, with no body), and the fast path did not.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_fast_path import Raw, post, raw  # noqa: F401 - fixture
from tests.integration.test_serving_tls import (  # noqa: F401 - fixtures
    IO_TIMEOUT,
    out,
    start,
    verified_context,
)

pytestmark = pytest.mark.integration


def lingering(raw: Callable[[], Raw]) -> Raw:  # noqa: F811
    conn = raw()
    conn.send(post(b"{}"))
    assert conn.answer()[0] == 200
    return conn


def test_head_gets_no_body_and_the_next_answer_is_not_desynchronized(
    raw: Callable[[], Raw],  # noqa: F811
) -> None:
    conn = lingering(raw)
    conn.send(b"HEAD /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    status = conn.reader.readline()
    assert status.startswith(b"HTTP/1.1 405"), status
    while conn.reader.readline() not in (b"\r\n", b""):
        pass
    # a HEAD answer has no body, whatever its Content-Length says: the next bytes must
    # be the next answer (before: the 405's JSON body, read as the next status line)
    conn.send(post(b'{"n": 1}'))
    status = conn.reader.readline()
    assert status.startswith(b"HTTP/1.1 200"), status


@pytest.mark.parametrize(
    "extra",
    [
        b"X-A: a\x00b\r\n",
        b"X-A: a\nTransfer-Encoding: chunked\r\n",
        b"Host: y\r\n",
        b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(100)),
        b"X-Big: " + b"a" * 9000 + b"\r\n",
    ],
    ids=["nul", "bare-lf", "two-hosts", "101-fields", "9k-field"],
)
def test_heads_gunicorn_refuses_are_refused_after_the_first_request_too(
    raw: Callable[[], Raw],  # noqa: F811
    extra: bytes,
) -> None:
    conn = lingering(raw)
    conn.send(post(b"{}", extra=extra))
    status = conn.reader.readline()
    assert status.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), status  # gunicorn's refusals


def test_a_content_length_of_5000_digits_is_a_400_not_a_dropped_connection(
    raw: Callable[[], Raw],  # noqa: F811
) -> None:
    conn = lingering(raw)
    conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"0" * 5000 + b"2\r\n\r\n{}")
    conn.sock.settimeout(IO_TIMEOUT)
    try:
        status = conn.reader.readline()
    except (TimeoutError, ConnectionResetError):
        status = b""
    assert status.startswith(b"HTTP/1.1 "), status  # gunicorn: 400 (ours used to drop it)


def test_connection_close_before_keep_alive_closes(raw: Callable[[], Raw]) -> None:  # noqa: F811
    conn = lingering(raw)
    conn.send(post(b"{}", extra=b"Connection: close\r\nConnection: keep-alive\r\n"))
    status, _, _ = conn.answer()
    assert status == 200
    assert conn.closed_by_server()


def test_gunicorn_and_fast_path_alternate_on_one_connection(
    raw: Callable[[], Raw],  # noqa: F811
) -> None:
    """Chunked (gunicorn), plain (fast path), chunked again, plain again: the stale
    request gunicorn's parser still holds between them must not eat any bytes."""
    chunked = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    conn = raw()
    for request in (chunked, post(b'{"a":1}'), chunked, post(b'{"bb":1}'), chunked):
        conn.send(request)
        status, _, body = conn.answer()
        assert status == 200, body


def test_tls_pipelined_requests_across_records_are_all_answered(
    start: Callable[..., Any],  # noqa: F811
    out: Path,  # noqa: F811
) -> None:
    """Thirty requests in one write (two TLS records, one request split between them),
    then three in separate records: all answered, none waits for more bytes."""
    server = start(out, threads=4)
    context = verified_context(out / "ca.crt")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as sock,
        sock.makefile("rb") as reader,
    ):

        def answer() -> bytes:
            status = reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            return status

        sock.sendall(post(b"{}"))
        assert answer().startswith(b"HTTP/1.1 200")
        body = b'{"pad": "' + b"x" * 700 + b'"}'
        sock.sendall(post(body) * 30)
        assert all(answer().startswith(b"HTTP/1.1 200") for _ in range(30))
        for _ in range(3):
            sock.send(post(b"{}"))
        assert all(answer().startswith(b"HTTP/1.1 200") for _ in range(3))
