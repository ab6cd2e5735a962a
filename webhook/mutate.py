"""The mutation decision: pod in, JSON Patch (or a denial) out. Pure, no I/O.

Order of work, and why:

1. Pods that are not ours to place are skipped before anything is parsed
   (system namespaces, DaemonSet and mirror pods, pods already bound to a node,
   opted-out pods): cheap checks first, and an opted-out pod is never refused
   for an annotation it asked us to ignore.
2. The pod's policy annotations are parsed strictly (a bad value is refused);
   the namespace's defaults leniently (a bad value is a warning). Unknown
   ``spotpack.io/`` keys, on either, are warnings: a typo is never refused.
3. vGPU requests are normalized; an invalid request is refused, because a GPU
   pod scheduled on a wrong reading of its request fails at run time.
4. The role is detected and the capacity decided; affinity and tolerations are
   added; the decision is recorded in annotations the extender and the
   provisioner read. GPU model patterns that match no model of the catalog
   (``config.gpu_models``) are warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spotpack import policy as keys
from spotpack.errors import InvalidInput
from spotpack.patch import Op, append_items, merge_map, set_value
from spotpack.placement import PlacementRules, capacity_change, decide_capacity
from spotpack.policy import (
    Policy,
    gpu_model_warnings,
    is_true,
    parse_namespace_policy,
    parse_pod_policy,
    unknown_keys,
)
from spotpack.roles import detect_role, owned_by_daemonset
from spotpack.vgpu.normalize import Normalization, NormalizeOptions, normalize_pod, resource_ops

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
DEFAULT_SCHEDULER = "default-scheduler"
HAMI_USE_TYPE = "nvidia.com/use-gputype"
HAMI_NOUSE_TYPE = "nvidia.com/nouse-gputype"


class Outcome(StrEnum):
    PATCHED = "patched"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class MutationConfig:
    placement: PlacementRules
    vgpu: NormalizeOptions = field(default_factory=NormalizeOptions)
    skip_namespaces: frozenset[str] = frozenset({"kube-system", "kube-node-lease", "kube-public"})
    gpu_scheduler: str | None = None
    """Scheduler for GPU pods (the profile with the extender); None leaves schedulerName alone."""
    gpu_models: tuple[str, ...] = ()
    """The catalog's GPU model names, sorted, computed once at start; empty: no pattern check."""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    ops: tuple[Op, ...] = ()
    warnings: tuple[str, ...] = ()
    message: str = ""
    role: str = "none"

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENIED


