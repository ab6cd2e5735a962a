"""Build a kubernetes ``ApiClient`` from wherever the configuration is.

The standard order, as kubectl and client-go use it: an explicit kubeconfig
path, else the in-cluster service account, else ``$KUBECONFIG`` (a
``:``-separated list), else ``~/.kube/config``. When nothing works the error
names every place tried, so a person can tell at once why the service cannot
reach its cluster.

Each client gets its own ``Configuration`` (never the process-wide default),
with a connection pool sized for the service's concurrency: urllib3 otherwise
keeps only a few connections per host and opens and drops the rest, which is
what makes a naive extender bind slow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.config import ConfigException, load_incluster_config, load_kube_config

from spotpack.errors import ClusterUnavailable

DEFAULT_POOL_MAXSIZE = 32
DEFAULT_KUBECONFIG = "~/.kube/config"
_LOAD_ERRORS = (ConfigException, OSError, yaml.YAMLError, ValueError, KeyError, TypeError)


def _new_configuration(pool_maxsize: int) -> Any:
    cfg = client.Configuration()
    cfg.connection_pool_maxsize = pool_maxsize
    return cfg


def _from_kubeconfig(path: str, context: str | None, pool_maxsize: int) -> client.ApiClient:
    cfg = _new_configuration(pool_maxsize)
    load_kube_config(
        config_file=path, context=context, client_configuration=cfg, persist_config=False
    )
    return client.ApiClient(configuration=cfg)


def _kubeconfig_candidates() -> tuple[str, list[str]]:
    """The kubeconfig to load by default (as one merger string) and what it is called."""
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p]
    if paths:
        existing = [p for p in paths if Path(p).expanduser().is_file()]
        return os.pathsep.join(existing), [f"KUBECONFIG={env}"]
    default = str(Path(DEFAULT_KUBECONFIG).expanduser())
    return (default if Path(default).is_file() else ""), [default]


def load_api_client(
    kubeconfig: str | None = None,
    *,
    context: str | None = None,
    pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
) -> client.ApiClient:
    """An ``ApiClient`` for the cluster this process should talk to.

    An explicit ``kubeconfig`` that fails to load is an error by itself (no
    silent fallback to another cluster). Raises :class:`ClusterUnavailable`
    naming everything tried.
    """
    if kubeconfig:
        try:
            return _from_kubeconfig(kubeconfig, context, pool_maxsize)
        except _LOAD_ERRORS as exc:
            raise ClusterUnavailable(f"cannot load kubeconfig {kubeconfig}: {exc}") from exc
    tried: list[str] = []
    cfg = _new_configuration(pool_maxsize)
    try:
        load_incluster_config(client_configuration=cfg)
        return client.ApiClient(configuration=cfg)
    except _LOAD_ERRORS as exc:
        tried.append(f"in-cluster config ({exc})")
    path, names = _kubeconfig_candidates()
    if path:
        try:
            return _from_kubeconfig(path, context, pool_maxsize)
        except _LOAD_ERRORS as exc:
            raise ClusterUnavailable(f"cannot load kubeconfig {path}: {exc}") from exc
    tried.extend(f"{name} (not found)" for name in names)
    raise ClusterUnavailable("no Kubernetes configuration found; tried: " + "; ".join(tried))


def api_client_for_url(url: str, *, pool_maxsize: int = DEFAULT_POOL_MAXSIZE) -> client.ApiClient:
    """A client for a plain-http API server without credentials (the dev cluster)."""
    cfg = _new_configuration(pool_maxsize)
    cfg.host = url.rstrip("/")
    return client.ApiClient(configuration=cfg)
