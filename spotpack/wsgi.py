"""A thin WSGI layer for the hot JSON endpoints, in front of a Flask app.

The webhook's ``/mutate`` and the extender's ``/filter``, ``/prioritize``,
``/bind`` sit on every pod's path. Flask's per-request machinery (request
context, routing, signals, response object) costs as much as our decisions, so
these POST endpoints are served here: read the body with a size cap, call a
handler ``bytes -> (status, JSON-able body)``, write orjson. Everything else
(health, metrics, inspection) falls through to the Flask app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

import orjson

Handler = Callable[[bytes], tuple[int, Any]]
Rejected = Callable[[int, str, str], tuple[int, Any]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def read_body(environ: Mapping[str, Any], cap: int) -> bytes | None:
    """The request body, or None when it is larger than ``cap`` (declared or actual)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        if int(length) > cap:
            return None
        data: bytes = stream.read(int(length))
        return data
    data = stream.read(cap + 1)  # no declared length: read at most one byte past the cap
    return None if len(data) > cap else data


class JSONEndpoints:
    """Serve ``POST <path>`` for each path in ``handlers``; delegate the rest to ``inner``.

    ``rejected(status, reason, message)`` builds the body of a 405/413 answer
    (and counts it), so every answer stays JSON.
    """

    def __init__(
        self, inner: WSGIApp, handlers: Mapping[str, Handler], max_body: int, rejected: Rejected
    ) -> None:
        self.inner = inner
        self.handlers = dict(handlers)
        self.max_body = max_body
        self.rejected = rejected

    def serves(self, path: str) -> bool:
        return path in self.handlers

    def answer(
        self, method: str, path: str, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, JSON bytes) for a request to one of our paths.

        ``body`` is None when it was larger than ``max_body``. Shared by the WSGI
        entry below and the keep-alive fast path of :mod:`spotpack.stickythread`.
        """
        extra: list[tuple[str, str]] = []
        if method != "POST":
            status, payload = self.rejected(405, "MethodNotAllowed", "use POST")
            extra.append(("Allow", "POST"))
        elif body is None:
            status, payload = self.rejected(
                413, "RequestEntityTooLarge", f"body exceeds {self.max_body} bytes"
            )
        else:
            status, payload = self.handlers[path](body)
        data = orjson.dumps(payload)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *extra]
        return status, headers, data

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in self.handlers:
            return self.inner(environ, start_response)
        body = read_body(environ, self.max_body)
        status, headers, data = self.answer(environ.get("REQUEST_METHOD", ""), path, body)
        start_response(status_line(status), headers)
        return [data]
