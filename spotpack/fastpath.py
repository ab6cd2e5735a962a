"""Answer a plain keep-alive request to a hot JSON endpoint straight from the socket.

Why: on a kept-alive connection to ``/filter``, ``/prioritize``, ``/bind`` or
``/mutate``, gunicorn's request parser, WSGI environ, response object and
two ``send`` calls cost about as much as the decision itself (the scheduler
waits for every answer, pod after pod). When the request head is plain
(:func:`spotpack.http1.parse_head`) and its path is one of the
:class:`~spotpack.wsgi.JSONEndpoints`, this module reads the body, calls the
same :meth:`~spotpack.wsgi.JSONEndpoints.answer` the WSGI path calls, and
writes the answer in one ``sendall``. Anything else is pushed back into
gunicorn's read buffer untouched, and gunicorn serves it as usual.

Only :class:`~spotpack.stickythread.StickyThreadWorker` calls this, on
connections it already served once through gunicorn (so TLS is set up and the
previous body drained).
"""

from __future__ import annotations

import email.utils
import logging
import select
import time
from typing import Any

from spotpack.http1 import MAX_HEAD, Head, parse_head
from spotpack.wsgi import JSONEndpoints, status_line

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
"""Seconds a started request may pause between reads before the connection is closed
(gunicorn's own data timeout for a worker thread)."""


class _Date:
    """The ``Date`` header, formatted once per second (origin servers with a clock send it)."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._value = f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n".encode()
            self._second = now
        return self._value


_DATE = _Date()


def _wait(sock: Any) -> bool:
    """Whether the socket has bytes (or TLS data) within :data:`READ_TIMEOUT`."""
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True
    try:
        ready, _, _ = select.select([sock], [], [], READ_TIMEOUT)
    except (OSError, ValueError):
        return True  # closed under us: the read says so
    return bool(ready)


class _Gone(Exception):  # noqa: N818 - control flow, never leaves this module
    """The client closed or stalled mid-request: close the connection."""


def serve_plain(conn: Any, endpoints: JSONEndpoints, *, keep_open: bool) -> bool | None:
    """Serve the connection's next request if it is plain and ours.

    Returns True when served and the connection may stay open, False when it
    must close (served with ``Connection: close``, client gone, or stalled),
    and None when the request is not for us: every byte read is back in
    gunicorn's buffer. ``keep_open`` False (the worker is stopping) answers
    with ``Connection: close``.
    """
    try:
        request = _read(conn, endpoints)
    except _Gone:
        return False
    if request is None:
        return None
    head, body = request
    status, headers, payload = endpoints.answer(head.method, head.path, body)
    close = head.close or not keep_open
    lines = [f"HTTP/1.1 {status_line(status)}\r\n".encode(), _DATE.header()]
    lines += [f"{name}: {value}\r\n".encode() for name, value in headers]
    if close:
        lines.append(b"Connection: close\r\n")
    lines += [b"\r\n", payload]
    conn.sock.sendall(b"".join(lines))
    return not close


def _read(conn: Any, endpoints: JSONEndpoints) -> tuple[Head, bytes] | None:
    """The next request's head and body, or None (bytes pushed back) when not ours."""
    unreader, sock = conn.parser.unreader, conn.sock
    data = unreader.read()
    while b"\r\n\r\n" not in data:
        if not data:
            raise _Gone
        if len(data) > MAX_HEAD or not _wait(sock):
            unreader.unread(data)
            return None
        more = sock.recv(65536)
        if not more:
            raise _Gone
        data += more
    end = data.index(b"\r\n\r\n") + 4
    head = parse_head(data[:end])
    if head is None or not endpoints.serves(head.path) or head.content_length > endpoints.max_body:
        unreader.unread(data)
        return None
    body = data[end:]
    while len(body) < head.content_length:
        more = sock.recv(min(head.content_length - len(body), 1 << 20)) if _wait(sock) else b""
        if not more:
            raise _Gone
        body += more
    if len(body) > head.content_length:  # the client pipelined its next request
        unreader.unread(body[head.content_length :])
        body = body[: head.content_length]
    return head, body
