"""Structured logging: key/value context in ``extra``, JSON lines in production.

Call sites use ``logging.getLogger(__name__)`` and pass context as ``extra``;
this module only decides how records are rendered.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines with ``key=value`` context appended."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        return f"{base} {context}" if context else base


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    formatter: logging.Formatter = (
        JSONFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    for handler in root.handlers:
        if getattr(handler, "_spotpack", False):
            handler.setFormatter(formatter)
            break
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        handler._spotpack = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
