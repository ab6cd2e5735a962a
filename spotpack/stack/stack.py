"""The local stack: an embedded cluster (or a given one) and the three services on it.

Order matters, and so does undoing it: pre-flight checks first (nothing
started, nothing to undo), then certificates, the cluster, and the services;
any failure on the way stops everything already started before the error
reaches the caller, so no half-started stack is ever left running. The
embedded cluster runs in this process (a thread); the services are child
processes started the way users start them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import spotpack
from spotpack.errors import ConfigError
from spotpack.stack.children import Child, stop_all, wait_ready
from spotpack.stack.errors import ServiceError
from spotpack.stack.plan import plan_services
from spotpack.stack.preflight import Checked, preflight
from spotpack.stack.settings import EXTENDER, PROVISIONER, WEBHOOK, StackSettings

if TYPE_CHECKING:
    from spotpack.devcluster import DevCluster

log = logging.getLogger(__name__)

OWN_NAMESPACE = "spotpack-system"


@dataclass(frozen=True)
class Endpoints:
    """Where everything of a started stack is; every path is absolute.

    ``provisioner_url`` is None when the stack runs without a provisioner
    (``cloud="none"``).
    """

    api_url: str
    kubeconfig: Path
    webhook_url: str
    extender_url: str
    provisioner_url: str | None
    ca_file: Path
    logs_dir: Path


class Stack:
    """Start and stop the whole local stack; use as ``with Stack(settings) as stack:``.

    ``start()`` returns the :class:`Endpoints` (also ``stack.endpoints``).
    ``python``, ``cwd`` and ``env`` default to this interpreter, directory and
    environment; tests and tools pass their own.
    """

    def __init__(
        self,
        settings: StackSettings,
        *,
        python: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cwd = (cwd or Path.cwd()).resolve()
        self.settings = absolute(settings, self.cwd)
        self.python = python or sys.executable
        self.env = dict(os.environ if env is None else env)
        self._cluster: DevCluster | None = None
        self._children: list[Child] = []
        self._endpoints: Endpoints | None = None
        self.seed: tuple[Path, ...] = ()
        """The seed files the embedded cluster was loaded from (after start)."""

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Endpoints:
        """Check, then start the cluster and every service and wait until each is ready."""
        if self._endpoints is not None:
            return self._endpoints
        checked = preflight(self.settings, cwd=self.cwd, source_root=_source_root())
        self.seed = checked.seed
        try:
            endpoints = self._start(checked)
        except BaseException:
            self.stop()
            raise
        self._endpoints = endpoints
        return endpoints

    def stop(self) -> None:
        """Stop every service (SIGTERM, SIGKILL after the timeout), then the cluster."""
        children, self._children = self._children, []
        stop_all(children, self.settings.stop_timeout)
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.stop()
        self._endpoints = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- while running -----------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("the stack is not running; call start() first")
        return self._endpoints

    @property
    def cluster(self) -> DevCluster | None:
        """The embedded cluster while it runs (None with a kubeconfig): its ``store``
        takes direct writes, much faster than the API for a tool that seeds thousands."""
        return self._cluster

    @property
    def pids(self) -> dict[str, int]:
        """Service -> pid of its process (also its process group id)."""
        return {child.name: child.pid for child in self._children}

    def check(self) -> None:
        """Raise :class:`ServiceError` when a service has exited on its own."""
        for child in self._children:
            code = child.exit_code()
            if code is not None:
                reason = f"exited unexpectedly with code {code}"
                raise ServiceError(child.name, reason, child.log_path, child.tail())

    # --- steps -------------------------------------------------------------------------------

    def _start(self, checked: Checked) -> Endpoints:
        settings = self.settings
        _make_dirs(settings.workdir, settings.logs_dir)
        if checked.generate_certs:
            from spotpack.tls.certs import generate

            generate(settings.certs_dir)
            log.info("certificates generated", extra={"dir": str(settings.certs_dir)})
        if settings.kubeconfig is not None:
            kubeconfig, api_url = settings.kubeconfig, checked.api_url or ""
        else:
            kubeconfig, api_url = self._start_cluster(checked.manifests)
        ca_file = settings.certs_dir / "ca.crt"
        specs = plan_services(
            settings,
            kubeconfig=kubeconfig,
            cert_file=settings.certs_dir / "tls.crt",
            key_file=settings.certs_dir / "tls.key",
            base_env=self.env,
        )
        for spec in specs:
            self._children.append(
                Child.spawn(
                    spec,
                    python=self.python,
                    log_dir=settings.logs_dir,
                    base_env=self.env,
                    cwd=self.cwd,
                )
            )
        deadline = time.monotonic() + settings.ready_timeout
        for child in self._children:
            problem = wait_ready(child, ca_file, deadline)
            if problem is not None:
                raise ServiceError(child.name, problem, child.log_path, child.tail())
            log.info("service ready", extra={"service": child.name, "url": child.spec.url})
        urls = {spec.name: spec.url for spec in specs}
        return Endpoints(
            api_url=api_url,
            kubeconfig=kubeconfig,
            webhook_url=urls[WEBHOOK],
            extender_url=urls[EXTENDER],
            provisioner_url=urls.get(PROVISIONER),
            ca_file=ca_file,
            logs_dir=settings.logs_dir,
        )

    def _start_cluster(self, manifests: tuple[dict[str, Any], ...]) -> tuple[Path, str]:
        from spotpack.devcluster import DevCluster, Store

        cluster = DevCluster(
            Store(),
            host=self.settings.host,
            port=self.settings.api_port,
            seed=with_own_namespace(manifests),
        )
        self._cluster = cluster
        cluster.start()
        kubeconfig = cluster.write_kubeconfig(self.settings.workdir / "kubeconfig")
        return kubeconfig, cluster.url


def absolute(settings: StackSettings, cwd: Path) -> StackSettings:
    """The same settings with every path made absolute against ``cwd``.

    Children may run elsewhere and the banner's paths must work when pasted
    into another terminal.
    """
    return replace(
        settings,
        kubeconfig=cwd / settings.kubeconfig if settings.kubeconfig else None,
        seed=tuple(cwd / p for p in settings.seed) if settings.seed is not None else None,
        certs_dir=cwd / settings.certs_dir,
        workdir=cwd / settings.workdir,
    )


def with_own_namespace(manifests: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The seed plus ``spotpack-system`` (events, leases) unless the seed has it."""
    names = {m.get("metadata", {}).get("name") for m in manifests if m.get("kind") == "Namespace"}
    extra = [] if OWN_NAMESPACE in names else [_namespace(OWN_NAMESPACE)]
    return [*manifests, *extra]


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _make_dirs(*dirs: Path) -> None:
    for path in dirs:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {path} ({exc.strerror or exc}); pick another --workdir"
            ) from exc


def _source_root() -> Path:
    """The checkout spotpack runs from (an editable install): its deploy/examples is the seed."""
    return Path(spotpack.__file__).resolve().parents[1]
