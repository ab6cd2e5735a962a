"""The provisioner's loop: observe -> plan -> act, one thread, only while leading.

**Observe.** Informers keep nodes and pods; the pod handler feeds newly
Unschedulable pods into the :class:`~provisioner.batcher.Batcher` (observing
goes on in every replica, so a new leader starts warm). Notices arrive through
:meth:`Controller.submit` from a :class:`NoticePump`.

**Each tick** (only on the leader), on one snapshot of the caches:

1. interruption notices: taint, replace at once, start the drain;
2. drains: due evictions, finished drains removed;
3. claims: the lifecycle step; timed-out claims terminated, their pods planned again;
4. provisioning, when a batch window closed (or after a release, or every
   ``replan_interval`` while pods wait): existing nodes and in-flight claims
   first, then new nodes, by the pure planner alone; each new node is
   launched as a claim; offerings out of capacity are cached and the failed
   pods **re-planned in the same tick** without them (other types, then
   on-demand where the pod allows it); throttling backs off;
5. scale-down of empty nodes of ours after ``empty_delay``;
6. orphan collection every ``gc_interval``.

**Restarts and leader changes.** Claims live in memory only; the cloud's
tags are the truth. When a replica becomes leader it *adopts* every instance
the cloud lists as ours (``list_owned``) as a claim: unregistered ones count
as in-flight capacity, so the pending pods they were launched for are placed
on them again rather than launched twice, and the registration timeout still
applies. A launch also looks its (deterministic) claim id up first
(``find``), which covers an instance the listing did not show yet. So an
instance launched just before a crash is **adopted**; the orphan collector
only reaps instances that appear later without a claim and never register.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from provisioner.batcher import Batcher
from provisioner.capacity import (
    DemandReader,
    Facts,
    current_usage,
    existing_capacities,
    headroom,
    inflight_capacities,
    limited_reason,
    over_limit,
    pending_pods,
)
from provisioner.decide import (
    Removal,
    busy,
    claim_actions,
    in_flight_targets,
    launches,
    scale_down,
    unregistered,
    vanished,
)
from provisioner.events import (
    EventRecorder,
    ObjectRef,
    adopted_message,
    launched_message,
    nominated_message,
    removed_message,
    unplaceable_message,
)
from provisioner.interruption import Interruptions
from provisioner.kubeapi import ClusterApi, cordon
from provisioner.launcher import Launcher, Result
from provisioner.lifecycle import Claim, ClaimBook, Verdict
from provisioner.metrics import ProvisionerMetrics
from provisioner.views import InfoCache, PodInfo, Snapshot, pod_info
from spotpack.capacity import LabelScheme
from spotpack.cloud.base import (
    CloudProvider,
    InterruptionNotice,
    NoticeSource,
    OfferingCache,
    owned_without_claims,
)
from spotpack.errors import SpotpackError
from spotpack.provisioning.model import NO_LIMITS, Limits, NodeCapacity, PlannedNode, PodDemand
from spotpack.provisioning.offerings import arch_refusal
from spotpack.provisioning.plan import plan

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ARCHITECTURES_ENV = "SPOTPACK_PROVISIONER_ARCHITECTURES"
PLANNER_LIMIT = "would exceed the limit"
"""How the planner starts the reason of pods left out for the limits it was given."""


class ClusterView(Protocol):
    """What the loop reads: the informers' caches (raw dicts, read-only)."""

    def nodes(self) -> list[Obj]: ...

    def pods(self) -> list[Obj]: ...

    def synced(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """The loop's timings and limits (seconds, epoch clock); see the settings for defaults."""

    cluster_name: str = "spotpack"
    registration_timeout: float = 900.0
    empty_delay: float = 300.0
    orphan_grace: float = 120.0
    gc_interval: float = 60.0
    replan_interval: float = 30.0
    scan_interval: float = 5.0
    """How often empty nodes and gone claims are looked for."""
    tick: float = 1.0
    limits: Limits = NO_LIMITS
    notice_window: float = 120.0
    drain_retry: float = 2.0
    max_rounds: int = 4
    backoff_initial: float = 2.0
    backoff_max: float = 60.0
    labels: Mapping[str, str] = field(default_factory=dict)
    architectures: frozenset[str] | None = None
    """The architectures new nodes may have (the offerings hold no others); None: any.
    Only used to say why a pod pinned to another one stays pending."""


@dataclass
class _Backoff:
    """Deterministic exponential backoff on the loop's clock (throttling, failed calls)."""

    initial: float
    maximum: float
    failures: int = 0
    until: float = 0.0

    def fail(self, now: float) -> float:
        delay = min(self.maximum, self.initial * (2.0**self.failures))
        self.failures = min(self.failures + 1, 30)
        self.until = now + delay
        return delay

    def succeed(self) -> None:
        self.failures = 0
        self.until = 0.0

    def waiting(self, now: float) -> bool:
        return now < self.until


@dataclass(frozen=True, slots=True)
class Collaborators:
    """Everything the loop talks to, injected (fakes in unit tests)."""

    view: ClusterView
    api: ClusterApi
    provider: CloudProvider
    facts: Facts
    scheme: LabelScheme
    metrics: ProvisionerMetrics
    events: EventRecorder
    cache: OfferingCache
    is_leader: Callable[[], bool]
    notices: NoticeSource | None = None
    known_zones: tuple[str, ...] = ()
    rerun_hours: float = 1.0


class Controller:
    """The loop; :meth:`tick` is one round (tests call it directly with a fake clock)."""

    def __init__(
        self,
        config: LoopConfig,
        parts: Collaborators,
        *,
        batcher: Batcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.parts = parts
        self.clock = clock
        self.batcher = batcher if batcher is not None else Batcher()
        self.book = ClaimBook()
        self.reader = DemandReader(parts.scheme, parts.known_zones, parts.rerun_hours)
        self.launcher = Launcher(
            provider=parts.provider,
            cache=parts.cache,
            cluster_name=config.cluster_name,
            labels=config.labels,
            price_of=parts.facts.price,
            cards_of=parts.facts.cards,
            clock=clock,
        )
        self.interruptions = Interruptions(
            api=parts.api,
            provider=parts.provider,
            book=self.book,
            cache=parts.cache,
            events=parts.events,
            metrics=parts.metrics,
            clock=clock,
            replace=self._replace,
            window=config.notice_window,
            retry=config.drain_retry,
        )
        self.backoff = _Backoff(config.backoff_initial, config.backoff_max)
        self.empty_since: dict[str, float] = {}
        self.unplaceable: dict[str, str] = {}
        self._inbox: queue.SimpleQueue[InterruptionNotice] = queue.SimpleQueue()
        self._pending_since: dict[str, float] = {}
        self._pending_lock = threading.Lock()
        self._replan = False
        self._next_replan = 0.0
        self._next_gc = 0.0
        self._next_scan = 0.0
        self._leading = False
        self._adopted = False
        self._wake = threading.Event()
        self._infos = InfoCache()
        parts.metrics.bind(
            cost_per_hour=self.cost_per_hour,
            claims_by_phase=self.book.phases,
            leader=parts.is_leader,
        )

    # --- observe (informer threads) ------------------------------------------------------

    def observe_pod(self, pod: Obj) -> None:
        """Pod added or changed: open/extend a batch for newly pending pods; time the wait."""
        info = pod_info(pod)
        now = self.clock()
        with self._pending_lock:
            since = self._pending_since.get(info.key)
            if info.pending:
                if since is None:
                    self._pending_since[info.key] = info.unschedulable_since or now
                    if self.batcher.add(info.key):
                        self._wake.set()
                return
            if since is not None:
                del self._pending_since[info.key]
                if info.node_name:
                    self.parts.metrics.pending_seconds.observe(max(now - since, 0.0))

    def forget_pod(self, pod: Obj) -> None:
        info = pod_info(pod)
        with self._pending_lock:
            self._pending_since.pop(info.key, None)

    def submit(self, notices: Sequence[InterruptionNotice]) -> None:
        """Queue notices for the loop (from the pump's thread)."""
        for notice in notices:
            self._inbox.put(notice)
        if notices:
            self._wake.set()

    # --- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("provisioner tick failed")
            timeout = self.config.tick
            left = self.batcher.time_left()
            if left is not None:
                timeout = min(timeout, max(left, 0.01))
            self._wake.wait(timeout)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def snapshot(self) -> Snapshot:
        view = self.parts.view
        return Snapshot.build(view.nodes(), view.pods(), self.parts.scheme, self._infos)

    def acting(self) -> bool:
        return self.parts.is_leader()

    def tick(self) -> None:
        if not self.acting():
            if self._leading:
                log.info("not leading: the loop only observes")
            self._leading = False
            self.batcher.take()
            return
        if not self.parts.view.synced():
            return
        now = self.clock()
        if not self._leading:
            self._leading = True
            self._adopted = False
            self.empty_since.clear()
            self._replan = True
            self._next_scan = 0.0
            self.batcher.flush()
        if not self._due(now):
            return
        snap = self.snapshot()
        if not self._adopted:
            self._guard("adopt", self.adopt)
            self._guard("resume drains", self.interruptions.resume, snap)
        self._guard("notices", self._handle_notices, snap)
        self._guard("drains", self.interruptions.progress, snap, acting=self.acting)
        self._guard("claims", self._claims, snap, now)
        self._guard("provision", self._maybe_provision, snap, now)
        if now >= self._next_scan:
            self._next_scan = now + self.config.scan_interval
            self._guard("scale-down", self._scale_down, snap, now)
        self._guard("gc", self._maybe_gc, snap, now)

    def _due(self, now: float) -> bool:
        """Whether this tick has anything to do; a snapshot of 50,000 pods is not free."""
        return (
            not self._adopted
            or not self._inbox.empty()
            or bool(self.interruptions.drains)
            or any(c.in_flight for c in self.book.all())
            or self._replan
            or self.batcher.due()
            or now >= self._next_replan
            or now >= self._next_scan
            or now >= self._next_gc
        )

    def _guard(self, what: str, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """One step failing (an API down, a bug on odd input) must not stop the others."""
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("provisioner step failed", extra={"step": what})

    # --- adoption ------------------------------------------------------------------------

    def adopt(self) -> None:
        """Every instance the cloud lists as ours becomes a claim (see the module docstring)."""
        instances = self.parts.provider.list_owned()
        facts = self.parts.facts
        adopted = 0
        for instance in instances:
            if not instance.claim_id or self.book.get(instance.claim_id) is not None:
                continue
            price = facts.price(instance.instance_type, instance.zone, instance.capacity) or 0.0
            claim = Claim.from_instance(
                instance, price_per_hour=price, gpus=facts.cards(instance.instance_type)
            )
            self.book.put(claim)
            adopted += 1
        self._adopted = True
        if adopted:
            log.info("adopted instances as claims", extra={"claims": adopted})

    # --- notices -------------------------------------------------------------------------

    def _handle_notices(self, snap: Snapshot) -> None:
        while True:
            try:
                notice = self._inbox.get_nowait()
            except queue.Empty:
                return
            if not self.acting():
                return  # not acknowledged: the queue delivers it again to the leader
            if self.interruptions.handle(notice, snap) and self.parts.notices is not None:
                try:
                    self.parts.notices.ack(notice)
                except SpotpackError as exc:
                    log.warning("notice not acknowledged", extra={"error": str(exc)})
            if self.interruptions.released:
                self._replan = True

    def _replace(
        self,
        snap: Snapshot,
        pods: list[PodInfo],
        exclude: frozenset[str],
        avoid: frozenset[tuple[str, str, str]],
    ) -> list[str]:
        """Place an interrupted node's pods elsewhere at once; the claims launched for them."""
        if not pods:
            return []
        before = self.book.ids()
        self.provision(snap, pods, exclude=exclude, avoid=avoid)
        return sorted(self.book.ids() - before)

    # --- claims --------------------------------------------------------------------------

    def _claims(self, snap: Snapshot, now: float) -> None:
        timeout = self.config.registration_timeout
        for action in claim_actions(self.book.all(), snap, now, timeout):
            claim = action.claim
            if action.verdict is Verdict.KEEP:
                self.book.put(claim)
                if action.announce and claim.node_name:
                    node = snap.nodes.get(claim.node_name)
                    self.parts.events.record(
                        ObjectRef.node(claim.node_name, node.uid if node else ""),
                        "Launched",
                        launched_message(claim),
                    )
                continue
            if not self.acting():
                return
            self._end_claim(claim, action.verdict)
            if action.release_pods:
                self._replan = True

    def _end_claim(self, claim: Claim, verdict: Verdict) -> None:
        """Terminate a timed-out or node-less claim's instance and forget it."""
        why = (
            f"not ready {self.config.registration_timeout:.0f}s after launch"
            if verdict is Verdict.TIMED_OUT
            else "its node was deleted"
        )
        log.warning(
            "ending claim",
            extra={"claim": claim.claim_id, "instance": claim.instance_id, "why": why},
        )
        self.parts.provider.terminate([claim.instance_id])
        if verdict is Verdict.TIMED_OUT and claim.node_name:
            self.parts.api.delete_node(claim.node_name)
        self.book.remove(claim.claim_id)
        self.parts.metrics.removed.labels(verdict.value).inc()
        for key in sorted(claim.pods):
            self.parts.events.record(
                ObjectRef.pod(key),
                "ClaimFailed",
                f"claim {claim.claim_id} ({claim.instance_type}) {why}; planning again",
                kind="Warning",
            )

    # --- provisioning --------------------------------------------------------------------

    def _maybe_provision(self, snap: Snapshot, now: float) -> None:
        batch = self.batcher.take()
        released = self.interruptions.take_released()
        if released:
            self._replan = True
        periodic = now >= self._next_replan
        if not (batch or self._replan or periodic):
            return
        if self.backoff.waiting(now):
            self._replan = True
            return
        self._replan = False
        self._next_replan = now + self.config.replan_interval
        self.unplaceable = {
            k: v
            for k, v in dict(self.unplaceable).items()
            if k in snap.pods and snap.pods[k].pending
        }
        pods = pending_pods(snap, self.book.held())
        if pods:
            self.provision(snap, pods)

    def provision(
        self,
        snap: Snapshot,
        pods: Sequence[PodInfo],
        *,
        exclude: frozenset[str] = frozenset(),
        avoid: frozenset[tuple[str, str, str]] = frozenset(),
    ) -> None:
        """Plan ``pods`` and launch the new nodes, re-planning around capacity errors.

        ``exclude`` names nodes whose room must not be used (being drained);
        ``avoid`` offerings this plan must not buy (an interrupted node's own).
        """
        demands, problems = self.reader.many(pods)
        for key, problem in problems.items():
            self._unplaceable(key, f"invalid pod: {problem}")
        draining = self.interruptions.draining() | exclude
        existing = existing_capacities(snap, self.parts.facts.gpu_spec, exclude=draining)
        remaining: list[PodDemand] = demands
        unplaceable: dict[str, str] = {}
        for _ in range(self.config.max_rounds):
            retry, stop = self._round(
                snap,
                remaining,
                existing=existing,
                draining=draining,
                avoid=avoid,
                unplaceable=unplaceable,
            )
            if stop or not retry:
                break
            remaining = [d for d in demands if d.key in retry]
        else:
            for d in remaining:
                unplaceable.setdefault(d.key, "no capacity in any offering tried; retrying later")
        self._explain_arch(demands, unplaceable)
        for key, reason in sorted(unplaceable.items()):
            self._unplaceable(key, reason)

    def _explain_arch(self, demands: Sequence[PodDemand], unplaceable: dict[str, str]) -> None:
        """Pods pinned to an architecture new nodes may not have: say so, and what to set."""
        allowed = self.config.architectures
        if allowed is None:
            return
        for d in demands:
            refusal = arch_refusal(d.arch, allowed)
            if refusal is not None and d.key in unplaceable:
                unplaceable[d.key] = f"{refusal}: add it to {ARCHITECTURES_ENV} to launch it"

    def _round(
        self,
        snap: Snapshot,
        demands: list[PodDemand],
        *,
        existing: list[NodeCapacity],
        draining: frozenset[str],
        avoid: frozenset[tuple[str, str, str]],
        unplaceable: dict[str, str],
    ) -> tuple[set[str], bool]:
        """One plan and its launches; returns (pods to re-plan, whether to stop)."""
        facts, cache = self.parts.facts, self.parts.cache
        offerings = [
            o
            for o in facts.offerings
            if (o.instance_type, o.zone, o.capacity) not in avoid
            and not cache.blocked(o.instance_type, o.zone, o.capacity)
        ]
        claims = self.book.all()
        inflight = inflight_capacities(claims, snap, facts.offering, self.reader, draining=draining)
        usage = current_usage(snap, claims, cost_of=facts.cost, cards_of=facts.cards)
        result = plan(
            demands, [*existing, *inflight], offerings, headroom(self.config.limits, usage)
        )
        self.parts.metrics.plans.inc()
        for key in [d.key for d in demands]:
            unplaceable.pop(key, None)
        for key, reason in result.unplaceable.items():
            limited = reason.startswith(PLANNER_LIMIT)
            unplaceable[key] = limited_reason(self.config.limits, usage) if limited else reason
        by_id = {c.claim_id: c for c in claims}
        for claim_id, keys in in_flight_targets(result, by_id).items():
            held = by_id[claim_id].holding(keys)
            self.book.put(held)
            for key in keys:
                pod = snap.pods.get(key)
                self.parts.events.record(
                    ObjectRef.pod(key, pod.uid if pod else ""), "Nominated", adopted_message(held)
                )
        retry: set[str] = set()
        for node in launches(result, self.book.ids()):
            if not self.acting():
                return set(), True
            claims = self.book.all()
            usage = current_usage(snap, claims, cost_of=facts.cost, cards_of=facts.cards)
            limit = over_limit(
                self.config.limits, usage, facts.cards(node.instance_type), node.price_per_hour
            )
            if limit is not None:
                unplaceable.update(dict.fromkeys(node.pods, f"would exceed the limit {limit}"))
                continue
            outcome = self.launcher.launch(node)
            if outcome.claim is not None:
                self.backoff.succeed()
                self.book.put(outcome.claim)
                self._announce(snap, node, outcome.claim, outcome.result)
                continue
            self.parts.metrics.launch_errors.labels(outcome.code or outcome.result.value).inc()
            log.warning(
                "launch failed",
                extra={"claim": node.claim_id, "result": outcome.result, "why": outcome.reason},
            )
            if outcome.result is Result.NO_CAPACITY:
                retry.update(node.pods)
                continue
            if outcome.result is Result.REFUSED:
                unplaceable.update(dict.fromkeys(node.pods, f"the cloud refused: {outcome.reason}"))
                self.backoff.fail(self.clock())
                return set(), True
            delay = self.backoff.fail(self.clock())
            self._replan = True
            log.warning("backing off launches", extra={"seconds": delay, "code": outcome.code})
            for key in node.pods:
                unplaceable[key] = f"launch delayed ({outcome.code}): backing off {delay:.0f}s"
            return set(), True
        return retry, False

    def _announce(self, snap: Snapshot, node: PlannedNode, claim: Claim, result: Result) -> None:
        """Tell each pod where it will run and what its node costs."""
        if result is Result.LAUNCHED:
            self.parts.metrics.launched.labels(claim.capacity).inc()
            message = nominated_message(node, claim.instance_type)
        else:
            message = adopted_message(claim)
        for key in node.pods:
            self.unplaceable.pop(key, None)
            pod = snap.pods.get(key)
            self.parts.events.record(
                ObjectRef.pod(key, pod.uid if pod else ""), "Nominated", message
            )

    def _unplaceable(self, key: str, reason: str) -> None:
        self.unplaceable[key] = reason
        self.parts.events.record(
            ObjectRef.pod(key), "ProvisioningFailed", unplaceable_message(reason), kind="Warning"
        )

    # --- scale-down ----------------------------------------------------------------------

    def _scale_down(self, snap: Snapshot, now: float) -> None:
        decision = scale_down(
            snap,
            self.book.all(),
            self.empty_since,
            now,
            delay=self.config.empty_delay,
            nomination_window=self.config.registration_timeout,
        )
        self.empty_since = dict(decision.empty_since)
        for removal in decision.remove:
            if not self.acting():
                return
            self._remove(removal, snap)

    def _remove(self, removal: Removal, snap: Snapshot) -> None:
        """Cordon, re-check with a fresh read, delete the node, terminate the instance."""
        api = self.parts.api
        cordon(api, removal.node)
        fresh = [pod_info(p) for p in api.pods_on_node(removal.node)]
        reason = busy(fresh)
        if reason is not None:
            log.info("scale-down aborted", extra={"node": removal.node, "why": reason})
            cordon(api, removal.node, False)
            self.empty_since.pop(removal.node, None)
            return
        node = snap.nodes.get(removal.node)
        claim = self.book.by_instance(removal.instance_id) or self.book.by_node(removal.node)
        price = claim.price_per_hour if claim else None
        if price is None and node is not None:
            price = self.parts.facts.price(node.instance_type, node.zone, node.capacity)
        self.parts.events.record(
            ObjectRef.node(removal.node, node.uid if node else ""),
            "ScaleDown",
            removed_message(removal.empty_for, price),
        )
        api.delete_node(removal.node)
        if removal.instance_id:
            self.parts.provider.terminate([removal.instance_id])
        if claim is not None:
            self.book.remove(claim.claim_id)
        self.empty_since.pop(removal.node, None)
        self.parts.metrics.removed.labels("empty").inc()
        log.info(
            "removed an empty node",
            extra={"node": removal.node, "instance": removal.instance_id, "saves": price},
        )

    # --- orphans -------------------------------------------------------------------------

    def _maybe_gc(self, snap: Snapshot, now: float) -> None:
        if now < self._next_gc:
            return
        self._next_gc = now + self.config.gc_interval
        self.collect_orphans(snap, now)
        self.collect_vanished(snap, now)

    def collect_orphans(self, snap: Snapshot, now: float) -> list[str]:
        """Terminate our instances with no claim and no node, older than the grace period."""
        orphans = owned_without_claims(
            self.parts.provider,
            self.book.ids(),
            now=datetime.fromtimestamp(now, UTC),
            grace=timedelta(seconds=self.config.orphan_grace),
        )
        doomed = sorted(i.instance_id for i in unregistered(orphans, snap))
        if doomed and self.acting():
            log.warning("terminating orphan instances", extra={"instances": doomed})
            self.parts.provider.terminate(doomed)
            self.parts.metrics.removed.labels("orphan").inc(len(doomed))
            return doomed
        return []

    def collect_vanished(self, snap: Snapshot, now: float) -> list[str]:
        """Delete nodes of ours whose instance the cloud no longer lists."""
        live = {i.instance_id for i in self.parts.provider.list_owned()}
        ours = {c.instance_id for c in self.book.all()}
        gone = vanished(snap, live, ours, now, self.config.orphan_grace)
        deleted = []
        for node in gone:
            if not self.acting():
                break
            log.warning(
                "deleting a node whose instance is gone",
                extra={"node": node.name, "instance": node.instance_id},
            )
            self.parts.events.record(
                ObjectRef.node(node.name, node.uid),
                "InstanceGone",
                f"instance {node.instance_id} no longer exists; deleting the node",
                kind="Warning",
            )
            self.parts.api.delete_node(node.name)
            claim = self.book.by_instance(node.instance_id)
            if claim is not None:
                self.book.remove(claim.claim_id)
            self.interruptions.drains.pop(node.name, None)
            self.parts.metrics.removed.labels("vanished").inc()
            deleted.append(node.name)
        return deleted

    # --- state for the service -----------------------------------------------------------

    def cost_per_hour(self) -> float:
        return round(sum(c.price_per_hour for c in self.book.all()), 6)

    def describe(self) -> dict[str, Any]:
        """What ``/claims`` shows: claims, drains, unplaceable pods."""
        return {
            "leader": self.acting(),
            "claims": [claim_dict(c) for c in self.book.all()],
            "draining": sorted(self.interruptions.draining()),
            "unplaceable": dict(sorted(dict(self.unplaceable).items())),
        }


def claim_dict(claim: Claim) -> dict[str, Any]:
    """A claim as JSON-ready values."""
    return {
        "claim_id": claim.claim_id,
        "instance_id": claim.instance_id,
        "instance_type": claim.instance_type,
        "zone": claim.zone,
        "capacity": claim.capacity,
        "phase": claim.phase.value,
        "node": claim.node_name,
        "price_per_hour": claim.price_per_hour,
        "adopted": claim.adopted,
        "pods": sorted(claim.pods),
    }


class NoticePump:
    """Receives notices (long-polling SQS) on its own thread, only while leading.

    A follower must not receive: SQS would hide the message from the leader
    for the visibility timeout.
    """

    def __init__(
        self,
        source: NoticeSource,
        controller: Controller,
        *,
        wait_seconds: float = 20.0,
        idle: float = 1.0,
    ) -> None:
        self.source = source
        self.controller = controller
        self.wait_seconds = wait_seconds
        self.idle = idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pump_once(self) -> int:
        if not self.controller.acting():
            return 0
        notices = self.source.receive(max_messages=10, wait_seconds=self.wait_seconds)
        self.controller.submit(notices)
        return len(notices)

    def start(self) -> NoticePump:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notice-pump", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                received = self.pump_once()
            except Exception:
                log.exception("receiving interruption notices failed")
                received = 0
            if not received:
                self._stop.wait(self.idle)

    def stop(self, timeout: float = 25.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


__all__ = ["ClusterView", "Collaborators", "Controller", "LoopConfig", "NoticePump", "claim_dict"]
