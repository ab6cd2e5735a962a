"""Which request heads the fast path takes (``spotpack/http1.py``): plain ones only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotpack.http1 import MAX_HEAD, Head, parse_head


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


PLAIN = ("POST /filter HTTP/1.1", "Host: 127.0.0.1:8444", "Content-Type: application/json")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (head(*PLAIN, "Content-Length: 12"), Head("POST", "/filter", 12, False)),
        (head(*PLAIN, "content-length:0"), Head("POST", "/filter", 0, False)),
        (head(*PLAIN, "Content-Length: 5", "Connection: close"), Head("POST", "/filter", 5, True)),
        (
            head(*PLAIN, "Content-Length: 5", "Connection: keep-alive, Close"),
            Head("POST", "/filter", 5, True),
        ),
        (
            head(*PLAIN, "Content-Length: 5", "Connection: keep-alive"),
            Head("POST", "/filter", 5, False),
        ),
        (head("GET /bind HTTP/1.1", "Content-Length: 0"), Head("GET", "/bind", 0, False)),
    ],
)
def test_plain_heads(raw: bytes, expected: Head) -> None:
    assert parse_head(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        head(*PLAIN),  # no Content-Length
        head(*PLAIN, "Content-Length: 5", "Content-Length: 5"),
        head(*PLAIN, "Content-Length: -1"),
        head(*PLAIN, "Content-Length: 1e3"),
        head(*PLAIN, "Content-Length: 5", "Transfer-Encoding: chunked"),
        head(*PLAIN, "Content-Length: 5", "Expect: 100-continue"),
        head(*PLAIN, "Content-Length: 5", "Upgrade: h2c"),
        head(*PLAIN, "Content-Length: 5", " folded"),
        head(*PLAIN, "Content-Length : 5"),
        head(*PLAIN, "no colon here", "Content-Length: 5"),
        head("POST /filter HTTP/1.0", "Content-Length: 5"),
        head("POST /filter?x=1 HTTP/1.1", "Content-Length: 5"),
        head("POST /fil%74er HTTP/1.1", "Content-Length: 5"),
        head("POST http://h/filter HTTP/1.1", "Content-Length: 5"),
        head("POST  /filter HTTP/1.1", "Content-Length: 5"),
        head("P(ST /filter HTTP/1.1", "Content-Length: 5"),
        b"POST /filter HTTP/1.1\r\nContent-Length: 5\r\n",  # not the whole head
        head("POST /" + "a" * MAX_HEAD + " HTTP/1.1", "Content-Length: 5"),
    ],
)
def test_anything_not_plain_goes_to_gunicorn(raw: bytes) -> None:
    assert parse_head(raw) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse_head(raw + b"\r\n\r\n")
    assert result is None or isinstance(result, Head)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["POST", "GET", "PUT"]),
    st.from_regex(r"/[a-z]{1,12}", fullmatch=True),
    st.integers(0, 10**9),
    st.booleans(),
)
def test_generated_plain_heads_read_back(method: str, path: str, length: int, close: bool) -> None:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Content-Length: {length}"]
    if close:
        lines.append("Connection: close")
    assert parse_head(head(*lines)) == Head(method, path, length, close)
