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

from spotpack.http1 import MAX_FIELD_SIZE, MAX_FIELDS, MAX_HEAD, Head, parse_head
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


def readable(sock: Any, timeout: float) -> bool:
    """Whether the socket has bytes to read (or was closed) within ``timeout`` seconds.

    ``poll``, not ``select``: ``select`` refuses descriptors above ``FD_SETSIZE``
    (1024), which a worker with many connections reaches, and a refusal taken
    for "readable" would leave the next ``recv`` blocking without a timeout.
    """
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))
    except (OSError, ValueError):  # closed under us: the caller's read says so
        return True


REQUEST_DEADLINE = 10.0
"""Seconds a request may take to arrive in full once its first bytes came: a client
trickling bytes must not hold a worker thread for longer."""


def _wait(sock: Any, deadline: float) -> bool:
    """Whether the socket has bytes (or TLS data) within :data:`READ_TIMEOUT` and before
    ``deadline`` (monotonic)."""
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True
    left = min(READ_TIMEOUT, deadline - time.monotonic())
    return left > 0 and readable(sock, left)


class _Gone(Exception):  # noqa: N818 - control flow, never leaves this module
    """The client closed or stalled mid-request: close the connection."""


def serve_plain(
    conn: Any,
    endpoints: JSONEndpoints,
    *,
    keep_open: bool,
    limits: tuple[int, int] = (MAX_FIELDS, MAX_FIELD_SIZE),
) -> bool | None:
    """Serve the connection's next request if it is plain and ours.

    Returns True when served and the connection may stay open, False when it
    must close (served with ``Connection: close``, client gone, or stalled),
    and None when the request is not for us: every byte read is back in
    gunicorn's buffer. ``keep_open`` False (the worker is stopping) answers
    with ``Connection: close``. ``limits`` are gunicorn's ``(limit_request_fields,
    limit_request_field_size)``: a head over them is gunicorn's to refuse.

    A handler that raises gets a JSON 500 and the connection closes, as gunicorn
    would do (the exception is logged): it must not leave the worker's thread.
    """
    try:
        request = _read(conn, endpoints, limits)
    except _Gone:
        return False
    if request is None:
        return None
    head, body = request
    failed = False
    try:
        status, headers, payload = endpoints.answer(head.method, head.path, body)
    except Exception:
        log.exception("error handling request", extra={"path": head.path})
        failed = True
        payload = b'{"Error":"internal error"}'
        status = 500
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    close = head.close or not keep_open or failed
    lines = [f"HTTP/1.1 {status_line(status)}\r\n".encode(), _DATE.header()]
    lines += [f"{name}: {value}\r\n".encode() for name, value in headers]
    if close:
        lines.append(b"Connection: close\r\n")
    lines += [b"\r\n", payload]
    conn.sock.sendall(b"".join(lines))
    return not close


def _read(
    conn: Any, endpoints: JSONEndpoints, limits: tuple[int, int]
) -> tuple[Head, bytes] | None:
    """The next request's head and body, or None (bytes pushed back) when not ours.

    A client that stalls or trickles (no byte for :data:`READ_TIMEOUT`, or not all
    of the request within :data:`REQUEST_DEADLINE`) loses the connection here
    rather than holding a thread in gunicorn's untimed read.
    """
    unreader, sock = conn.parser.unreader, conn.sock
    data = unreader.read()
    deadline = time.monotonic() + REQUEST_DEADLINE
    while b"\r\n\r\n" not in data:
        if not data:
            raise _Gone
        if len(data) > MAX_HEAD:
            unreader.unread(data)
            return None
        if not _wait(sock, deadline):
            raise _Gone
        more = sock.recv(65536)
        if not more:
            raise _Gone
        data += more
    end = data.index(b"\r\n\r\n") + 4
    head = parse_head(data[:end], max_fields=limits[0], max_field_size=limits[1])
    if head is None or not endpoints.serves(head.path) or head.content_length > endpoints.max_body:
        unreader.unread(data)
        return None
    body = data[end:]
    while len(body) < head.content_length:
        ready = _wait(sock, deadline)
        more = sock.recv(min(head.content_length - len(body), 1 << 20)) if ready else b""
        if not more:
            raise _Gone
        body += more
    if len(body) > head.content_length:  # the client pipelined its next request
        unreader.unread(body[head.content_length :])
        body = body[: head.content_length]
    return head, body
