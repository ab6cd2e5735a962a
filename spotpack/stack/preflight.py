"""Everything that would make ``spotpack run`` fail half-way, checked before it starts.

A port in use, a missing kubeconfig, a corrupt certificate or an unreadable
seed file would otherwise surface as one service dying while the others run,
with the reason buried in a log file. Checked first, each is one line on
stderr naming the file or setting and the fix, and nothing is left running.

The checks only read (files, and a bind attempt on each port that is closed
at once); deciding whether certificates must be generated is returned, not
done, so the caller acts.
"""

from __future__ import annotations

import errno
import socket
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spotpack.errors import CertificateError, ConfigError
from spotpack.stack.settings import PORT_FLAGS, StackSettings

Obj = dict[str, Any]
SEED_DIR = Path("deploy/examples")
SEED_GLOB = "*.yaml"
_CERT_FILES = ("ca.crt", "tls.crt", "tls.key")
"""What serving needs; ``ca.key`` is only needed to re-sign, so its absence is fine."""


@dataclass(frozen=True)
class Checked:
    """What the pre-flight learned that starting needs."""

    seed: tuple[Path, ...]
    manifests: tuple[Obj, ...]
    """Parsed seed manifests (empty with a kubeconfig: a real cluster is never seeded)."""
    api_url: str | None
    """The server of the given kubeconfig's current context; None for the embedded cluster."""
    generate_certs: bool
    """The certificate directory is missing or empty: make a CA and serving pair there."""


def preflight(settings: StackSettings, *, cwd: Path, source_root: Path | None) -> Checked:
    """Run every check in the order a person would fix them; raise on the first problem."""
    check_ports(settings)
    api_url: str | None = None
    if settings.kubeconfig is not None:
        api_url = kubeconfig_server(settings.kubeconfig)
        check_reachable(api_url, settings.kubeconfig)
    generate = certs_missing(settings.certs_dir)
    if not generate:
        check_certs(settings.certs_dir)
    seed: tuple[Path, ...] = ()
    manifests: tuple[Obj, ...] = ()
    if settings.embedded:
        seed = resolve_seed(settings.seed, cwd=cwd, source_root=source_root)
        manifests = tuple(load_seed(seed))
    return Checked(seed, manifests, api_url, generate)


# --- ports -----------------------------------------------------------------------------------


def check_ports(settings: StackSettings) -> None:
    """Each port the stack will listen on must be free on its host."""
    for name in settings.listeners:
        port = settings.port_of(name)
        problem = port_problem(settings.host, port)
        if problem is not None:
            raise ConfigError(port_message(name, port, problem))


