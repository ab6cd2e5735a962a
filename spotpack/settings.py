"""Shared handling of the services' settings: load with a clear error, export CLI flags.

Each service has its own pydantic-settings class with its own ``SPOTPACK_<SERVICE>_``
prefix; what they share is how a bad value is reported (one line naming the
variable) and how command-line flags reach gunicorn's workers (through the
environment, which every worker reads when it builds its app).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from spotpack.errors import ConfigError

S = TypeVar("S", bound=BaseModel)


def load(kind: type[S], prefix: str, **overrides: Any) -> S:
    """Build ``kind`` from the environment (and ``overrides``); a bad value is a
    :class:`ConfigError` naming the variable, e.g. ``SPOTPACK_WEBHOOK_PORT``."""
    try:
        return kind(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper()
        where = f"setting {prefix}{name}" if name else f"the {prefix}* settings"
        raise ConfigError(f"{where} is invalid: {first['msg']}") from exc


def export_flags(args: argparse.Namespace, flags: Mapping[str, str], prefix: str) -> None:
    """Write the flags the user gave into ``<prefix><NAME>`` variables (None = not given).

    ``--plain-http`` empties the certificate settings, the way an operator would.
    """
    for attr, name in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[f"{prefix}{name}"] = str(value)
    if getattr(args, "plain_http", False):
        os.environ[f"{prefix}CERT_FILE"] = ""
        os.environ[f"{prefix}KEY_FILE"] = ""
