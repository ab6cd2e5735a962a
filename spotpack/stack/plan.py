"""The command line and environment of each service, decided without starting anything.

Pure: given the settings, the kubeconfig and the certificate paths, return
what to run. The services are started exactly as a user would start them
(``python -m spotpack.cli <service> --flags``), so ``spotpack run`` exercises
the same code paths as a deployment and the core never imports a service.

Ports, certificates and the kubeconfig go on the command line, where they
override any ``SPOTPACK_<SERVICE>_*`` variable left in the shell: a stale
``SPOTPACK_WEBHOOK_PORT`` must not make the banner lie. Defaults that suit a
laptop (one webhook worker) are set only when the shell does not set them,
and ``extra_env`` from the settings is applied last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spotpack.stack.settings import EXTENDER, PROVISIONER, WEBHOOK, StackSettings

LOCAL_DEFAULTS: dict[str, dict[str, str]] = {
    WEBHOOK: {"SPOTPACK_WEBHOOK_WORKERS": "1"},
    EXTENDER: {},
    PROVISIONER: {},
}
"""One webhook worker is plenty on a laptop and starts twice as fast as the default two."""


@dataclass(frozen=True)
class ServiceSpec:
    """One child process to start: its argv (after the interpreter), env additions, URL."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    url: str
    """Base URL clients use, e.g. ``https://127.0.0.1:8443``."""

    @property
    def ready_url(self) -> str:
        return f"{self.url}/readyz"

    @property
    def tls(self) -> bool:
        return self.url.startswith("https://")


def client_host(host: str) -> str:
    """The address a client on this machine dials for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard bind to loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def service_url(settings: StackSettings, name: str) -> str:
    scheme = "http" if name == PROVISIONER else "https"
    return f"{scheme}://{client_host(settings.host)}:{settings.port_of(name)}"


def plan_services(
    settings: StackSettings,
    *,
    kubeconfig: Path,
    cert_file: Path,
    key_file: Path,
    base_env: Mapping[str, str],
) -> tuple[ServiceSpec, ...]:
    """What to start for each service of ``settings.services``, in start order.

    ``base_env`` is the environment the children inherit; it is read only to
    leave the user's own ``SPOTPACK_*`` choices alone.
    """
    tls = ("--cert-file", str(cert_file), "--key-file", str(key_file))
    common = ("--host", settings.host, "--kubeconfig", str(kubeconfig))
    args: dict[str, tuple[str, ...]] = {
        WEBHOOK: (WEBHOOK, *common, "--port", str(settings.webhook_port), *tls),
        EXTENDER: (EXTENDER, *common, "--port", str(settings.extender_port), *tls),
        PROVISIONER: (
            PROVISIONER,
            *common,
            "--port",
            str(settings.provisioner_port),
            "--cloud",
            "local",
            "--no-leader-election",
        ),
    }
    specs = []
    for name in settings.services:
        env = {k: v for k, v in LOCAL_DEFAULTS[name].items() if k not in base_env}
        env["KUBECONFIG"] = str(kubeconfig)
        env.update(settings.extra_env.get(name, {}))
        specs.append(ServiceSpec(name, args[name], env, service_url(settings, name)))
    return tuple(specs)
