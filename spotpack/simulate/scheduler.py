"""kube-scheduler's own checks and scores, for the simulator that plays it (pure).

The stack has no kube-scheduler, so the simulator does its part: for each
pending pod it keeps the nodes kube-scheduler itself would keep, then (for
pods the extender manages, i.e. with ``nvidia.com/gpu``) asks the extender to
filter and prioritize them. The checks here are the default plugins that
matter for the pods a scenario makes:

- node ready and schedulable, and not being deleted;
- ``NoSchedule``/``NoExecute`` taints tolerated (TaintToleration);
- ``nodeSelector`` and required node affinity (NodeAffinity; terms are ORed,
  expressions ANDed; ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``,
  ``Lt``; ``matchFields`` on ``metadata.name``);
- CPU, memory, pod slots and ``nvidia.com/gpu`` (the vGPU slots nodes
  advertise) against allocatable minus the requests of bound pods
  (NodeResourcesFit). ``gpumem``/``gpucores`` are ``ignoredByScheduler``:
  the extender decides them.

Score of a node (higher wins, ties by name)::

    score = 3 * 10 * extender_score                  (the extender's weight is 3)
          + 2 * 100 * preferred / max_preferred      (NodeAffinity, weight 2)
          + 1 * 100 * free_fraction                  (NodeResourcesFit least-allocated)

where ``preferred`` is the sum of the weights of the pod's preferred terms the
node matches and ``free_fraction`` is the mean of the free CPU and memory
fractions after placing the pod.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spotpack.errors import InvalidInput
from spotpack.provisioning.demand import pod_resources
from spotpack.quantity import bytes_of, cpu_millis, parse_whole
from spotpack.vgpu.model import as_mapping, iter_containers

GPU = "nvidia.com/gpu"
MIB = 1024 * 1024
EXTENDER_WEIGHT = 3
AFFINITY_WEIGHT = 2
FIT_WEIGHT = 1


@dataclass(frozen=True, slots=True)
class Room:
    """Allocatable or used: CPU millicores, MiB, pod slots, vGPU slots."""

    cpu_m: int = 0
    mem_mib: int = 0
    pods: int = 0
    gpus: int = 0

    def __add__(self, other: Room) -> Room:
        return Room(
            self.cpu_m + other.cpu_m,
            self.mem_mib + other.mem_mib,
            self.pods + other.pods,
            self.gpus + other.gpus,
        )

    def fits_in(self, free: Room) -> bool:
        return (
            self.cpu_m <= free.cpu_m
            and self.mem_mib <= free.mem_mib
            and self.pods <= free.pods
            and self.gpus <= free.gpus
        )


def pod_request(pod: Mapping[str, Any]) -> Room:
    """What a pod takes from a node: CPU/memory (init-container rule), one slot, vGPU slots.

    A request that does not parse raises :class:`InvalidInput` naming the pod:
    the API server would have refused such a pod, and reading it as zero would
    let it fit anywhere and make the run look cheaper than it is.
    """
    meta = as_mapping(pod.get("metadata"))
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    try:
        res = pod_resources(pod)
    except InvalidInput as exc:
        raise InvalidInput(f"pod {key}: cannot read its requests: {exc}") from exc
    cpu, mem = res.cpu_m, res.mem_mib
    gpus = 0
    init_peak = 0
    for init, _, container in iter_containers(pod):
        resources = as_mapping(container.get("resources"))
        value = as_mapping(resources.get("limits")).get(GPU)
        if value is None:
            value = as_mapping(resources.get("requests")).get(GPU)
        try:
            count = parse_whole(value, GPU) if value is not None else 0
        except InvalidInput as exc:
            raise InvalidInput(f"pod {key}: cannot read its requests: {exc}") from exc
        if init:
            init_peak = max(init_peak, count)
        else:
            gpus += count
    return Room(cpu, mem, 1, max(gpus, init_peak))


def node_allocatable(node: Mapping[str, Any]) -> Room:
    """A node's allocatable room; one that does not parse is no room (nothing fits there)."""
    alloc = as_mapping(as_mapping(node.get("status")).get("allocatable"))
    try:
        return Room(
            cpu_millis(alloc.get("cpu", "0")),
            bytes_of(alloc.get("memory", "0")) // MIB,
            parse_whole(alloc.get("pods", "0"), "pods"),
            parse_whole(alloc.get(GPU, "0"), GPU),
        )
    except InvalidInput:
        return Room()


def node_ready(node: Mapping[str, Any]) -> bool:
    meta = as_mapping(node.get("metadata"))
    if meta.get("deletionTimestamp") or as_mapping(node.get("spec")).get("unschedulable"):
        return False
    conditions = as_mapping(node.get("status")).get("conditions") or []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``."""
    for tol in tolerations:
        effect = tol.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key")
        operator = tol.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def taints_tolerated(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    tolerations = [
        t for t in as_mapping(pod.get("spec")).get("tolerations") or [] if isinstance(t, Mapping)
    ]
    for taint in as_mapping(node.get("spec")).get("taints") or []:
        if not isinstance(taint, Mapping) or taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, taint):
            return False
    return True


def _compare(value: str, values: list[str], greater: bool) -> bool:
    if len(values) != 1:
        return False
    try:
        have, want = int(value), int(values[0])
    except ValueError:
        return False
    return have > want if greater else have < want


def _expression(expr: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """One NodeSelectorRequirement against a node's labels (an unknown operator: no match)."""
    key = str(expr.get("key", ""))
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    value = str(labels.get(key, ""))
    checks: dict[str, Callable[[], bool]] = {
        "In": lambda: present and value in values,
        "NotIn": lambda: not present or value not in values,
        "Exists": lambda: present,
        "DoesNotExist": lambda: not present,
        "Gt": lambda: present and _compare(value, values, greater=True),
        "Lt": lambda: present and _compare(value, values, greater=False),
    }
    check = checks.get(str(expr.get("operator")))
    return check() if check is not None else False


