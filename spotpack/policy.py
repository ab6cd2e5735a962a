"""Policy annotations under ``spotpack.io/``: what users write on workloads.

Pods carry them through their workload's pod template; namespaces carry the
same keys as defaults for every pod in them. A pod annotation wins over the
namespace default, which wins over the global per-role default.

Invalid values on a pod are the pod author's mistake and are refused with a
message naming the annotation and the allowed values. Invalid values on a
namespace are reported as warnings and ignored: refusing every pod of a
namespace because of one typo in its annotations would stop unrelated teams.

Typos are never silent, and never refused: a ``spotpack.io/`` key spotpack
does not know (``spotpack.io/capcity``), or a key under a near miss of the
prefix (``spotpak.io/capacity``), is a warning naming the nearest known key; a
``gpu-include``/``gpu-exclude`` pattern that matches no GPU model of the
catalog is a warning listing the known models.

Flags (``opt-out``) are ``true`` or ``false``, any case, as the README says and
as the webhook configuration's selectors filter (on ``"true"``): admission
(``strict=True``) refuses ``yes``/``1`` like any other invalid value. Readers
of pods already admitted (the extender, the provisioner) keep reading the
``yes``/``no``/``1``/``0`` that older versions admitted, so those pods, and
pods that never met the webhook, are not turned invalid by an upgrade.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar

from spotpack.errors import InvalidAnnotation
from spotpack.roles import ROLE_CLASS_VALUES, RoleClass

PREFIX = "spotpack.io/"
CAPACITY = PREFIX + "capacity"
ROLE = PREFIX + "role"
OPT_OUT = PREFIX + "opt-out"
GPU_POLICY = PREFIX + "gpu-policy"
GPU_INCLUDE = PREFIX + "gpu-include"
GPU_EXCLUDE = PREFIX + "gpu-exclude"

# Written by spotpack, read by the extender and the provisioner.
DETECTED_ROLE = PREFIX + "detected-role"
CAPACITY_APPLIED = PREFIX + "capacity-applied"
VGPU_SOURCE = PREFIX + "vgpu-source"
GPU_ASSIGNMENT = PREFIX + "gpu-assignment"
# Written by users, read by the provisioner.
DO_NOT_DISRUPT = PREFIX + "do-not-disrupt"

NAMESPACE_KEYS = frozenset({CAPACITY, OPT_OUT, GPU_POLICY, GPU_INCLUDE, GPU_EXCLUDE})
POD_KEYS = NAMESPACE_KEYS | {ROLE}
WRITTEN_KEYS = frozenset({DETECTED_ROLE, CAPACITY_APPLIED, VGPU_SOURCE, GPU_ASSIGNMENT})
NODE_KEYS = frozenset(
    PREFIX + name
    for name in (
        "gpu-cordon",
        "interruption",
        "managed",
        "claim",
        "cluster",
        "instance-id",
        "launched-at",
        "vgpu-split",
        "vgpu-memory-scaling",
        "gpu",
    )
)
"""spotpack's keys on nodes and instances: meaningless on a pod, but not typos."""
KNOWN_KEYS = POD_KEYS | WRITTEN_KEYS | NODE_KEYS | {DO_NOT_DISRUPT}
"""Every ``spotpack.io/`` key spotpack reads or writes; any other is reported as unknown.
tests/unit/test_policy.py checks it against the constants of the modules that use them."""


class CapacityMode(StrEnum):
    """Where a pod may run, from the point of view of interruption risk."""

    SPOT = "spot"
    """Required spot: cheapest, the pod must tolerate interruption."""
    SPOT_PREFERRED = "spot-preferred"
    """Prefer spot, fall back to on-demand when no spot node fits."""
    ON_DEMAND = "on-demand"
    """Required non-spot capacity."""
    ANY = "any"
    """No preference, but allowed on spot (spot tolerations are added)."""


class GPUPolicy(StrEnum):
    """How the extender places vGPUs across cards and nodes."""

    BINPACK = "binpack"
    SPREAD = "spread"