def _section(pod: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``metadata`` or ``spec``, or empty when absent or not an object (garbage in)."""
    value = pod.get(key)
    return value if isinstance(value, Mapping) else {}


def _skip_reason(pod: Mapping[str, Any], namespace: str, config: MutationConfig) -> str | None:
    metadata = _section(pod, "metadata")
    if namespace in config.skip_namespaces:
        return f"namespace {namespace} is excluded"
    if owned_by_daemonset(pod):
        return "DaemonSet pod"
    if MIRROR_ANNOTATION in _string_map(metadata.get("annotations")):
        return "mirror pod"
    if _section(pod, "spec").get("nodeName"):
        return "already bound to a node"
    return None


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def mutate_pod(
    pod: Mapping[str, Any],
    namespace: str,
    namespace_annotations: Mapping[str, str],
    config: MutationConfig,
) -> Decision:
    """Decide what to change in ``pod`` (the raw object of the AdmissionReview)."""
    reason = _skip_reason(pod, namespace, config)
    if reason is not None:
        return Decision(Outcome.SKIPPED, message=reason)
    metadata = _section(pod, "metadata")
    pod_annotations = _string_map(metadata.get("annotations"))
    labels = _string_map(metadata.get("labels"))
    if _opted_out(pod_annotations, labels):
        return Decision(Outcome.SKIPPED, message="opted out")
    try:
        pod_policy = parse_pod_policy(pod_annotations, labels, strict=True)
    except InvalidInput as exc:
        return Decision(Outcome.DENIED, message=str(exc))
    namespace_policy = parse_namespace_policy(namespace_annotations, namespace)
    typos = unknown_keys(pod_annotations, also_known=(config.vgpu.source_annotation,))
    policies = _Policies(
        pod_policy.over(namespace_policy.policy),
        pod_policy,
        (*typos, *namespace_policy.warnings),
        namespace,
        namespace_policy.policy,
    )
    if policies.effective.opt_out:
        return Decision(Outcome.SKIPPED, message=f"namespace {namespace} opted out")
    try:
        normalization = normalize_pod(pod, config.vgpu)
    except InvalidInput as exc:
        return Decision(Outcome.DENIED, message=str(exc))
    return _plan(pod, policies, normalization, config)


@dataclass(frozen=True, slots=True)
class _Policies:
    effective: Policy
    """The pod's own policy over its namespace's defaults."""
    own: Policy
    """What the pod itself says; namespace defaults are copied onto the pod where it is silent."""
    warnings: tuple[str, ...]
    namespace: str
    defaults: Policy
    """The namespace's defaults alone."""


def _opted_out(pod_annotations: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A cheap look at the opt-out before strict parsing, so an opted-out pod is never
    refused for its other annotations; any value other than true/false is refused later."""
    return any(is_true(source.get(keys.OPT_OUT, "")) for source in (pod_annotations, labels))


def _plan(
    pod: Mapping[str, Any],
    policies: _Policies,
    normalization: Normalization,
    config: MutationConfig,
) -> Decision:
    role = detect_role(pod)
    capacity = decide_capacity(role, policies.effective, config.placement)
    ops: list[Op] = list(resource_ops(normalization))
    warnings: list[str] = [*policies.warnings, *normalization.warnings, *capacity.warnings]
    notes: dict[str, str] = dict(normalization.annotations)
    spec = _section(pod, "spec")
    if capacity.mode is not None:
        change = capacity_change(spec, capacity.mode, config.placement)
        warnings.extend(change.warnings)
        if change.node_affinity is not None:
            ops.append(set_value(pod, ("spec", "affinity", "nodeAffinity"), change.node_affinity))
        ops.extend(append_items(pod, ("spec", "tolerations"), change.tolerations))
        notes[keys.DETECTED_ROLE] = role.label
        notes[keys.CAPACITY_APPLIED] = capacity.mode.value
    if normalization.is_gpu_pod:
        warnings.extend(_model_warnings(policies, config.gpu_models))
        notes.update(_gpu_notes(policies.effective, policies.own))
        if config.gpu_scheduler and spec.get("schedulerName") in (None, "", DEFAULT_SCHEDULER):
            ops.append(set_value(pod, ("spec", "schedulerName"), config.gpu_scheduler))
    ops.extend(merge_map(pod, ("metadata", "annotations"), notes))
    outcome = Outcome.PATCHED if ops else Outcome.UNCHANGED
    return Decision(outcome, tuple(ops), tuple(warnings), role=role.label)


def _model_warnings(policies: _Policies, models: tuple[str, ...]) -> tuple[str, ...]:
    """Patterns matching no catalog model, said where they were written (pod or namespace).

    A pod value equal to the namespace default is the default copied onto the pod
    by a first pass (see :func:`_gpu_notes`): still the namespace's, so a second
    pass says the same.
    """
    own, defaults = policies.own, policies.defaults
    include_own = own.gpu_include not in ((), defaults.gpu_include)
    exclude_own = own.gpu_exclude not in ((), defaults.gpu_exclude)
    mine = Policy(
        gpu_include=own.gpu_include if include_own else (),
        gpu_exclude=own.gpu_exclude if exclude_own else (),
    )
    inherited = Policy(
        gpu_include=() if include_own else defaults.gpu_include,
        gpu_exclude=() if exclude_own else defaults.gpu_exclude,
    )
    return (
        *gpu_model_warnings(mine, models),
        *gpu_model_warnings(inherited, models, f"namespace {policies.namespace} default "),
    )


def _gpu_notes(effective: Policy, pod_policy: Policy) -> dict[str, str]:
    """Annotations that carry the GPU policy to the extender and to HAMi.

    Namespace defaults are copied onto the pod, so the extender reads one place;
    type filters are also written in HAMi's own keys so HAMi's scheduler honours them.
    """
    notes: dict[str, str] = {}
    if effective.gpu_policy is not None and pod_policy.gpu_policy is None:
        notes[keys.GPU_POLICY] = effective.gpu_policy.value
    if effective.gpu_include:
        include = ",".join(effective.gpu_include)
        if pod_policy.gpu_include != effective.gpu_include:
            notes[keys.GPU_INCLUDE] = include
        notes[HAMI_USE_TYPE] = include
    if effective.gpu_exclude:
        exclude = ",".join(effective.gpu_exclude)
        if pod_policy.gpu_exclude != effective.gpu_exclude:
            notes[keys.GPU_EXCLUDE] = exclude
        notes[HAMI_NOUSE_TYPE] = exclude
    return notes
