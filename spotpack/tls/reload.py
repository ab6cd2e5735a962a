"""Server-side TLS contexts that pick up rotated certificate files without a restart.

How: the context handed to the server (the *outer* one) has an
``sni_callback``. OpenSSL runs it for every ClientHello, also when the client
sends no SNI (clients connecting to an IP address, e.g. ``127.0.0.1``, send
none; the callback then gets ``server_name=None``). The callback checks the
files at most every ``interval_ms``, builds a fresh *inner* context when they
changed and switches the handshake to it with ``ssl_sock.context = inner``.
Connections already established keep their certificate; new ones get the new
one. Nothing is restarted, no socket is re-bound.

A change is detected by ``stat`` (device, inode, mtime, ctime, size) of both
files. The inode catches atomic renames (our writer, and Kubernetes' secret
volumes, which swap a ``..data`` symlink), mtime catches in-place rewrites,
ctime catches a ``chmod`` that makes an unreadable file readable.

If the new files cannot be loaded (missing, unreadable, not PEM, key does not
match) the previous certificate stays in service and one error is logged per
distinct broken state: serving an old certificate for a while is recoverable,
dropping TLS or crashing the webhook is not.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from spotpack.errors import CertificateError

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only, for ECDSA and RSA
# keys alike. TLS 1.3 suites are configured separately by OpenSSL and all good.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
ALPN_PROTOCOLS = ("http/1.1",)
DEFAULT_INTERVAL_MS = 1000

_FileState: TypeAlias = tuple[int, int, int, int, int]
_Fingerprint: TypeAlias = tuple[_FileState, _FileState] | str
_SSLConn: TypeAlias = ssl.SSLSocket | ssl.SSLObject


def build_server_context(certfile: Path | str, keyfile: Path | str) -> ssl.SSLContext:
    """A server context with our TLS policy and the given certificate and key loaded.

    Raises :class:`CertificateError` naming the file and the fix, because the
    bare ``ssl.SSLError`` ("PEM lib", "KEY_VALUES_MISMATCH") names neither.
    """
    cert, key = Path(certfile), Path(keyfile)
    for path in (cert, key):
        _check_readable(path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(CIPHERS)
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{cert} and {key} are not a matching PEM certificate and unencrypted key "
            f"({exc.reason or exc}); regenerate them with `spotpack certs`"
        ) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {cert} or {key}: {exc.strerror or exc}") from exc
    return context


class ReloadingContext:
    """Owns the outer context and swaps in a fresh inner one when the files change.

    Thread-safe: handshakes run on many worker threads at once. At most one of
    them checks the files at a time; the others keep using the current inner
    context instead of waiting for that check.
    """

    def __init__(
        self,
        certfile: Path | str,
        keyfile: Path | str,
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Load the files now; a bad pair at start is a :class:`CertificateError`."""
        if interval_ms < 0:
            raise ValueError(f"interval_ms must be >= 0, got {interval_ms}")
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self._interval = interval_ms / 1000
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: _Fingerprint = self._fingerprint()
        self._outer = build_server_context(self.certfile, self.keyfile)
        self._outer.sni_callback = self._on_client_hello
        self._current = self._outer
        self._next_check = clock() + self._interval
        self._reloads = 0

    @property
    def context(self) -> ssl.SSLContext:
        """The context to give the server: wrap every accepted socket with this one."""
        return self._outer

    @property
    def reloads(self) -> int:
        """How many times new files were loaded since start (for metrics and tests)."""
        return self._reloads

    def current(self) -> ssl.SSLContext:
        """The context new handshakes use, after checking the files if it is time to."""
        now = self._clock()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return self._current
        try:
            if now >= self._next_check:
                self._next_check = now + self._interval
                self._reload_if_changed()
        finally:
            self._lock.release()
        return self._current

    def reload_now(self) -> bool:
        """Check the files immediately; True when a new certificate was loaded."""
        with self._lock:
            self._next_check = self._clock() + self._interval
            return self._reload_if_changed()

    def _on_client_hello(
        self, conn: _SSLConn, server_name: str | None, _outer: ssl.SSLContext
    ) -> None:
        """SNI callback: runs on every handshake, ``server_name`` is None without SNI.

        An exception here would abort the handshake with a fatal alert, so
        nothing may escape: on any surprise, serve with what we have.
        """
        try:
            inner = self.current()
            if conn.context is not inner:
                conn.context = inner
        except Exception:
            log.exception("tls: certificate switch failed; serving the loaded certificate")

    def _reload_if_changed(self) -> bool:
        """Load the files if their fingerprint changed; call with the lock held.

        Fingerprint first, then load: if the files change in between, the next
        check sees a new fingerprint and loads again, which is harmless; the
        other order could record the new fingerprint with the old contents.
        """
        seen = self._fingerprint()
        if seen == self._seen:
            return False
        self._seen = seen
        fresh = seen if isinstance(seen, str) else self._load()
        if isinstance(fresh, str):
            log.error(
                "tls: cannot load new certificate files; still serving the previous "
                "certificate: %s",
                fresh,
                extra={"certfile": str(self.certfile), "keyfile": str(self.keyfile)},
            )
            return False
        self._current = fresh
        self._reloads += 1
        log.info(
            "tls: reloaded certificate %s",
            self.certfile,
            extra={"certfile": str(self.certfile), "reloads": self._reloads},
        )
        return True

    def _load(self) -> ssl.SSLContext | str:
        """A fresh context, or why the files cannot make one."""
        try:
            return build_server_context(self.certfile, self.keyfile)
        except CertificateError as exc:
            return str(exc)

    def _fingerprint(self) -> _Fingerprint:
        """Stat both files; a string describes why they cannot be stat'ed."""
        try:
            return (_file_state(self.certfile), _file_state(self.keyfile))
        except OSError as exc:
            return f"cannot stat {exc.filename}: {exc.strerror}"


def _file_state(path: Path) -> _FileState:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _check_readable(path: Path) -> None:
    """Name the one file that is missing or unreadable, with the fix."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError as exc:
        raise CertificateError(
            f"{path} does not exist; run `spotpack certs` (or `make certs`) or fix the path"
        ) from exc
    except PermissionError as exc:
        raise CertificateError(
            f"{path} is not readable by uid {os.getuid()}; fix its owner or mode"
        ) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror or exc}") from exc