CAPACITY_VALUES = ", ".join(m.value for m in CapacityMode)
GPU_POLICY_VALUES = ", ".join(p.value for p in GPUPolicy)
_TRUE = frozenset({"true"})
_FALSE = frozenset({"false"})
_LEGACY_FLAGS = {"yes": True, "1": True, "no": False, "0": False}
"""Admitted by spotpack 0.1.0; still read (``strict=False``), no longer admitted."""
_GPU_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
E = TypeVar("E", bound=StrEnum)
GPU_TYPE_RULE = (
    "a comma-separated list of GPU model names such as 'A10G,L4' (letters, digits, . _ -)"
)
_PREFIX_NAME = PREFIX.rstrip("/")
_NEAR_PREFIX = 0.85
"""difflib ratio from which another prefix is read as a typo of ours: ``spotpak.io``
0.95, ``spotpack.com`` 0.87 are; ``spark.io`` 0.74 is not; subdomains never are."""
_SUGGEST = 0.6
_MODELS_SHOWN = 12


@dataclass(frozen=True, slots=True)
class Policy:
    """The policy a pod asked for; ``None`` means "not said, use the default"."""

    capacity: CapacityMode | None = None
    role: RoleClass | None = None
    opt_out: bool = False
    gpu_policy: GPUPolicy | None = None
    gpu_include: tuple[str, ...] = ()
    gpu_exclude: tuple[str, ...] = ()

    def over(self, default: Policy) -> Policy:
        """This policy with unset fields taken from ``default`` (pod over namespace)."""
        return Policy(
            capacity=self.capacity if self.capacity is not None else default.capacity,
            role=self.role if self.role is not None else default.role,
            opt_out=self.opt_out or default.opt_out,
            gpu_policy=self.gpu_policy if self.gpu_policy is not None else default.gpu_policy,
            gpu_include=self.gpu_include or default.gpu_include,
            gpu_exclude=self.gpu_exclude or default.gpu_exclude,
        )


@dataclass(frozen=True, slots=True)
class ParsedPolicy:
    policy: Policy
    warnings: tuple[str, ...] = field(default=())


def _enum(kind: type[E], key: str, value: str, allowed: str, where: str) -> E:
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise InvalidAnnotation(key, value, allowed, where) from None


def is_true(value: str) -> bool:
    """Whether a flag's value says true (``true`` in any case, blanks around ignored)."""
    return value.strip().lower() in _TRUE


