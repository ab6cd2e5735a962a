"""Run a WSGI service under gunicorn, programmatically, with hot-reloading TLS.

The services (webhook, extender) hand us their app as a gunicorn-style URI
string such as ``"webhook.app:create_app()"``: the core must not import the
services, and each gunicorn worker builds its own app after the fork (apps
that start watch threads must not start them in the master).

Choices, and why:

- ``gthread`` workers with keep-alive: the API server and kube-scheduler reuse
  connections, and a TLS handshake per request would dominate the latency the
  scheduler waits for. By default a thread stays on a busy connection
  (:mod:`spotpack.stickythread`), which halves the per-request overhead.
- TLS goes through gunicorn's ``ssl_context`` hook with a
  :class:`~spotpack.tls.reload.ReloadingContext`, so rotated certificate files
  are served without a restart. gunicorn 27 calls the hook for every accepted
  connection, so the hook returns one cached context per worker process.
- gunicorn's logs go to the stdlib loggers ``gunicorn.error`` and
  ``gunicorn.access`` and propagate to the root logger: whatever the process
  configured there (JSON in production) formats them. Access logs are off by
  default; the scheduler calls us thousands of times per second.
- The control socket gunicorn 25+ opens by default (``~/.gunicorn/gunicorn.ctl``)
  is disabled: two servers on one host would fight over that path, and a
  webhook has no use for runtime worker management.
- Start-up problems (port in use, unreadable certificates, unknown app module)
  are checked before gunicorn starts, as one-line :class:`ConfigError` messages
  that name the setting to change, instead of gunicorn's retry loop and traces.
"""

from __future__ import annotations

import errno
import http.client
import importlib.util
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spotpack.errors import CertificateError, ConfigError
from spotpack.logs import configure_logging
from spotpack.tls.reload import DEFAULT_INTERVAL_MS, ReloadingContext, build_server_context

log = logging.getLogger(__name__)


WORKER_CLASSES = {"gthread": "gthread", "sticky": "spotpack.stickythread.StickyThreadWorker"}
"""Our names for gunicorn worker classes -> what gunicorn's ``worker_class`` setting takes."""


class ServeSettings(BaseModel):
    """How to serve one app. Services fill it from their own typed settings.

    ``env_prefix`` is used only in error messages, so a message names the
    variable the operator actually sets (``SPOTPACK_WEBHOOK_PORT``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=8, ge=1)
    worker_class: Literal["gthread", "sticky"] = "sticky"
    """``sticky`` is ``gthread`` whose threads stay on busy keep-alive connections
    (:mod:`spotpack.stickythread`); ``gthread`` is gunicorn's own."""
    keepalive: int = Field(default=30, ge=0, description="seconds an idle connection stays open")
    timeout: int = Field(default=30, ge=1, description="seconds before a silent worker is killed")
    graceful_timeout: int = Field(default=10, ge=0, description="seconds to finish on SIGTERM")
    certfile: Path | None = None
    keyfile: Path | None = None
    reload_interval_ms: int = Field(default=DEFAULT_INTERVAL_MS, ge=0)
    max_request_line: int = Field(default=4094, ge=0, le=8190)
    max_request_fields: int = Field(default=100, ge=0, le=32768)
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    proc_name: str = "spotpack"
    env_prefix: str = "SPOTPACK_"
    shared_metrics: bool = False
    """Workers count Prometheus metrics in files of one directory (see :func:`serve`),
    so any worker's /metrics shows the whole server's figures."""

    @model_validator(mode="after")
    def _tls_pair(self) -> ServeSettings:
        """Half a TLS configuration is a mistake, never a request for plain HTTP."""
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError(
                f"set both {self.env_prefix}CERT_FILE and {self.env_prefix}KEY_FILE "
                "for TLS, or neither for plain HTTP"
            )
        return self

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (plain HTTP is for sidecars and local runs)."""
        return self.certfile is not None


def serve(app_uri: str, settings: ServeSettings) -> None:
    """Check the settings, then run gunicorn until SIGTERM/SIGINT.

    Returns normally in the master after a clean shutdown. Worker processes
    leave through ``SystemExit`` raised by gunicorn, as they must: a forked
    worker must never return into the caller's code.
    """
    check_startup(app_uri, settings)
    _ensure_log_handler()
    master_pid = os.getpid()
    metrics_dir = _shared_metrics_dir(settings) if settings.shared_metrics else None
    application = _GunicornApplication(app_uri, gunicorn_options(settings))
    try:
        application.run()
    except SystemExit as exc:
        if os.getpid() == master_pid and exc.code in (0, None):
            return
        raise
    finally:
        if metrics_dir is not None and os.getpid() == master_pid:
            shutil.rmtree(metrics_dir, ignore_errors=True)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus_client's multiprocess mode keeps each process's values."""


