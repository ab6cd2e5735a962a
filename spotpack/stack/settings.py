"""What ``spotpack run`` (and ``spotpack simulate``) start, as one frozen value.

A dataclass and not pydantic-settings: these settings come from flags or from
another tool's code, never from ``SPOTPACK_*`` variables (those belong to the
services, and the services still read them). Validation happens here, once,
so a bad port or an unknown service name in ``extra_env`` is a one-line
:class:`~spotpack.errors.ConfigError` before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spotpack.errors import ConfigError

WEBHOOK = "webhook"
EXTENDER = "extender"
PROVISIONER = "provisioner"
API = "api"
SERVICES: tuple[str, ...] = (WEBHOOK, EXTENDER, PROVISIONER)
"""The child processes, in start order (the provisioner acts, so it starts last)."""

PORT_FLAGS: dict[str, str] = {
    WEBHOOK: "--webhook-port",
    EXTENDER: "--extender-port",
    PROVISIONER: "--provisioner-port",
    API: "--api-port",
}
"""The ``spotpack run`` flag that changes each port, for error messages."""

Cloud = Literal["local", "none"]


@dataclass(frozen=True)
class StackSettings:
    """Where the three services and the embedded cluster listen, and what they read.

    ``kubeconfig=None`` runs the embedded in-memory cluster seeded from
    ``seed``; a path runs everything against that cluster instead (no seeding).
    ``seed=None`` means ``deploy/examples/*.yaml`` of the working directory or,
    failing that, of the source checkout; ``()`` is an empty cluster.
    ``cloud="none"`` leaves the provisioner out. ``extra_env`` adds variables
    per service (``{"provisioner": {"SPOTPACK_PROVISIONER_BATCH_IDLE_SECONDS":
    "0.2"}}``); the ports, certificates and kubeconfig are passed as flags and
    always win over it.
    """

    host: str = "127.0.0.1"
    webhook_port: int = 8443
    extender_port: int = 8444
    provisioner_port: int = 8080
    api_port: int = 0
    """The embedded API server's port; 0 picks a free one."""
    kubeconfig: Path | None = None
    seed: tuple[Path, ...] | None = None
    certs_dir: Path = Path("certs/out")
    workdir: Path = Path(".run")
    """Holds the generated kubeconfig and ``logs/<service>.log``."""
    cloud: Cloud = "local"
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ready_timeout: float = 60.0
    """Seconds each service has to answer 200 on ``/readyz``."""
    stop_timeout: float = 15.0
    """Seconds between SIGTERM and SIGKILL for each service's process group."""

    def __post_init__(self) -> None:
        for name in SERVICES:
            port = self.port_of(name)
            if not 1 <= port <= 65535:
                raise ConfigError(
                    f"{name} port {port} is out of range; pick 1-65535 with {PORT_FLAGS[name]}"
                )
        if not 0 <= self.api_port <= 65535:
            raise ConfigError(
                f"api port {self.api_port} is out of range; pick 0 (any free port) to 65535 "
                f"with {PORT_FLAGS[API]}"
            )
        _check_distinct(self)
        if self.cloud not in ("local", "none"):
            raise ConfigError(f"cloud {self.cloud!r} is not valid; allowed: local, none")
        unknown = sorted(set(self.extra_env) - set(SERVICES))
        if unknown:
            raise ConfigError(
                f"extra_env names unknown services {', '.join(unknown)}; "
                f"allowed: {', '.join(SERVICES)}"
            )
        if self.ready_timeout <= 0 or self.stop_timeout <= 0:
            raise ConfigError("ready_timeout and stop_timeout must be positive seconds")

    @property
    def services(self) -> tuple[str, ...]:
        """The services this stack runs, in start order."""
        return tuple(s for s in SERVICES if s != PROVISIONER or self.cloud != "none")

    @property
    def listeners(self) -> tuple[str, ...]:
        """The services and, when a fixed port is asked for, the embedded API server: each
        name whose port this stack binds, so each must be free and given to no other."""
        return (*self.services, *((API,) if self.embedded and self.api_port else ()))

    @property
    def embedded(self) -> bool:
        """Whether the in-memory cluster runs (no kubeconfig given)."""
        return self.kubeconfig is None

    def port_of(self, name: str) -> int:
        """The port of a service or of ``api``."""
        ports = {
            WEBHOOK: self.webhook_port,
            EXTENDER: self.extender_port,
            PROVISIONER: self.provisioner_port,
            API: self.api_port,
        }
        return ports[name]

    @property
    def logs_dir(self) -> Path:
        """Where each service's ``<service>.log`` goes (under ``workdir``)."""
        return self.workdir / "logs"


def _check_distinct(settings: StackSettings) -> None:
    """Two services on one port: the second would fail to bind after the first started."""
    seen: dict[int, str] = {}
    for name in settings.listeners:
        port = settings.port_of(name)
        if port in seen:
            raise ConfigError(
                f"port {port} is given to both {seen[port]} and {name}; "
                f"pick another with {PORT_FLAGS[name]}"
            )
        seen[port] = name
