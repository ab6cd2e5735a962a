"""Policy annotations under ``spotpack.io/``: what users write on workloads.

Pods carry them through their workload's pod template; namespaces carry the
same keys as defaults for every pod in them. A pod annotation wins over the
namespace default, which wins over the global per-role default.

Invalid values on a pod are the pod author's mistake and are refused with a
message naming the annotation and the allowed values. Invalid values on a
namespace are reported as warnings and ignored: refusing every pod of a
namespace because of one typo in its annotations would stop unrelated teams.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
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

NAMESPACE_KEYS = frozenset({CAPACITY, OPT_OUT, GPU_POLICY, GPU_INCLUDE, GPU_EXCLUDE})
POD_KEYS = NAMESPACE_KEYS | {ROLE}


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
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_GPU_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")
E = TypeVar("E", bound=StrEnum)
GPU_TYPE_RULE = (
    "a comma-separated list of GPU model names such as 'A10G,L4' (letters, digits, . _ -)"
)


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


def _parse_one(policy: Policy, key: str, value: str, where: str) -> Policy:
    """Fold one annotation into ``policy``; raises InvalidAnnotation on a bad value."""
    field_name, parse = _FIELDS[key]
    changes: dict[str, Any] = {field_name: parse(key, value, where)}
    return replace(policy, **changes)


def parse_pod_policy(annotations: Mapping[str, str], labels: Mapping[str, str]) -> Policy:
    """Read a pod's policy; any invalid value raises :class:`InvalidAnnotation`.

    The opt-out may also be a label, so that the webhook configuration's
    objectSelector can skip the call entirely.
    """
    policy = Policy()
    for key in POD_KEYS:
        value = annotations.get(key)
        if value is not None:
            policy = _parse_one(policy, key, str(value), "pod")
    label = labels.get(OPT_OUT)
    if label is not None and _flag(OPT_OUT, str(label), "pod label"):
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
    return ParsedPolicy(policy, tuple(warnings))
