"""Read, validate, merge and write catalog files: the only module here that does file I/O.

The packaged catalog (``spotpack/data/catalog-<cloud>.json``) is loaded at
start-up; an operator may mount an override file (JSON or YAML, the same format
but partial) to correct a price or add a type without rebuilding the image.
Every problem is a :class:`~spotpack.errors.ConfigError` whose message names
the file, the path inside it and the fix, e.g.::

    /etc/spotpack/catalog.yaml: instance_types['g5.xlarge'].vpcu: unknown key;
    fix: remove it or rename it to 'vcpu'

Merging rules (override over base): a type the override names is updated key
by key; ``on_demand`` and ``spot`` are merged per region/zone (each spot figure
replaced whole); ``gpu``, ``usage_classes`` and specs are replaced; a new type
must give every spec; ``regions`` gain the override's zones; ``provenance`` and
``notes`` lines are appended, so the merged catalog still says where each figure
came from.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from spotpack.catalog.model import Catalog
from spotpack.catalog.prices import PriceTable, PriceTableDoc
from spotpack.catalog.schema import FIELD_NAMES, CatalogDoc, OverrideDoc, to_catalog, to_document
from spotpack.errors import ConfigError

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Refuse larger files: the packaged AWS catalog is about 100 KiB."""

MAX_NODES = 1_000_000
"""Refuse documents with more values than this (YAML aliases can multiply a small file)."""

MAX_PROBLEMS = 5
"""Problems listed in one error message; the rest are counted."""

FORMAT_HELP = "the catalog format is described in spotpack/catalog/schema.py"


def packaged_path(cloud: str = "aws") -> Traversable:
    """The catalog shipped in the package for ``cloud``."""
    return resources.files("spotpack").joinpath("data", f"catalog-{cloud}.json")


def load_catalog(
    path: str | Path | Traversable | None = None, *, override: str | Path | None = None
) -> Catalog:
    """The catalog at ``path`` (default: the packaged AWS catalog), ``override`` merged over it."""
    source = packaged_path() if path is None else path
    doc = load_document(source)
    if override is not None:
        doc = apply_override(doc, load_override(override), where=str(override))
    return to_catalog(doc)


def load_price_table(path: str | Path | Traversable | None = None) -> PriceTable:
    """A price-only table (default: the packaged Alibaba one), validated."""
    source = packaged_path("alibaba") if path is None else path
    try:
        doc = PriceTableDoc.model_validate(read_document(source))
    except ValidationError as exc:
        raise ConfigError(_describe(str(source), exc)) from exc
    return PriceTable(doc)


def load_document(path: str | Path | Traversable) -> CatalogDoc:
    """A complete catalog document, validated (format and cross-references)."""
    where = str(path)
    raw = read_document(path)
    try:
        doc = CatalogDoc.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(where, exc)) from exc
    _check_references(doc, where)
    return doc


def load_override(path: str | Path) -> OverrideDoc:
    """A partial catalog document, validated on its own (before merging)."""
    where = str(path)
    raw = read_document(path)
    try:
        return OverrideDoc.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(where, exc)) from exc


def apply_override(base: CatalogDoc, override: OverrideDoc, *, where: str) -> CatalogDoc:
    """``override`` merged over ``base`` (rules in the module docstring); errors name ``where``."""
    merged = _merge(base.model_dump(), override.model_dump(exclude_unset=True))
    try:
        doc = CatalogDoc.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(where, exc)) from exc
    _check_references(doc, where)
    return doc


def read_document(path: str | Path | Traversable) -> Any:
    """Parse a JSON or YAML file (by suffix; JSON first when the suffix says neither)."""
    where = str(path)
    target = Path(path) if isinstance(path, str) else path
    try:
        with target.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{where}: cannot read: {reason}; fix: check the path and mount") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_FILE_BYTES} bytes; fix: trim the file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text ({exc.reason}); fix: save it as UTF-8") from exc
    name = target.name.lower()
    if name.endswith((".yaml", ".yml")):
        value = _parse_yaml(text, where)
    elif name.endswith(".json"):
        value = _parse_json(text, where)
    else:
        try:
            value = _parse_json(text, where)
        except ConfigError:
            value = _parse_yaml(text, where)
    _check_size(value, where)
    return value


def dumps(document: Mapping[str, Any]) -> str:
    """The canonical text of a catalog document (what build and refresh write)."""
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_catalog(catalog: Catalog, path: str | Path) -> None:
    """Write ``catalog`` to ``path`` atomically: readers see the old file or the new one."""
    write_text_atomic(Path(path), dumps(to_document(catalog)))


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    tmp_name = None
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            dir=path.parent,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as handle:
            tmp_name = handle.name
            os.fchmod(handle.fileno(), _mode_of(path))
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
        tmp_name = None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{path}: cannot write: {reason}; fix: check the directory") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()