def _shared_metrics_dir(settings: ServeSettings) -> Path | None:
    """A fresh directory for the workers' metric files, named in the environment before
    gunicorn forks (prometheus_client picks its mode when a worker first imports it).

    A directory the operator already named is used as it is (and kept); the one made
    here is removed when the server stops. Returns the directory to remove, if any.
    """
    if os.environ.get(MULTIPROC_ENV):
        return None
    made = Path(tempfile.mkdtemp(prefix=f"{settings.proc_name}-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def check_startup(app_uri: str, settings: ServeSettings) -> None:
    """Everything that would make gunicorn fail to start, as one-line ConfigErrors."""
    _check_app_module(app_uri)
    if settings.certfile is not None and settings.keyfile is not None:
        _check_tls_files(settings.certfile, settings.keyfile, settings.env_prefix)
    _check_port_free(settings.host, settings.port, settings.env_prefix)


def gunicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """Translate our settings into gunicorn setting names (one place to read them)."""
    options: dict[str, Any] = {
        "bind": [_bind_address(settings.host, settings.port)],
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": WORKER_CLASSES[settings.worker_class],
        "keepalive": settings.keepalive,
        "timeout": settings.timeout,
        "graceful_timeout": settings.graceful_timeout,
        "limit_request_line": settings.max_request_line,
        "limit_request_fields": settings.max_request_fields,
        "accesslog": "-" if settings.access_log else None,
        "loglevel": settings.log_level,
        "logger_class": StdlibLogger,
        "proc_name": settings.proc_name,
        "preload_app": False,
        "control_socket_disable": True,
    }
    if settings.certfile is not None and settings.keyfile is not None:
        options["certfile"] = str(settings.certfile)
        options["keyfile"] = str(settings.keyfile)
        options["ssl_context"] = ReloadingContextHook(
            settings.certfile, settings.keyfile, settings.reload_interval_ms
        )
    return options


class ReloadingContextHook:
    """gunicorn's ``ssl_context(config, default_ssl_context_factory)`` hook.

    gunicorn calls it for every accepted connection, so it keeps one
    :class:`ReloadingContext` per process (created lazily after the fork;
    the pid check makes it safe even if the master ever called it first).
    """

    def __init__(self, certfile: Path, keyfile: Path, interval_ms: int) -> None:
        self._certfile = certfile
        self._keyfile = keyfile
        self._interval_ms = interval_ms
        self._lock = threading.Lock()
        self._owner_pid = -1
        self._reloading: ReloadingContext | None = None

    def __call__(self, config: object, default_ssl_context_factory: object) -> ssl.SSLContext:
        """Return this process's reloading context; gunicorn's default is not used."""
        reloading = self._reloading
        if reloading is None or self._owner_pid != os.getpid():
            with self._lock:  # the first connections may arrive on several threads at once
                if self._reloading is None or self._owner_pid != os.getpid():
                    self._reloading = ReloadingContext(
                        self._certfile, self._keyfile, interval_ms=self._interval_ms
                    )
                    self._owner_pid = os.getpid()
                reloading = self._reloading
        return reloading.context


class StdlibLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn logger that adds no handlers of its own and propagates to root.

    The process's logging configuration (JSON in production) then formats
    gunicorn's lines like ours. Access lines carry key/value ``extra`` fields
    so a JSON formatter can emit them as fields, not as one string.
    """

    def setup(self, cfg: Any) -> None:
        """Levels only; handlers belong to whoever configured the root logger."""
        self.cfg = cfg
        self.loglevel = self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)
        for logger in (self.error_log, self.access_log):
            logger.propagate = True

    @property
    def access_log_enabled(self) -> bool:
        """gunicorn skips building access data when this is False (the default)."""
        return bool(self.cfg.accesslog)

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """One line per request with method, path, status and duration as fields."""
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {
            "method": atoms.get("m"),
            "path": atoms.get("U"),
            "status": atoms.get("s"),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "remote": atoms.get("h"),
        }
        self.access_log.info(
            "%s %s %s %.1fms",
            fields["method"],
            fields["path"],
            fields["status"],
            fields["duration_ms"],
            extra=fields,
        )


class _GunicornApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn's programmatic entry point: settings from a dict, app from a URI."""

    def __init__(self, app_uri: str, options: dict[str, Any]) -> None:
        self._app_uri = app_uri
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return util.import_app(self._app_uri)


def wait_until_serving(url: str, ca_file: Path | str | None = None, timeout: float = 10.0) -> int:
    """Poll ``url`` until the server answers HTTP; return the status code.

    Any HTTP status counts (a 503 from ``/readyz`` still proves the server is
    up). Raises ``TimeoutError`` with the last error after ``timeout`` seconds.
    For https URLs the certificate is verified against ``ca_file``; a
    verification failure is raised at once, since waiting will not fix it.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname is None:
        raise ValueError(f"not an http(s) URL: {url!r}")
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{url} did not answer within {timeout:g}s: {last_error}")
        try:
            return get_status(url, ca_file, min(remaining, 2.0))
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))


def get_status(url: str, ca_file: Path | str | None, timeout: float) -> int:
    """One GET without proxies (http.client ignores *_proxy variables, urllib does not);
    https is verified against ``ca_file``."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _check_app_module(app_uri: str) -> None:
    """Find the app's module without importing it (the workers import it)."""
    module = app_uri.split(":", 1)[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            f"app module {module!r} (from {app_uri!r}) cannot be found; "
            "check the app URI and that the package is installed"
        )


def _check_tls_files(certfile: Path, keyfile: Path, env_prefix: str) -> None:
    """Load the pair once now, so a bad path fails at start, not at first handshake."""
    try:
        build_server_context(certfile, keyfile)
    except CertificateError as exc:
        raise ConfigError(f"{exc} (set {env_prefix}CERT_FILE and {env_prefix}KEY_FILE)") from exc


def _check_port_free(host: str, port: int, env_prefix: str) -> None:
    """Try the bind gunicorn will do, with the same SO_REUSEADDR.

    With SO_REUSEADDR, Linux refuses the bind only when a socket is listening
    there, not for leftover TIME_WAIT connections: the same rule gunicorn meets.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(_bind_error(host, port, env_prefix, exc)) from exc


def _bind_error(host: str, port: int, env_prefix: str, exc: OSError) -> str:
    """A one-line message naming the setting to change for each common bind failure."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; set {env_prefix}PORT"
    if exc.errno == errno.EACCES:
        return f"port {port} needs privileges; set {env_prefix}PORT to 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"address {host!r} is not on this machine; set {env_prefix}HOST"
    return f"cannot bind {host}:{port} ({exc.strerror or exc}); set {env_prefix}HOST"


def _bind_address(host: str, port: int) -> str:
    """gunicorn wants IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ensure_log_handler() -> None:
    """Give the root logger a plain stderr handler if nobody configured logging.

    gunicorn's own handlers are disabled (see :class:`StdlibLogger`); without
    this, its INFO lines ("Listening at ...") would vanish in a bare process.
    """
    if not logging.getLogger().handlers:
        configure_logging()
