"""A minimal flask app and a runner for ``tests/integration/test_serving_tls.py``.

Run as ``python tests/integration/tls_app.py '<ServeSettings JSON>'``: the
script's directory is then first on ``sys.path``, so gunicorn workers can load
``tls_app:create_app()`` by string, the way services are loaded in production.
"""

from __future__ import annotations

import os
import sys

from flask import Flask, request

from spotpack.wsgi import JSONEndpoints


def create_app() -> Flask:
    """Answers with facts the tests assert on: worker pid and the client's port."""
    app = Flask(__name__)

    @app.get("/")
    def index() -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "remote_port": int(request.environ.get("REMOTE_PORT", 0)),
            "scheme": request.scheme,
        }

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    def echo(body: bytes) -> tuple[int, dict[str, object]]:
        """A hot JSON endpoint: says what it received (and which thread served it)."""
        return 200, {"bytes": len(body), "head": body[:16].decode(errors="replace")}

    def rejected(status: int, reason: str, message: str) -> tuple[int, dict[str, str]]:
        return status, {"Error": f"{reason}: {message}"}

    app.wsgi_app = JSONEndpoints(app.wsgi_app, {"/echo": echo}, 1024, rejected)  # type: ignore[method-assign]
    return app


def main(argv: list[str]) -> None:
    from spotpack.serving import ServeSettings, serve

    serve("tls_app:create_app()", ServeSettings.model_validate_json(argv[1]))


if __name__ == "__main__":
    main(sys.argv)
