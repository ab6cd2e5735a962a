"""Seeding the store from manifests: YAML files or lists of dicts.

Seeds are project data (fixtures, ``make run`` scenarios), so an unknown kind
or an unreadable file is a :class:`~spotpack.errors.ConfigError` at start, not
something to skip silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from spotpack.devcluster.errors import ApiError
from spotpack.devcluster.resources import resource_for_kind
from spotpack.errors import ConfigError

if TYPE_CHECKING:
    from spotpack.devcluster.store import Store

Obj = dict[str, Any]


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: ten times faster on large seeds."""


def _documents(path: Path) -> list[Any]:
    """The documents of a YAML file, or of a JSON file (one document, e.g. a ``List``)."""
    if path.suffix == ".json":
        return [orjson.loads(path.read_bytes())]
    with path.open(encoding="utf-8") as fh:
        return list(yaml.load_all(fh, Loader=_LOADER))


def load_manifests(paths: Iterable[str | Path]) -> list[Obj]:
    """Every document of every file, with ``kind: List`` unpacked; empty documents skipped."""
    manifests: list[Obj] = []
    for path in paths:
        try:
            docs = _documents(Path(path))
        except (OSError, yaml.YAMLError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read seed file {path}: {exc}") from exc
        for doc in docs:
            manifests.extend(_unpack(doc, str(path)))
    return manifests


def _unpack(doc: Any, where: str) -> list[Obj]:
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a manifest must be a mapping, got {type(doc).__name__}")
    if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
        return [item for sub in doc["items"] for item in _unpack(sub, where)]
    return [doc]


def create_all(store: Store, manifests: Iterable[Obj]) -> list[Obj]:
    """Create each manifest in the store, namespaces first so the rest can land in them."""
    ordered = sorted(manifests, key=lambda m: m.get("kind") != "Namespace")
    created = []
    for manifest in ordered:
        rtype = resource_for_kind(str(manifest.get("apiVersion", "")), str(manifest.get("kind")))
        if rtype is None:
            raise ConfigError(
                f"cannot seed {manifest.get('apiVersion')}/{manifest.get('kind')}: the dev "
                "cluster does not serve that kind"
            )
        try:
            created.append(store.create(rtype.plural, manifest))
        except ApiError as exc:
            if rtype.plural == "namespaces" and exc.reason == "AlreadyExists":
                continue  # default namespaces exist from the start; listing them is fine
            raise ConfigError(f"cannot seed {rtype.kind}: {exc.message}") from exc
    return created
