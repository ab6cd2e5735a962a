"""Read a pending Pod dict into a :class:`~spotpack.provisioning.model.PodDemand`.

What is read, and from where:

- **CPU and memory**: each container's request, else its limit (Kubernetes
  defaults a missing request to the limit), with the pod rule for init
  containers and sidecars (init containers with ``restartPolicy: Always``)::

      app_phase = sum(app) + sum(sidecars)
      init_peak = max over plain init containers i of (init_i + sidecars before i)
      pod       = max(app_phase, init_peak) + spec.overhead

  per resource. Memory is rounded up to whole MiB.
- **GPUs**: the canonical vGPU request (:func:`spotpack.vgpu.model.read_demand`).
- **Capacity**: a required node affinity (or nodeSelector) on the capacity
  label is binding; then the ``spotpack.io/capacity-applied`` annotation (what
  the webhook decided), then ``spotpack.io/capacity``; critical pods are
  on-demand only. Nothing said means :attr:`CapacityNeed.ANY`.
- **Architecture and zones**: ``kubernetes.io/arch`` and
  ``topology.kubernetes.io/zone`` from the nodeSelector and the required node
  affinity (terms are ORed, expressions in a term ANDed). ``NotIn`` needs the
  universe of values: arches are known (amd64, arm64); for zones pass
  ``known_zones`` or a ``NotIn`` on zones is ignored (documented limitation).
- **Group**: the ``spark-app-selector`` label, else the controller owner's uid,
  else the pod itself.
- **Re-run cost**: :func:`estimate_rerun_cost`.

Invalid input (a bad quantity, a bad vGPU request, a bad policy annotation)
raises :class:`~spotpack.errors.InvalidInput`; the loop logs it and skips the pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spotpack import policy as keys
from spotpack.capacity import LabelScheme
from spotpack.podview import affinity_capacity
from spotpack.policy import CapacityMode, parse_pod_policy
from spotpack.provisioning.model import CapacityNeed, PodDemand, Resources
from spotpack.quantity import bytes_of, cpu_millis
from spotpack.roles import RoleClass, detect_role, is_critical
from spotpack.vgpu.model import PodGPUDemand, VGPURequest, as_mapping, iter_containers, read_demand

ARCH_LABEL = "kubernetes.io/arch"
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
KNOWN_ARCHES = frozenset({"amd64", "arm64"})
SPARK_APP = "spark-app-selector"

CPU_HOUR_USD = 0.031611
"""On-demand list price of one vCPU-hour (the m5 split Kubecost uses by default)."""
GIB_HOUR_USD = 0.004237
"""On-demand list price of one GiB-hour of memory (same source)."""
GPU_HOUR_USD = 0.95
"""On-demand price of one GPU card-hour (Kubecost's default)."""
REFERENCE_CARD_MIB = 24576
"""A vGPU asking for MiB is charged as its share of a 24 GiB card (A10G, L4 class)."""
RESTART_FACTOR = 1.5
"""Lost work plus the restart itself (rescheduling, image pull, warm-up): 1.5x the pod-hours."""
COORDINATOR_FACTOR = 10.0
"""A lost coordinator (Spark driver, Ray head, ...) loses its application's work too."""

MIB = 1024 * 1024


def estimate_rerun_cost(
    resources: Resources, gpu: PodGPUDemand, *, hours: float, coordinator: bool
) -> float:
    """USD lost when the pod's node is interrupted: its resources for ``hours``, times a factor::

        hourly = vcpu * 0.031611 + GiB * 0.004237 + gpu_cards * 0.95
        rerun  = hourly * hours * (10 if coordinator else 1.5)

    ``gpu_cards`` counts a whole-card vGPU as 1, a vGPU of ``m`` MiB as
    ``min(m / 24576, 1)`` and a percentage as its fraction, with the pod's
    init-container rule. ``hours`` is how much work a pod typically holds when
    it is lost (the loop's ``default_rerun_hours``, e.g. 1 for batch).
    """
    per_mille = gpu.effective(_card_per_mille) if gpu.is_gpu_pod else 0
    hourly = (
        resources.cpu_m / 1000 * CPU_HOUR_USD
        + resources.mem_mib / 1024 * GIB_HOUR_USD
        + per_mille / 1000 * GPU_HOUR_USD
    )
    factor = COORDINATOR_FACTOR if coordinator else RESTART_FACTOR
    return round(hourly * max(hours, 0.0) * factor, 6)


def _card_per_mille(request: VGPURequest) -> int:
    if request.mem_mib is not None:
        share = min(request.mem_mib * 1000 // REFERENCE_CARD_MIB, 1000)
    elif request.mem_percent is not None:
        share = request.mem_percent * 10
    else:
        share = 1000
    return request.count * max(share, 1)


def pod_demand(
    pod: Mapping[str, Any],
    scheme: LabelScheme,
    *,
    default_rerun_hours: float = 1.0,
    known_zones: Iterable[str] = (),
) -> PodDemand:
    """The planner's view of a pending pod (see the module docstring)."""
    meta = as_mapping(pod.get("metadata"))
    spec = as_mapping(pod.get("spec"))
    annotations = {str(k): str(v) for k, v in as_mapping(meta.get("annotations")).items()}
    labels = {str(k): str(v) for k, v in as_mapping(meta.get("labels")).items()}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    key = f"{namespace}/{name}"
    policy = parse_pod_policy(annotations, {})
    resources = pod_resources(pod)
    gpu = read_demand(pod)
    role = detect_role(pod)
    coordinator = role.role_class in (RoleClass.COORDINATOR, RoleClass.CRITICAL)
    return PodDemand(
        key=key,
        uid=str(meta.get("uid", "")),
        group=_group(meta, labels, key),
        resources=resources,
        gpu=gpu,
        capacity=capacity_need(pod, scheme, annotations),
        arch=allowed_values(spec, (ARCH_LABEL,), KNOWN_ARCHES),
        zones=allowed_values(spec, ZONE_LABELS, frozenset(known_zones) or None),
        rerun_cost=estimate_rerun_cost(
            resources, gpu, hours=default_rerun_hours, coordinator=coordinator
        ),
        gpu_include=policy.gpu_include,
        gpu_exclude=policy.gpu_exclude,
    )


def capacity_need(
    pod: Mapping[str, Any], scheme: LabelScheme, annotations: Mapping[str, str]
) -> CapacityNeed:
    """Affinity first (the scheduler enforces it), then the annotations; critical pods on-demand."""
    spec = as_mapping(pod.get("spec"))
    from_affinity = affinity_capacity(spec, scheme)
    if is_critical(pod) or from_affinity == "not-spot":
        return CapacityNeed.ON_DEMAND_ONLY
    if from_affinity == "spot":
        return CapacityNeed.SPOT_ONLY
    applied = annotations.get(keys.CAPACITY_APPLIED) or annotations.get(keys.CAPACITY) or ""
    mode = applied.strip().lower()
    return {
        CapacityMode.SPOT.value: CapacityNeed.SPOT_ONLY,
        CapacityMode.ON_DEMAND.value: CapacityNeed.ON_DEMAND_ONLY,
        CapacityMode.SPOT_PREFERRED.value: CapacityNeed.SPOT_PREFERRED,
    }.get(mode, CapacityNeed.ANY)


def _group(meta: Mapping[str, Any], labels: Mapping[str, str], key: str) -> str:
    app = labels.get(SPARK_APP)
    if app:
        return f"spark:{app}"
    owners = meta.get("ownerReferences")
    if isinstance(owners, list):
        for owner in owners:
            if isinstance(owner, Mapping) and owner.get("controller") and owner.get("uid"):
                return f"owner:{owner['uid']}"
    return f"pod:{key}"


# -- resources -------------------------------------------------------------------------


def _container_resources(container: Mapping[str, Any]) -> tuple[int, int]:
    """(millicores, MiB) of one container: requests, else limits; 0 when neither."""
    res = as_mapping(container.get("resources"))
    requests, limits = as_mapping(res.get("requests")), as_mapping(res.get("limits"))
    cpu = requests.get("cpu", limits.get("cpu"))
    mem = requests.get("memory", limits.get("memory"))
    cpu_m = cpu_millis(cpu) if cpu is not None else 0
    mem_b = bytes_of(mem) if mem is not None else 0
    return max(cpu_m, 0), max(-(-mem_b // MIB), 0)


def pod_resources(pod: Mapping[str, Any]) -> Resources:
    """The pod's effective CPU and memory (init-container rule plus overhead), one pod slot."""
    app = [0, 0]
    sidecars = [0, 0]
    init_peak = [0, 0]
    for init, _, container in iter_containers(pod):
        cpu, mem = _container_resources(container)
        if not init:
            app[0] += cpu
            app[1] += mem
        elif container.get("restartPolicy") == "Always":
            sidecars[0] += cpu
            sidecars[1] += mem
        else:
            init_peak[0] = max(init_peak[0], cpu + sidecars[0])
            init_peak[1] = max(init_peak[1], mem + sidecars[1])
    overhead = as_mapping(as_mapping(pod.get("spec")).get("overhead"))
    extra = _container_resources({"resources": {"requests": overhead}})
    return Resources(
        max(app[0] + sidecars[0], init_peak[0]) + extra[0],
        max(app[1] + sidecars[1], init_peak[1]) + extra[1],
        1,
    )


# -- node selection ----------------------------------------------------------------------


def allowed_values(
    spec: Mapping[str, Any], labels: tuple[str, ...], universe: frozenset[str] | None
) -> frozenset[str] | None:
    """Values of a node label the pod may land on; None when unconstrained.

    nodeSelector and the required affinity are ANDed; the affinity's terms
    are ORed, so a term that says nothing about the label leaves it open.
    """
    allowed: frozenset[str] | None = None
    selector = as_mapping(spec.get("nodeSelector"))
    for label in labels:
        value = selector.get(label)
        if value is not None:
            allowed = _meet(allowed, frozenset({str(value)}))
    required = as_mapping(
        as_mapping(as_mapping(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    terms = [t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)]
    if terms:
        union: frozenset[str] = frozenset()
        for term in terms:
            values = _term_values(term, labels, universe)
            if values is None:
                union = frozenset()
                break
            union |= values
        else:
            allowed = _meet(allowed, union)
    return allowed


def _meet(a: frozenset[str] | None, b: frozenset[str]) -> frozenset[str]:
    return b if a is None else a & b


def _term_values(
    term: Mapping[str, Any], labels: tuple[str, ...], universe: frozenset[str] | None
) -> frozenset[str] | None:
    allowed: frozenset[str] | None = None
    for expr in term.get("matchExpressions") or []:
        if not isinstance(expr, Mapping) or expr.get("key") not in labels:
            continue
        values = frozenset(str(v) for v in expr.get("values") or [])
        operator = expr.get("operator")
        if operator == "In":
            allowed = _meet(allowed, values)
        elif operator == "NotIn" and universe is not None:
            allowed = _meet(allowed, universe - values)
        elif operator == "DoesNotExist":
            allowed = frozenset()
    return allowed


__all__ = [
    "ARCH_LABEL",
    "COORDINATOR_FACTOR",
    "CPU_HOUR_USD",
    "GIB_HOUR_USD",
    "GPU_HOUR_USD",
    "RESTART_FACTOR",
    "ZONE_LABELS",
    "allowed_values",
    "capacity_need",
    "estimate_rerun_cost",
    "pod_demand",
    "pod_resources",
]