def port_problem(host: str, port: int) -> int | None:
    """The errno a server binding ``host:port`` would meet, or None when it would succeed.

    Binds with SO_REUSEADDR, as gunicorn and werkzeug do: only a listening
    socket refuses the bind, not connections left in TIME_WAIT.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            return errno.EADDRNOTAVAIL
        except OSError as exc:
            return exc.errno or errno.EINVAL
    return None


def port_message(name: str, port: int, problem: int) -> str:
    """One line naming the port, whose it is, the flag and the fix."""
    flag = PORT_FLAGS[name]
    if problem == errno.EADDRINUSE:
        return (
            f"port {port} ({name}, {flag}) is in use; stop what uses it or pick another with {flag}"
        )
    if problem == errno.EACCES:
        return f"port {port} ({name}, {flag}) needs privileges; pick 1024 or above with {flag}"
    if problem == errno.EADDRNOTAVAIL:
        return f"the host address is not on this machine ({name}, port {port}); fix --host"
    return f"cannot listen on port {port} ({name}, {flag}): {errno.errorcode.get(problem, problem)}"


# --- kubeconfig ------------------------------------------------------------------------------

_KUBECONFIG_FIX = "fix --kubeconfig (or $KUBECONFIG), or unset both to run the embedded cluster"


def kubeconfig_server(path: Path) -> str:
    """The API server URL of the kubeconfig's current context; a ConfigError when unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"kubeconfig {path} does not exist; {_KUBECONFIG_FIX}") from None
    except IsADirectoryError:
        raise ConfigError(f"kubeconfig {path} is a directory; {_KUBECONFIG_FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"kubeconfig {path} cannot be read ({exc}); {_KUBECONFIG_FIX}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not YAML; {_KUBECONFIG_FIX}") from exc
    server = server_of(doc)
    if server is None:
        raise ConfigError(
            f"kubeconfig {path} has no cluster server for its current context; {_KUBECONFIG_FIX}"
        )
    return server


REACH_TIMEOUT = 3.0
"""Seconds to wait for a TCP connection to the kubeconfig's API server at start."""


def check_reachable(url: str, kubeconfig: Path, timeout: float = REACH_TIMEOUT) -> None:
    """One TCP connection to the API server, so an unreachable cluster (VPN down, stale
    context) is one line now instead of services retrying for a minute."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"the API server {url} of kubeconfig {kubeconfig} is not reachable ({reason}); "
            "check the cluster or your network, or run the embedded cluster with --embedded"
        ) from exc


def server_of(doc: object) -> str | None:
    """Follow ``current-context`` -> context -> cluster -> ``server``; None if a link is missing."""
    if not isinstance(doc, dict):
        return None
    current = doc.get("current-context")
    context = _named(doc.get("contexts"), current).get("context") or {}
    cluster_name = context.get("cluster") if isinstance(context, dict) else None
    cluster = _named(doc.get("clusters"), cluster_name).get("cluster") or {}
    server = cluster.get("server") if isinstance(cluster, dict) else None
    return server if isinstance(server, str) and server else None


def _named(items: object, name: object) -> Obj:
    """The entry called ``name`` of a kubeconfig list, or ``{}``."""
    if not isinstance(items, list) or not isinstance(name, str):
        return {}
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


# --- certificates ----------------------------------------------------------------------------


def certs_missing(certs_dir: Path) -> bool:
    """Generate when the directory does not exist or holds none of the files serving needs.

    A directory with some files is someone's certificates: never overwritten,
    only checked.
    """
    if not certs_dir.exists():
        return True
    names = (*_CERT_FILES, "ca.key")
    return certs_dir.is_dir() and not any((certs_dir / n).exists() for n in names)


def check_certs(certs_dir: Path) -> None:
    """ca.crt, tls.crt and tls.key readable, matching, signed by the CA, not expired."""
    from spotpack.tls.certs import (
        days_left,
        key_matches_cert,
        load_certificate,
        load_private_key,
        verify_issued_by,
    )

    fix = f"regenerate with `spotpack certs --out {certs_dir}` (or `make certs`)"
    if not certs_dir.is_dir():
        raise ConfigError(f"certificates directory {certs_dir} is not a directory; fix --certs-dir")
    ca, cert, key = (certs_dir / n for n in _CERT_FILES)
    for path, load in ((ca, load_certificate), (cert, load_certificate), (key, load_private_key)):
        _readable(path, fix)
        try:
            load(path)
        except CertificateError as exc:
            kind = "private key" if path == key else "certificate"
            if path == ca:  # a new CA is the only way out (and changes the caBundle)
                fix = f"make a new CA: `spotpack certs --out {certs_dir} --new-ca`"
            raise ConfigError(f"{path} is not a usable PEM {kind}; {fix}") from exc
    if not key_matches_cert(cert, key):
        raise ConfigError(f"{key} does not belong to {cert}; {fix}")
    try:
        verify_issued_by(cert, ca)
    except CertificateError as exc:
        raise ConfigError(f"{cert} was not issued by {ca}; {fix}") from exc
    if days_left(cert) <= 0:
        raise ConfigError(f"{cert} has expired; {fix}")


def _readable(path: Path, fix: str) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; {fix}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc}); {fix}") from exc


# --- seed ------------------------------------------------------------------------------------


def resolve_seed(
    seed: Sequence[Path] | None, *, cwd: Path, source_root: Path | None
) -> tuple[Path, ...]:
    """The seed files to load: the given ones, else ``deploy/examples/*.yaml``.

    The default is looked for in the working directory first (a checkout, or
    a copy a user edits), then in the source checkout spotpack runs from.
    """
    if seed is not None:
        for path in seed:
            if not path.is_file():
                raise ConfigError(
                    f"seed file {path} does not exist; pass existing YAML files with --seed"
                )
        return tuple(seed)
    roots = [cwd, *([source_root] if source_root is not None else [])]
    for root in roots:
        found = sorted((root / SEED_DIR).glob(SEED_GLOB))
        if found:
            return tuple(found)
    raise ConfigError(
        f"no seed files: {SEED_DIR}/{SEED_GLOB} not found in {cwd}; "
        "run from the spotpack checkout or pass --seed FILE"
    )


def load_seed(paths: Sequence[Path]) -> list[Obj]:
    """Parse the seed files now, so a typo fails here and not inside the cluster thread."""
    from spotpack.devcluster.resources import resource_for_kind
    from spotpack.devcluster.seed import load_manifests

    try:
        manifests = load_manifests(paths)
    except ConfigError as exc:
        raise ConfigError(" ".join(str(exc).split()) + "; fix the file or pass --seed") from exc
    for manifest in manifests:
        api_version, kind = str(manifest.get("apiVersion", "")), str(manifest.get("kind"))
        if resource_for_kind(api_version, kind) is None:
            raise ConfigError(
                f"seed kind {api_version}/{kind} is not served by the embedded cluster; "
                "remove it from the seed files or pass other files with --seed"
            )
    return manifests
