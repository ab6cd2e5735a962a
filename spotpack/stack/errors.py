"""Errors of the local stack beyond the shared tree: a service that did not come up.

Bad settings and files are :class:`~spotpack.errors.ConfigError` and
:class:`~spotpack.errors.CertificateError` like everywhere else; a service that
exits or never gets ready is its own kind, because the fix is in its log.
"""

from __future__ import annotations

from pathlib import Path

from spotpack.errors import SpotpackError


class ServiceError(SpotpackError):
    """A child service exited or did not become ready; the message ends with its log tail."""

    def __init__(self, service: str, reason: str, log_path: Path, tail: str) -> None:
        self.service = service
        self.reason = reason
        self.log_path = log_path
        self.tail = tail
        message = f"{service} {reason}; see {log_path}"
        if tail:
            message += f", which ends with:\n{tail}"
        super().__init__(message)