def term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: every expression and field must hold; an empty term matches nothing."""
    meta = as_mapping(node.get("metadata"))
    labels = as_mapping(meta.get("labels"))
    exprs = [e for e in term.get("matchExpressions") or [] if isinstance(e, Mapping)]
    fields = [e for e in term.get("matchFields") or [] if isinstance(e, Mapping)]
    if not exprs and not fields:
        return False
    by_field = {"metadata.name": meta.get("name", "")}
    return all(_expression(e, labels) for e in exprs) and all(
        _expression(f, by_field) for f in fields
    )


def _node_affinity(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    affinity = as_mapping(as_mapping(pod.get("spec")).get("affinity"))
    return as_mapping(affinity.get("nodeAffinity"))


def selector_matches(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``nodeSelector`` and required node affinity (NodeAffinity's filter)."""
    labels = as_mapping(as_mapping(node.get("metadata")).get("labels"))
    selector = as_mapping(as_mapping(pod.get("spec")).get("nodeSelector"))
    if any(str(labels.get(k)) != str(v) for k, v in selector.items()):
        return False
    required = as_mapping(_node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution"))
    terms = [t for t in required.get("nodeSelectorTerms") or [] if isinstance(t, Mapping)]
    return "nodeSelectorTerms" not in required or any(term_matches(t, node) for t in terms)


def preferred_score(pod: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[int, int]:
    """(weights of matching preferred terms, sum of all preferred weights)."""
    prefs = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    got = total = 0
    for pref in prefs:
        if not isinstance(pref, Mapping):
            continue
        weight = int(pref.get("weight", 0) or 0)
        total += weight
        if term_matches(as_mapping(pref.get("preference")), node):
            got += weight
    return got, total


def used_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, Room]:
    """Requests of bound, unfinished pods per node."""
    used: dict[str, Room] = {}
    for pod in pods:
        node = as_mapping(pod.get("spec")).get("nodeName")
        phase = as_mapping(pod.get("status")).get("phase")
        if not node or phase in ("Succeeded", "Failed"):
            continue
        used[str(node)] = used.get(str(node), Room()) + pod_request(pod)
    return used


@dataclass(frozen=True, slots=True)
class Candidate:
    """A node that passed kube-scheduler's own filters, with its own score parts."""

    name: str
    affinity: float
    fit: float


def feasible(
    pod: Mapping[str, Any],
    nodes: Sequence[Mapping[str, Any]],
    used: Mapping[str, Room],
) -> list[Candidate]:
    """The nodes kube-scheduler itself would keep for ``pod``, with their own scores."""
    want = pod_request(pod)
    out = []
    for node in nodes:
        name = str(as_mapping(node.get("metadata")).get("name", ""))
        if not node_ready(node) or not taints_tolerated(pod, node):
            continue
        if not selector_matches(pod, node):
            continue
        alloc = node_allocatable(node)
        taken = used.get(name, Room())
        free = Room(
            alloc.cpu_m - taken.cpu_m,
            alloc.mem_mib - taken.mem_mib,
            alloc.pods - taken.pods,
            alloc.gpus - taken.gpus,
        )
        if not want.fits_in(free):
            continue
        got, total = preferred_score(pod, node)
        affinity = 100.0 * got / total if total else 0.0
        cpu_free = (free.cpu_m - want.cpu_m) / alloc.cpu_m if alloc.cpu_m else 0.0
        mem_free = (free.mem_mib - want.mem_mib) / alloc.mem_mib if alloc.mem_mib else 0.0
        out.append(Candidate(name, affinity, 100.0 * (cpu_free + mem_free) / 2))
    return out


def best_node(candidates: Sequence[Candidate], extender: Mapping[str, int] | None) -> str | None:
    """The highest total score (module docstring); ties by name. None when nothing is left."""
    scored = []
    for c in candidates:
        if extender is not None and c.name not in extender:
            continue
        ext = extender.get(c.name, 0) if extender is not None else 0
        total = EXTENDER_WEIGHT * 10 * ext + AFFINITY_WEIGHT * c.affinity + FIT_WEIGHT * c.fit
        scored.append((-total, c.name))
    return min(scored)[1] if scored else None


def managed_by_extender(pod: Mapping[str, Any]) -> bool:
    """Whether kube-scheduler would call the extender: the pod names ``nvidia.com/gpu*``."""
    for _, _, container in iter_containers(pod):
        resources = as_mapping(container.get("resources"))
        for part in ("limits", "requests"):
            if any(str(k).startswith(GPU) for k in as_mapping(resources.get(part))):
                return True
    return False


__all__ = [
    "Candidate",
    "Room",
    "best_node",
    "feasible",
    "managed_by_extender",
    "node_allocatable",
    "node_ready",
    "pod_request",
    "preferred_score",
    "selector_matches",
    "taints_tolerated",
    "term_matches",
    "tolerates",
    "used_by_node",
]
