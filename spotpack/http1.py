"""Read the head of a plain HTTP/1.1 request, or say it is not plain: a pure function.

The keep-alive fast path (:mod:`spotpack.stickythread`) answers the requests
kube-scheduler and kube-apiserver send on every pod, ``POST /filter`` with a
``Content-Length`` body and nothing unusual, without building gunicorn's
request object and WSGI environ (about half of the per-request cost). It
must never answer a request differently from gunicorn, so this parser is
strict in one direction only: anything it does not fully understand is
*not plain* (``None``) and goes to gunicorn unchanged, which answers it
(including with the right 400). Not plain:

* a request line that is not ``METHOD SP /path SP HTTP/1.1``, or a path with
  a query, a fragment, ``%`` escapes or bytes outside printable ASCII;
* ``Transfer-Encoding`` (chunked bodies), ``Expect`` (100-continue),
  ``Upgrade``, obsolete line folding, a header line without ``:`` or with
  whitespace before it;
* no ``Content-Length``, two of them, or one that is not all digits.

``Connection: close`` is understood (the answer then closes the connection).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 16 * 1024
"""Bytes of request line and headers read before giving the request to gunicorn."""

_SPECIAL = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Head:
    method: str
    path: str
    content_length: int
    close: bool
    """The client sent ``Connection: close``."""


def parse_head(head: bytes) -> Head | None:
    """The request's method, path, body length and whether to close; None if not plain.

    ``head`` is everything up to and including the blank line (``\\r\\n\\r\\n``).
    """
    if not head.endswith(b"\r\n\r\n") or len(head) > MAX_HEAD:
        return None
    lines = head[:-4].split(b"\r\n")
    request = _request_line(lines[0])
    fields = _fields(lines[1:])
    if request is None or fields is None:
        return None
    method, path = request
    length, close = fields
    return Head(method, path, length, close)


def _fields(lines: list[bytes]) -> tuple[int, bool] | None:
    """(Content-Length, Connection: close) from the header lines; None if not plain."""
    length: int | None = None
    close = False
    for line in lines:
        name, sep, value = line.partition(b":")
        key = name.lower()
        value = value.strip(b" \t")
        if not sep or not name or not _is_token(name) or key in _SPECIAL:
            return None
        if key == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif key == b"connection":
            close = b"close" in (token.strip().lower() for token in value.split(b","))
    return None if length is None else (length, close)


def _request_line(line: bytes) -> tuple[str, str] | None:
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    method, target = parts[0], parts[1]
    if not method or not _is_token(method):
        return None
    if not target.startswith(b"/") or any(c <= 0x20 or c >= 0x7F for c in target):
        return None
    if any(c in target for c in (b"?", b"#", b"%")):
        return None
    return method.decode("ascii"), target.decode("ascii")


def _is_token(value: bytes) -> bool:
    return all(c in _TOKEN for c in value)
