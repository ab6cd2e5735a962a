"""The keep-alive fast path (:mod:`spotpack.fastpath`) against gunicorn's own answers.

The first request on a connection is always served by gunicorn; the next
ones, on a lingering thread, by the fast path when they are plain requests to
a hot JSON endpoint (``/echo`` in ``tls_app.py``). Each test sends the same
request twice on one raw connection and checks the two answers agree, then
that what is not plain (chunked, ``Expect``, too big, another path) is still
answered correctly, by gunicorn.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.integration.test_serving_tls import IO_TIMEOUT, Server, start  # noqa: F401

pytestmark = pytest.mark.integration


class Raw:
    """One raw keep-alive connection: send bytes, read whole answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        status = self.reader.readline()
        assert status.startswith(b"HTTP/1.1 "), status
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", "0")))
        return int(status.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        self.sock.settimeout(IO_TIMEOUT)
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def raw(start: Callable[..., Server]) -> Iterator[Callable[[], Raw]]:  # noqa: F811
    server = start(None, threads=4)
    opened: list[Raw] = []

    def connect() -> Raw:
        conn = Raw(server.port)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def post(body: bytes, path: str = "/echo", extra: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    return head.encode() + extra + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def twice(conn: Raw, request: bytes) -> tuple[tuple[int, dict[str, str], bytes], ...]:
    """The same request served by gunicorn (first) and by the fast path (second)."""
    conn.send(request)
    first = conn.answer()
    conn.send(request)
    return first, conn.answer()


def test_a_plain_request_gets_the_same_answer_from_both_paths(raw: Callable[[], Raw]) -> None:
    first, second = twice(raw(), post(b'{"a": 1}'))
    assert first[0] == second[0] == 200
    assert json.loads(first[2]) == json.loads(second[2]) == {"bytes": 8, "head": '{"a": 1}'}
    for headers in (first[1], second[1]):
        assert headers["content-type"] == "application/json"
        assert "date" in headers
    # gunicorn names itself; the fast path does not: the second answer came from it
    assert "server" in first[1] and "server" not in second[1]


def test_wrong_method_is_a_json_405_with_allow_on_both_paths(raw: Callable[[], Raw]) -> None:
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    first, second = twice(raw(), request)
    assert first[0] == second[0] == 405
    assert first[1]["allow"] == second[1]["allow"] == "POST"
    assert json.loads(first[2]) == json.loads(second[2])


def test_pipelined_and_split_requests(raw: Callable[[], Raw]) -> None:
    conn = raw()
    conn.send(post(b"{}"))
    assert conn.answer()[0] == 200
    conn.send(post(b'{"n": 1}') + post(b'{"n": 22}') + post(b'{"n": 333}'))  # one write
    assert [json.loads(conn.answer()[2])["bytes"] for _ in range(3)] == [8, 9, 10]
    whole = post(b'{"split": true}')
    conn.send(whole[:20])  # a slow client: the head arrives in pieces
    time.sleep(0.05)
    conn.send(whole[20:-5])
    time.sleep(0.05)
    conn.send(whole[-5:])
    assert json.loads(conn.answer()[2]) == {"bytes": 15, "head": '{"split": true}'}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        post(b"{}", extra=b"Expect: 100-continue\r\n"),
        post(b"{}", path="/echo?x=1"),
    ],
    ids=["chunked", "expect", "query"],
)
def test_requests_that_are_not_plain_are_served_by_gunicorn(
    raw: Callable[[], Raw], request_bytes: bytes
) -> None:
    conn = raw()
    conn.send(post(b"{}"))
    assert conn.answer()[0] == 200
    conn.send(request_bytes)
    status, _, body = conn.answer()
    if status == 100:  # Expect: 100-continue, answered by gunicorn, then the real answer
        status, _, body = conn.answer()
    assert status == 200, body
    assert json.loads(body)["bytes"] == 2


def test_a_body_over_the_limit_is_a_413_from_both_paths(raw: Callable[[], Raw]) -> None:
    first, second = twice(raw(), post(b"x" * 2000))
    assert first[0] == second[0] == 413


def test_connection_close_is_honoured(raw: Callable[[], Raw]) -> None:
    conn = raw()
    conn.send(post(b"{}"))
    assert conn.answer()[0] == 200
    conn.send(post(b"{}", extra=b"Connection: close\r\n"))
    status, headers, _ = conn.answer()
    assert status == 200 and headers.get("connection") == "close"
    assert conn.closed_by_server()


def test_other_paths_still_reach_the_app(raw: Callable[[], Raw]) -> None:
    conn = raw()
    conn.send(post(b"{}"))
    assert conn.answer()[0] == 200
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = conn.answer()
    assert (status, body) == (200, b"ok")
