"""A naive Python extender, for comparison: Flask, ``json``, every node passes, scores 0.

What a first extender usually looks like; ``bench.extender`` serves it with
gunicorn's stock ``gthread`` worker and sends it the same filter + prioritize
pairs as ``spotpack extender``, so the two costs are measured on one machine.
"""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask("naive-extender")

    @app.post("/filter")
    def filter_() -> ResponseReturnValue:
        args = request.get_json()
        return jsonify(
            {
                "Nodes": None,
                "NodeNames": args.get("NodeNames") or [],
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": "",
            }
        )

    @app.post("/prioritize")
    def prioritize() -> ResponseReturnValue:
        args = request.get_json()
        return jsonify([{"Host": name, "Score": 0} for name in args.get("NodeNames") or []])

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        return "ok"

    return app