def _flag(key: str, value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidAnnotation(key, value, "true, false", where)


def _gpu_types(key: str, value: str, where: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(","))
    if not names or any(not _GPU_TYPE.match(n) for n in names):
        raise InvalidAnnotation(key, value, GPU_TYPE_RULE, where)
    return names


_FIELDS: dict[str, tuple[str, Callable[[str, str, str], object]]] = {
    CAPACITY: ("capacity", lambda k, v, w: _enum(CapacityMode, k, v, CAPACITY_VALUES, w)),
    ROLE: ("role", lambda k, v, w: _enum(RoleClass, k, v, ROLE_CLASS_VALUES, w)),
    OPT_OUT: ("opt_out", _flag),
    GPU_POLICY: ("gpu_policy", lambda k, v, w: _enum(GPUPolicy, k, v, GPU_POLICY_VALUES, w)),
    GPU_INCLUDE: ("gpu_include", _gpu_types),
    GPU_EXCLUDE: ("gpu_exclude", _gpu_types),
}
"""Annotation -> (Policy field, parser(key, value, where)); parsers raise InvalidAnnotation."""


def _legacy_flag(key: str, value: str, where: str) -> bool:
    legacy = _LEGACY_FLAGS.get(value.strip().lower())
    return _flag(key, value, where) if legacy is None else legacy


def _parse_one(policy: Policy, key: str, value: str, where: str, strict: bool = True) -> Policy:
    """Fold one annotation into ``policy``; raises InvalidAnnotation on a bad value."""
    field_name, parse = _FIELDS[key]
    if not strict and parse is _flag:
        parse = _legacy_flag
    changes: dict[str, Any] = {field_name: parse(key, value, where)}
    return replace(policy, **changes)


def parse_pod_policy(
    annotations: Mapping[str, str], labels: Mapping[str, str], *, strict: bool = False
) -> Policy:
    """Read a pod's policy; any invalid value raises :class:`InvalidAnnotation`.

    ``strict`` is admission's reading: flags are ``true``/``false`` only. Without
    it, flags also read the legacy ``yes``/``no``/``1``/``0`` (see the module
    docstring). The opt-out may also be a label, so that the webhook
    configuration's objectSelector can skip the call entirely.
    """
    policy = Policy()
    for key in POD_KEYS:
        value = annotations.get(key)
        if value is not None:
            policy = _parse_one(policy, key, str(value), "pod", strict)
    label = labels.get(OPT_OUT)
    flag = _flag if strict else _legacy_flag
    if label is not None and flag(OPT_OUT, str(label), "pod label"):
        policy = replace(policy, opt_out=True)
    return policy


def parse_namespace_policy(annotations: Mapping[str, str], namespace: str) -> ParsedPolicy:
    """Read namespace defaults; invalid values become warnings and are skipped."""
    policy = Policy()
    warnings: list[str] = []
    for key in NAMESPACE_KEYS:
        value = annotations.get(key)
        if value is None:
            continue
        try:
            policy = _parse_one(policy, key, str(value), f"namespace {namespace}")
        except InvalidAnnotation as exc:
            warnings.append(f"{exc}; the default was ignored")
    if ROLE in annotations:
        warnings.append(
            f"namespace {namespace} annotation {ROLE} has no meaning on a namespace; ignored"
        )
    warnings.extend(unknown_keys(annotations, f"namespace {namespace}: "))
    return ParsedPolicy(policy, tuple(warnings))


@lru_cache(maxsize=1024)
def _near_prefix(prefix: str) -> bool:
    """Whether ``prefix`` (the part before ``/``) looks like a typo of ``spotpack.io``."""
    if prefix == _PREFIX_NAME or prefix.endswith("." + _PREFIX_NAME):
        return False
    return difflib.SequenceMatcher(None, prefix, _PREFIX_NAME).ratio() >= _NEAR_PREFIX


@lru_cache(maxsize=1024)
def _unknown_key(key: str, known: frozenset[str]) -> str | None:
    """The warning for one annotation key, or None when it is known or not ours."""
    prefix, slash, name = key.partition("/")
    if not slash or key in known:
        return None
    if prefix != _PREFIX_NAME and not _near_prefix(prefix):
        return None
    names = sorted(k[len(PREFIX) :] for k in known if k.startswith(PREFIX))
    close = difflib.get_close_matches(name, names, n=1, cutoff=_SUGGEST)
    hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
    return f"unknown annotation {key}{hint}; ignored"


@lru_cache(maxsize=16)
def _known(also_known: tuple[str, ...]) -> frozenset[str]:
    return KNOWN_KEYS.union(also_known)


def unknown_keys(
    annotations: Mapping[str, str], where: str = "", also_known: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Warnings for the ``spotpack.io/`` keys (or near misses of the prefix) we do not know.

    ``where`` starts each message (``"namespace team-a: "``); ``also_known`` adds
    keys configured elsewhere (the vGPU source annotation). Never raises: a typo
    in a key is reported, not refused, since the value it carries is unread.
    """
    known = _known(also_known)
    found = (_unknown_key(str(key), known) for key in annotations)
    return tuple(f"{where}{message}" for message in found if message)


def gpu_model_warnings(policy: Policy, models: tuple[str, ...], where: str = "") -> tuple[str, ...]:
    """Warnings for ``gpu-include``/``gpu-exclude`` patterns that match no known model.

    A pattern matches a model as the extender and the provisioner match it:
    case-insensitively, as a substring of the model name. ``models`` are the
    catalog's GPU model names, computed once by the caller; empty skips the check.
    An include that matches nothing leaves the provisioner no instance type to
    launch; an exclude that matches nothing excludes nothing.
    """
    if not models:
        return ()
    lowered = [m.lower() for m in models]
    shown = ", ".join(models[:_MODELS_SHOWN]) + (", ..." if len(models) > _MODELS_SHOWN else "")
    warnings = []
    for key, patterns in ((GPU_INCLUDE, policy.gpu_include), (GPU_EXCLUDE, policy.gpu_exclude)):
        for pattern in patterns:
            wanted = pattern.strip().lower()
            if wanted and not any(wanted in model for model in lowered):
                warnings.append(
                    f"{where}{key}: {pattern} matches no GPU model in the catalog (known: {shown})"
                )
    return tuple(warnings)
