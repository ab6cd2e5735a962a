"""The time-stepped run: controllers, scheduler, interruptions, samples, over real HTTP.

Simulated time advances in steps of ``scenario.tick``; step ``k`` is simulated
second ``k * tick`` and starts at real time ``k * tick / compression`` after the
start (the services run in real time, their own timings scaled by the same
factor, see :func:`service_env`). If a step takes longer than its share, the
run falls behind real time and says so in the report's notes. Each step:

1. **observe**: list nodes and the scenario's pods; a pod bound to a node that
   no longer exists is deleted (the pod garbage collector's job);
2. **sample** the cluster for the figures; check pending interruptions for
   recovery;
3. **controllers**: per workload, create missing pods (webhook ``/mutate`` ->
   JSON Patch applied -> create in the API server) and delete surplus ones;
4. **scheduler**: each pending pod, oldest first, is filtered by
   kube-scheduler's own rules (:mod:`.scheduler`), then, for pods the extender
   manages, by ``/filter`` and ``/prioritize``; the best node is bound through
   the extender's ``/bind`` (GPU pods) or a Binding (others). A pod nothing
   can take gets ``PodScheduled=False, reason=Unschedulable`` once, which is
   what the provisioner watches for;
5. **interruptions**: each spot node is interrupted with probability
   ``1 - exp(-rate * tick / 3600)`` (a Poisson process of ``rate`` per
   node-hour, seeded), plus the scenario's scheduled ones; each is a
   ``POST /local/interruptions`` to the provisioner.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from spotpack.catalog.model import Catalog
from spotpack.devcluster.patch import PatchError, json_patch
from spotpack.errors import InvalidInput
from spotpack.simulate.baseline import BaselinePoint, baseline_point, chooser
from spotpack.simulate.clients import (
    ApiRefused,
    KubeApi,
    ServiceClient,
    SimulationError,
    admission_patch,
    review,
)
from spotpack.simulate.metrics import Interruption, RunRecord, affected_workloads, recovered
from spotpack.simulate.observe import WORKLOAD_LABEL, NodeSample, Sample, take_sample
from spotpack.simulate.scenario import Scenario
from spotpack.simulate.scheduler import (
    Candidate,
    Room,
    best_node,
    feasible,
    managed_by_extender,
    pod_request,
    used_by_node,
)
from spotpack.simulate.workloads import LivePod, pod_manifest, reconcile, seq_of
from spotpack.vgpu.model import as_mapping

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SCHEDULER_NAME = "spotpack-scheduler"
LAG_NOTE_STEPS = 2


class Endpoints(Protocol):
    """Where the services are (the stack's ``Endpoints`` fits this)."""

    @property
    def webhook_url(self) -> str: ...

    @property
    def extender_url(self) -> str: ...

    @property
    def provisioner_url(self) -> str | None: ...

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def ca_file(self) -> Path: ...


def service_env(scenario: Scenario) -> dict[str, dict[str, str]]:
    """Extra environment per service: their timings in real seconds for compressed time.

    Simulated durations (node start-up, scale-down delay, notice window, and the
    provisioner's production batch windows of 1 s idle / 10 s max and 30 s
    re-plan) are divided by the compression, with floors that keep the
    provisioner's loop from spinning; its garbage collection is made frequent
    (it is what registers the local cloud's pending nodes).
    """
    real = scenario.real_seconds
    prov = {
        "CLOUD": "local",
        "REGION": scenario.region,
        "BATCH_IDLE_SECONDS": f"{max(real(1.0), 0.05):.3f}",
        "BATCH_MAX_SECONDS": f"{max(real(10.0), 0.25):.3f}",
        "TICK_SECONDS": "0.05",
        "SCAN_SECONDS": "0.2",
        "REPLAN_SECONDS": f"{max(real(30.0), 0.5):.3f}",
        "DRAIN_RETRY_SECONDS": "0.2",
        "REGISTRATION_TIMEOUT_SECONDS": "60",
        "LOCAL_REGISTRATION_DELAY_SECONDS": f"{real(scenario.node_startup_seconds):.3f}",
        "EMPTY_NODE_DELAY_SECONDS": f"{real(scenario.scale_down_delay_seconds):.3f}",
        "NOTICE_WINDOW_SECONDS": f"{max(real(scenario.interruptions.warning_seconds), 0.05):.3f}",
    }
    if scenario.zones:
        prov["ZONES"] = "[" + ",".join(f'"{z}"' for z in scenario.zones) + "]"
    return {
        "webhook": {"SPOTPACK_WEBHOOK_SCHEDULER_NAME": SCHEDULER_NAME},
        "extender": {"SPOTPACK_EXTENDER_REGION": scenario.region},
        "provisioner": {f"SPOTPACK_PROVISIONER_{k}": v for k, v in prov.items()},
    }


def interruption_probability(rate_per_hour: float, step_seconds: float) -> float:
    """P(at least one event in a step) of a Poisson process: ``1 - exp(-rate * step / 3600)``."""
    return 1.0 - math.exp(-rate_per_hour * step_seconds / 3600.0)


class Progress(Protocol):
    """Where the run reports how far it is (a terminal line, or nothing in tests)."""

    def update(self, t: float, total: float, status: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class _State:
    """What the engine remembers between steps."""

    next_seq: dict[str, int] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    marked: set[str] = field(default_factory=set)
    denied: dict[str, str] = field(default_factory=dict)
    interruptions: list[Interruption] = field(default_factory=list)
    notified: set[str] = field(default_factory=set)
    samples: list[Sample] = field(default_factory=list)
    baseline: list[BaselinePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lagged: float = 0.0


class Engine:
    """One run of a scenario against running services; :meth:`run` returns the record."""

    def __init__(
        self,
        scenario: Scenario,
        endpoints: Endpoints,
        catalog: Catalog,
        *,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.catalog = catalog
        self.api = KubeApi.from_kubeconfig(endpoints.kubeconfig)
        self.webhook = ServiceClient(endpoints.webhook_url, endpoints.ca_file, name="webhook")
        self.extender = ServiceClient(endpoints.extender_url, endpoints.ca_file, name="extender")
        if not endpoints.provisioner_url:
            raise SimulationError("the stack runs without a provisioner; simulate needs one")
        self.provisioner = ServiceClient(
            endpoints.provisioner_url, endpoints.ca_file, name="provisioner"
        )
        self.progress = progress
        self.sleep = sleep
        self.clock = clock
        self.rng = random.Random(scenario.seed)  # noqa: S311 - a seeded simulation, no secrets
        self.choose = chooser(catalog, scenario.region)
        self.state = _State()
        self._workloads = {w.name: w for w in scenario.workloads}

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> RunRecord:
        sc = self.scenario
        for namespace in sc.namespaces():
            self.api.ensure_namespace(namespace)
        steps = math.floor(sc.duration / sc.tick)
        start = self.clock()
        try:
            for k in range(steps + 1):
                t = min(k * sc.tick, sc.duration)
                self._wait_until(start + sc.real_seconds(t), t)
                try:
                    self.step(t)
                except InvalidInput as exc:
                    raise SimulationError(
                        f"at simulated second {t:g}: {exc}; the run stops rather than report "
                        "figures it cannot back"
                    ) from exc
        finally:
            if self.progress is not None:
                self.progress.close()
        if self.state.lagged > 0:
            self.state.notes.append(
                f"the run fell behind real time by up to {self.state.lagged:.1f} s: the "
                "services saw a slower clock than the scenario says; lower compression"
            )
        for key, reason in sorted(self.state.denied.items())[:5]:
            self.state.notes.append(f"webhook denied {key}: {reason}")
        return RunRecord(
            scenario=sc.name,
            duration=sc.duration,
            samples=tuple(self.state.samples),
            baseline=tuple(self.state.baseline),
            created=dict(self.state.created),
            bound=dict(self.state.bound),
            interruptions=tuple(self.state.interruptions),
            node_startup_seconds=sc.node_startup_seconds,
            notes=tuple(self.state.notes),
        )

    def _wait_until(self, due: float, t: float) -> None:
        left = due - self.clock()
        if left > 0:
            self.sleep(left)
        elif -left > LAG_NOTE_STEPS * self.scenario.real_seconds(self.scenario.tick):
            self.state.lagged = max(self.state.lagged, -left)
            log.debug("behind real time", extra={"t": t, "late": round(-left, 2)})

    def step(self, t: float) -> None:
        nodes = self.api.list_nodes()
        pods = self._collect_garbage(self.api.list_pods(WORKLOAD_LABEL), nodes)
        for pod in pods:
            key = _key(pod)
            if as_mapping(pod.get("spec")).get("nodeName") and key not in self.state.bound:
                self.state.bound[key] = t
        desired = {w.name: w.desired(t) for w in self.scenario.workloads}
        sample = take_sample(t, nodes, pods, desired)
        self.state.samples.append(sample)
        self.state.baseline.append(baseline_point(sample, self.choose))
        for event in self.state.interruptions:
            if event.hit and event.recovered_at is None and recovered(event, sample):
                event.recovered_at = t
        pods = self._controllers(t, pods)
        placed = self._schedule(t, nodes, pods)
        self._interrupt(t, sample, placed)
        if self.progress is not None:
            bound = sum(1 for p in sample.pods if p.bound)
            self.progress.update(
                t,
                self.scenario.duration,
                f"nodes {len(sample.nodes)} pods {bound}/{len(sample.pods)} "
                f"interruptions {len(self.state.interruptions)}",
            )

    # --- pod garbage collection and controllers ------------------------------------------

    def _collect_garbage(self, pods: list[Obj], nodes: list[Obj]) -> list[Obj]:
        names = {str(as_mapping(n.get("metadata")).get("name")) for n in nodes}
        kept = []
        for pod in pods:
            node = as_mapping(pod.get("spec")).get("nodeName")
            if as_mapping(pod.get("metadata")).get("deletionTimestamp"):
                continue
            if node and node not in names:
                meta = pod["metadata"]
                self.api.delete_pod(meta["namespace"], meta["name"])
                continue
            kept.append(pod)
        return kept

    def _controllers(self, t: float, pods: list[Obj]) -> list[Obj]:
        by_workload: dict[str, list[Obj]] = {}
        for pod in pods:
            labels = as_mapping(as_mapping(pod.get("metadata")).get("labels"))
            by_workload.setdefault(str(labels.get(WORKLOAD_LABEL)), []).append(pod)
        out: list[Obj] = []
        for workload in self.scenario.workloads:
            mine = by_workload.get(workload.name, [])
            live = [
                LivePod(
                    p["metadata"]["name"],
                    seq_of(p["metadata"]["name"], workload),
                    bool(as_mapping(p.get("spec")).get("nodeName")),
                )
                for p in mine
            ]
            decision = reconcile(workload.desired(t), live)
            gone = set(decision.delete)
            for name in decision.delete:
                self.api.delete_pod(workload.namespace, name)
            out.extend(p for p in mine if p["metadata"]["name"] not in gone)
            for _ in range(decision.create):
                created = self._create(workload.name, t)
                if created is not None:
                    out.append(created)
        return out

    def _create(self, workload_name: str, t: float) -> Obj | None:
        workload = self._workloads[workload_name]
        seq = self.state.next_seq.get(workload.name, 0)
        self.state.next_seq[workload.name] = seq + 1
        pod = pod_manifest(workload, seq, self.scenario.name)
        key = _key(pod)
        status, answer = self.webhook.post("/mutate", review(pod, str(uuid.uuid4())))
        if status != 200:
            raise SimulationError(f"webhook answered {status} for {key}: {str(answer)[:200]}")
        allowed, ops, message = admission_patch(answer)
        if not allowed:
            self.state.denied[key] = message
            log.warning("webhook denied a pod", extra={"pod": key, "reason": message})
            return None
        try:
            mutated = json_patch(pod, ops) if ops else pod
        except PatchError as exc:
            raise SimulationError(f"webhook patch for {key} does not apply: {exc}") from exc
        created = self.api.create_pod(mutated)
        self.state.created[key] = t
        return created

    # --- scheduling ------------------------------------------------------------------------

    def _schedule(self, t: float, nodes: list[Obj], pods: list[Obj]) -> dict[str, list[str]]:
        """Place the pending pods; the workloads of the pods bound this step, per node."""
        placed: dict[str, list[str]] = {}
        used: dict[str, Room] = used_by_node(pods)
        pending = [p for p in pods if not as_mapping(p.get("spec")).get("nodeName")]
        pending.sort(key=lambda p: (self.state.created.get(_key(p), t), _key(p)))
        for pod in pending:
            node = self._place(pod, nodes, used)
            key = _key(pod)
            if node is not None:
                used[node] = used.get(node, Room()) + pod_request(pod)
                self.state.bound[key] = t
                self.state.marked.discard(key)
                labels = as_mapping(as_mapping(pod.get("metadata")).get("labels"))
                placed.setdefault(node, []).append(str(labels.get(WORKLOAD_LABEL, "")))
            elif key not in self.state.marked:
                self._mark_unschedulable(pod, len(nodes))
                self.state.marked.add(key)
        return placed

    def _place(self, pod: Obj, nodes: list[Obj], used: Mapping[str, Room]) -> str | None:
        """Bind ``pod`` to the best feasible node; the node's name, or None (retried later)."""
        candidates = feasible(pod, nodes, used)
        if not candidates:
            return None
        if managed_by_extender(pod):
            return self._place_with_extender(pod, candidates)
        choice = best_node(candidates, None)
        if choice is None:
            return None
        meta = pod["metadata"]
        try:
            self.api.bind(meta["namespace"], meta["name"], meta.get("uid", ""), choice)
        except ApiRefused as exc:
            log.info("bind refused", extra={"pod": _key(pod), "error": str(exc)})
            return None
        return choice

    def _place_with_extender(self, pod: Obj, candidates: list[Candidate]) -> str | None:
        """Filter, prioritize and bind through the extender, as kube-scheduler does."""
        names = [c.name for c in candidates]
        status, result = self.extender.post(
            "/filter", {"Pod": pod, "Nodes": None, "NodeNames": names}
        )
        ok = status == 200 and isinstance(result, dict)
        kept = [str(n) for n in (result.get("NodeNames") or [])] if ok else []
        choice = best_node(candidates, self._scores(pod, kept)) if kept else None
        if choice is None:
            return None
        meta = pod["metadata"]
        args = {
            "PodName": meta["name"],
            "PodNamespace": meta["namespace"],
            "PodUID": meta.get("uid", ""),
            "Node": choice,
        }
        status, bound = self.extender.post("/bind", args)
        if status != 200 or not isinstance(bound, dict) or bound.get("Error"):
            log.info("extender bind failed", extra={"pod": _key(pod), "answer": str(bound)[:200]})
            return None
        return choice

    def _scores(self, pod: Obj, kept: list[str]) -> dict[str, int]:
        """The extender's 0..10 scores of ``kept`` (0 for a node it did not score)."""
        status, scores = self.extender.post(
            "/prioritize", {"Pod": pod, "Nodes": None, "NodeNames": kept}
        )
        table = dict.fromkeys(kept, 0)
        if status == 200 and isinstance(scores, list):
            for entry in scores:
                if isinstance(entry, dict) and entry.get("Host") in table:
                    table[str(entry["Host"])] = int(entry.get("Score", 0))
        return table

    def _mark_unschedulable(self, pod: Obj, nodes: int) -> None:
        meta = pod["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": f"0/{nodes} nodes are available for the pod (simulated kube-scheduler)",
            "lastTransitionTime": now,
        }
        try:
            self.api.patch_status(
                meta["namespace"], meta["name"], {"phase": "Pending", "conditions": [condition]}
            )
        except ApiRefused as exc:
            if exc.status != 404:
                raise

    # --- interruptions ---------------------------------------------------------------------

    def _interrupt(self, t: float, sample: Sample, placed: Mapping[str, list[str]]) -> None:
        """Interrupt spot nodes; the workloads hit are those of the sample plus ``placed``
        (pods bound this step, after the sample was taken)."""
        by_name = {n.name: n for n in sample.nodes}
        for name, reason in self._victims(t, sample, placed):
            status, answer = self.provisioner.post("/local/interruptions", {"node": name})
            if status != 202:
                self.state.notes.append(f"interruption of {name} refused: {answer}")
                continue
            self.state.notified.add(name)
            self.state.interruptions.append(
                Interruption(
                    t=t,
                    node=name,
                    instance_type=by_name[name].instance_type,
                    reason=reason,
                    affected=tuple(
                        sorted(set(affected_workloads(sample, name)) | set(placed.get(name, ())))
                    ),
                )
            )
            log.info("interrupted", extra={"node": name, "t": t, "reason": reason})

    def _victims(
        self, t: float, sample: Sample, placed: Mapping[str, list[str]]
    ) -> list[tuple[str, str]]:
        """The spot nodes to interrupt this step and why: each by chance (``poisson``), then,
        per scheduled time in the step, the busiest one not chosen yet (``scheduled``)."""
        spec = self.scenario.interruptions
        spot = [
            n
            for n in sample.nodes
            if n.spot and not n.interrupted and n.name not in self.state.notified
        ]
        chosen: list[tuple[str, str]] = []
        if spec.rate_per_node_hour > 0:
            p = interruption_probability(spec.rate_per_node_hour, self.scenario.tick)
            chosen.extend((n.name, "poisson") for n in spot if self.rng.random() < p)
        for at in spec.at:
            if t <= at < t + self.scenario.tick:
                left = [n for n in spot if n.name not in {c[0] for c in chosen}]
                if not left:
                    self.state.notes.append(f"no spot node to interrupt at t={at:g}s")
                    continue
                chosen.append((busiest(left, sample, placed).name, "scheduled"))
        return chosen

    # --- the end ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Delete the pods of the run (on a real cluster they would outlive it); close clients."""
        try:
            for pod in self.api.list_pods(WORKLOAD_LABEL):
                meta = pod["metadata"]
                self.api.delete_pod(meta["namespace"], meta["name"])
        except SimulationError as exc:
            log.warning("cleanup failed", extra={"error": str(exc)})
        finally:
            for client in (self.webhook, self.extender, self.provisioner):
                client.close()
            self.api.close()


def busiest(nodes: list[NodeSample], sample: Sample, placed: Mapping[str, list[str]]) -> NodeSample:
    """The node with the most workload pods (sampled, plus ``placed`` this step); a tie goes
    to the greatest name, so a seeded run always picks the same one."""
    return max(
        nodes,
        key=lambda n: (
            sum(1 for p in sample.pods if p.node == n.name) + len(placed.get(n.name, ())),
            n.name,
        ),
    )


def _key(pod: Mapping[str, Any]) -> str:
    """``namespace/name``: how the run's records name a pod."""
    meta = as_mapping(pod.get("metadata"))
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


__all__ = ["Endpoints", "Engine", "Progress", "interruption_probability", "service_env"]
