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
* ``HEAD`` (its answer carries no body) and ``CONNECT`` (gunicorn closes the
  connection after it), a method gunicorn refuses (lowercase, ``#``, shorter
  than 3 or longer than 20 bytes);
* ``Transfer-Encoding`` (chunked bodies), ``Expect`` (100-continue),
  ``Upgrade``, obsolete line folding, a header line without ``:`` or with
  whitespace before it;
* a control byte (``NUL``, bare ``CR`` or ``LF``, ``DEL``...) in a field value,
  ``Host`` or ``Content-Type`` twice, more than ``max_fields`` header lines or
  one longer than ``max_field_size`` (gunicorn answers all these with a 400);
* no ``Content-Length``, two of them, or one that is not all digits (or too
  long to be a length we would read).

``Connection: close`` is understood (the answer then closes the connection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
"""Bytes of request line and headers read before giving the request to gunicorn."""
MAX_FIELDS = 100
"""gunicorn's default ``limit_request_fields``."""
MAX_FIELD_SIZE = 8190
"""gunicorn's default ``limit_request_field_size`` (bytes of a header line with its CRLF)."""

_SPECIAL = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
_SINGLETON = frozenset({b"host", b"content-type"})
_OTHER_FRAMING = frozenset({b"HEAD", b"CONNECT"})
"""Methods whose answer gunicorn frames differently (no body; the connection closes)."""
_LOWER_OR_HASH = frozenset(b"abcdefghijklmnopqrstuvwxyz#")
# RFC 9110 5.5: only SP and HTAB may appear in a field value outside VCHAR / obs-text
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_DIGITS = 18
"""A longer Content-Length is gunicorn's to judge (``int()`` refuses over 4300 digits)."""
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Head:
    """What the fast path needs of a plain request's head: route, body length, closing."""

    method: str
    path: str
    content_length: int
    close: bool
    """The client sent ``Connection: close``."""


def parse_head(
    head: bytes, *, max_fields: int = MAX_FIELDS, max_field_size: int = MAX_FIELD_SIZE
) -> Head | None:
    """The request's method, path, body length and whether to close; None if not plain.

    ``head`` is everything up to and including the blank line (``\\r\\n\\r\\n``).
    ``max_fields`` and ``max_field_size`` are gunicorn's limits: a head over them
    is not plain (gunicorn refuses it).
    """
    if not head.endswith(b"\r\n\r\n") or len(head) > MAX_HEAD:
        return None
    lines = head[:-4].split(b"\r\n")
    if len(lines) - 1 > max_fields or any(len(line) + 2 > max_field_size for line in lines[1:]):
        return None
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
    seen: set[bytes] = set()
    for line in lines:
        name, sep, value = line.partition(b":")
        key = name.lower()
        value = value.strip(b" \t")
        if not sep or not name or not _is_token(name) or key in _SPECIAL:
            return None
        if _CONTROL.search(value):
            return None
        if key in _SINGLETON:
            if key in seen:
                return None
            seen.add(key)
        if key == b"content-length":
            if length is not None or not value.isdigit() or len(value) > _MAX_DIGITS:
                return None
            length = int(value)
        elif key == b"connection":
            # any Connection header saying close closes (gunicorn reads the first one)
            close = close or b"close" in (t.strip(b" \t").lower() for t in value.split(b","))
    return None if length is None else (length, close)


def _request_line(line: bytes) -> tuple[str, str] | None:
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return None
    method, target = parts[0], parts[1]
    if not _is_token(method) or not _conventional(method) or method in _OTHER_FRAMING:
        return None
    if not target.startswith(b"/") or any(c <= 0x20 or c >= 0x7F for c in target):
        return None
    if any(c in target for c in (b"?", b"#", b"%")):
        return None
    return method.decode("ascii"), target.decode("ascii")


def _conventional(method: bytes) -> bool:
    """gunicorn's default method check (``permit_unconventional_http_method`` off)."""
    return 3 <= len(method) <= 20 and not any(c in _LOWER_OR_HASH for c in method)


def _is_token(value: bytes) -> bool:
    return all(c in _TOKEN for c in value)