def _mode_of(path: Path) -> int:
    """Keep an existing file's permissions; a new one is world-readable (package data)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o644


# -- parsing -------------------------------------------------------------------


def _reject_duplicates(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg}); "
            "fix: correct the syntax"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{where}: invalid JSON ({exc}); fix: correct the document") from exc


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            f"{where}: {at}invalid YAML ({exc.problem}); fix: correct the syntax"
        ) from exc
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{where}: invalid YAML ({exc}); fix: correct the document") from exc


def _check_size(value: Any, where: str) -> None:
    """Count values without recursion; YAML aliases could otherwise blow up validation."""
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"{where}: more than {MAX_NODES} values; fix: trim the document")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# -- merging and cross-references ----------------------------------------------


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(base)
    if "region" in over:
        doc["region"] = over["region"]
    doc["provenance"] = [*base["provenance"], *over.get("provenance", [])]
    doc["notes"] = [*base["notes"], *over.get("notes", [])]
    regions = {r: list(z) for r, z in base["regions"].items()}
    for region, zones in over.get("regions", {}).items():
        known = regions.setdefault(region, [])
        known.extend(z for z in zones if z not in known)
    doc["regions"] = regions
    types = dict(base["instance_types"])
    for name, changes in over.get("instance_types", {}).items():
        current = types.get(name)
        if current is None:
            types[name] = dict(changes)
            continue
        updated = dict(current)
        for key, value in changes.items():
            if key in ("on_demand", "spot"):
                updated[key] = {**current[key], **value}
            else:
                updated[key] = value
        types[name] = updated
    doc["instance_types"] = types
    return doc


def _check_references(doc: CatalogDoc, where: str) -> None:
    """Every price is for a region of ``regions``; every spot figure for a region or its zone."""
    zones = {z for zs in doc.regions.values() for z in zs}
    known = ", ".join(sorted(doc.regions)) or "none"
    problems: list[str] = []
    if doc.region not in doc.regions:
        problems.append(f"region: {doc.region!r} is not in regions; fix: add it to regions")
    for name, t in doc.instance_types.items():
        base = f"instance_types[{name!r}]"
        problems.extend(
            f"{base}.on_demand[{region!r}]: unknown region; fix: use one of {known} "
            "or add the region to regions"
            for region in t.on_demand
            if region not in doc.regions
        )
        problems.extend(
            f"{base}.spot[{loc!r}]: unknown region or zone; fix: use a region ({known}) "
            "or one of its zones, or add the zone to regions"
            for loc in t.spot
            if loc not in doc.regions and loc not in zones
        )
    if problems:
        raise ConfigError(_join(where, problems))


# -- messages --------------------------------------------------------------------


def _describe(where: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _path(loc)
        if err["type"] == "extra_forbidden" and loc:
            # The last part is the unknown key itself: show it as a key, not a mapping entry.
            parent = _path(loc[:-1]) if len(loc) > 1 else ""
            path = f"{parent}.{loc[-1]}" if parent else str(loc[-1])
        problems.append(f"{path}: {_problem(err['type'], loc, err['msg'])}")
    return _join(where, problems)


def _join(where: str, problems: Iterable[str]) -> str:
    listed = list(problems)
    shown = "; ".join(listed[:MAX_PROBLEMS])
    more = len(listed) - MAX_PROBLEMS
    suffix = f" (and {more} more problems)" if more > 0 else ""
    return f"{where}: {shown}{suffix}"


def _path(loc: tuple[int | str, ...]) -> str:
    """``('instance_types', 'g5.xlarge', 'vcpu')`` -> ``instance_types['g5.xlarge'].vcpu``."""
    out = ""
    for part in loc:
        if part == "[key]":
            out += " (the key)"
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part in FIELD_NAMES:
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def _problem(kind: str, loc: tuple[int | str, ...], msg: str) -> str:
    key = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(key, sorted(FIELD_NAMES), n=1)
        rename = f" or rename it to {close[0]!r}" if close else ""
        return f"unknown key; fix: remove it{rename}"
    if kind == "missing":
        return f"required key is missing; fix: add {key!r}"
    if kind in ("int_type", "float_type", "int_parsing", "float_parsing"):
        return f"{msg.lower()}; fix: write a plain number (no quotes)"
    if kind in ("dict_type", "model_type", "list_type", "string_type"):
        return f"{msg.lower()}; fix: {FORMAT_HELP}"
    return f"{msg}; fix: correct the value"
