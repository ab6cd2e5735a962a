"""Interruption notices, applied: taint, replace at once, drain within the deadline.

The cloud gives a spot instance a short warning (AWS 120 s, Alibaba ~300 s,
Azure 30 s: :data:`~spotpack.cloud.base.NOTICE_WINDOWS`). In that time:

1. **taint** the node (``spotpack.io/interruption=<kind>:NoSchedule``) so
   nothing new lands there (the extender also reads the taint);
2. **start the replacement at once**: the node's pods are planned again as
   if pending, without the interrupted offering, and the launch starts before
   any pod is evicted, since a new node takes longer than the warning;
3. **drain through the Eviction API**, so PodDisruptionBudgets are honoured:
   a 429 is retried every ``retry`` seconds until the deadline;
4. when the drain is over (every pod gone, or the deadline reached) the
   instance is terminated (the cloud is about to anyway) and its node deleted.

:func:`~provisioner.decide.decide_notice` decides; this module applies and
keeps the drains. A notice is acknowledged only once its decision is applied
(the taint written): if the API server is down, the notice comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from provisioner.decide import NoticePlan, decide_notice
from provisioner.events import EventRecorder, ObjectRef, interrupted_message
from provisioner.kubeapi import ClusterApi, Evicted, add_taint
from provisioner.lifecycle import ClaimBook
from provisioner.metrics import ProvisionerMetrics
from provisioner.views import PodInfo, Snapshot
from spotpack.cloud.base import CloudProvider, InterruptionNotice, OfferingCache
from spotpack.errors import SpotpackError
from spotpack.interruption import SPOTPACK_TAINT

log = logging.getLogger(__name__)

Offering3 = tuple[str, str, str]
Replace = Callable[[Snapshot, list[PodInfo], frozenset[str], frozenset[Offering3]], list[str]]
"""(snapshot, pods to place again, nodes and offerings to leave out) -> claims launched."""

MAX_RETRY = 10.0


@dataclass
class Drain:
    """One node being drained before its instance goes."""

    node: str
    instance_id: str
    claim_id: str
    kind: str
    deadline: float
    ours: bool = True
    """Launched by us: terminate the instance and delete the node when done. A node we
    did not launch is only tainted and drained; its own group removes it."""
    pods: dict[str, float] = field(default_factory=dict)
    """Pod key -> when to try its eviction next."""
    tries: dict[str, int] = field(default_factory=dict)


@dataclass
class Interruptions:
    """Handles notices and runs the drains; called from the loop's thread only."""

    api: ClusterApi
    provider: CloudProvider
    book: ClaimBook
    cache: OfferingCache
    events: EventRecorder
    metrics: ProvisionerMetrics
    clock: Callable[[], float]
    replace: Replace
    window: float = 120.0
    retry: float = 2.0
    drains: dict[str, Drain] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    """Pods of claims forgotten because of a notice: the loop plans them again."""

    def draining(self) -> frozenset[str]:
        return frozenset(self.drains)

    # --- notices -------------------------------------------------------------------------

    def handle(self, notice: InterruptionNotice, snapshot: Snapshot) -> bool:
        """Apply one notice; True when it may be acknowledged."""
        claim = self.book.by_instance(notice.instance_id)
        node = snapshot.node_for(
            notice.instance_id,
            claim.claim_id if claim else "",
            claim.node_name if claim else None,
        )
        if node is not None and node.name in self.drains:
            return True  # a repeat (SQS delivers at least once)
        now = self.clock()
        pods = snapshot.on_node(node.name) if node is not None else ()
        plan = decide_notice(notice, node, pods, claim, now=now, window=self.window)
        self.metrics.interruptions.labels(notice.kind).inc()
        log.info(
            "interruption notice",
            extra={"instance": notice.instance_id, "kind": notice.kind, "decision": plan.reason},
        )
        if plan.block is not None:
            self.cache.mark(*plan.block, reason=f"interruption: {notice.kind}")
        if plan.release_claim is not None:
            return self._release(plan)
        if plan.node is None:
            return True
        try:
            if plan.taint is not None and not add_taint(self.api, plan.node, plan.taint):
                return True  # the node is gone already
        except SpotpackError as exc:
            log.warning("cannot taint; the notice will be retried", extra={"error": str(exc)})
            return False
        moving = [snapshot.pods[k] for k in plan.replace if k in snapshot.pods]
        avoid = frozenset({plan.avoid}) if plan.avoid is not None else frozenset()
        replacements = self.replace(snapshot, moving, frozenset({plan.node}), avoid)
        uid = node.uid if node is not None else ""
        self.events.record(
            ObjectRef.node(plan.node, uid),
            "Interrupted",
            interrupted_message(notice.kind, notice.instance_id, replacements),
            kind="Warning",
        )
        drain = Drain(
            node=plan.node,
            instance_id=notice.instance_id,
            claim_id=claim.claim_id if claim else "",
            kind=notice.kind,
            deadline=plan.deadline if plan.deadline is not None else now,
            ours=claim is not None or (node is not None and node.managed),
            pods={} if plan.delete_node_now else dict.fromkeys(plan.drain, now),
        )
        self.drains[plan.node] = drain
        if plan.delete_node_now:
            self._finish(drain)
        return True

    def resume(self, snapshot: Snapshot) -> list[str]:
        """Drains a previous leader left: every node with our taint that is not being drained.

        The notice was acknowledged by the replica that died; the taint is what
        remains of it. The pods are drained within a fresh window, without a
        replacement launch (they are planned as they come back pending).
        """
        now = self.clock()
        resumed = []
        for name, node in sorted(snapshot.nodes.items()):
            if not node.interrupted or name in self.drains:
                continue
            claim = self.book.by_instance(node.instance_id) or self.book.by_node(name)
            kind = next(
                (str(t.get("value", "")) for t in node.taints if t.get("key") == SPOTPACK_TAINT),
                "",
            )
            pods = [p.key for p in snapshot.on_node(name) if p.runs and not p.infrastructure]
            self.drains[name] = Drain(
                node=name,
                instance_id=node.instance_id,
                claim_id=claim.claim_id if claim else node.claim_id,
                kind=kind,
                deadline=now + self.window,
                ours=node.managed or claim is not None,
                pods=dict.fromkeys(pods, now),
            )
            resumed.append(name)
        if resumed:
            log.info("resuming drains of interrupted nodes", extra={"nodes": resumed})
        return resumed

    def _release(self, plan: NoticePlan) -> bool:
        claim = self.book.remove(plan.release_claim or "")
        if claim is None:
            return True
        self.released.update(claim.pods)
        try:
            self.provider.terminate([claim.instance_id])
        except SpotpackError as exc:
            log.warning("cannot terminate an interrupted claim", extra={"error": str(exc)})
        return True

    # --- drains --------------------------------------------------------------------------

    def progress(self, snapshot: Snapshot, *, acting: Callable[[], bool] = lambda: True) -> None:
        """Try the evictions that are due; finish drains that are over."""
        now = self.clock()
        for drain in list(self.drains.values()):
            for key, when in sorted(drain.pods.items()):
                if not acting():
                    return
                if when > now:
                    continue
                pod = snapshot.pods.get(key)
                if pod is None or pod.node_name != drain.node or pod.terminated:
                    del drain.pods[key]
                    continue
                self._evict(drain, pod, now)
            if not drain.pods or now >= drain.deadline:
                self._finish(drain)

    def _evict(self, drain: Drain, pod: PodInfo, now: float) -> None:
        try:
            result = self.api.evict(pod.namespace, pod.name)
        except SpotpackError as exc:
            log.warning("eviction failed", extra={"pod": pod.key, "error": str(exc)})
            result = None
        self.metrics.evictions.labels(result.value if result else "error").inc()
        if result in (Evicted.EVICTED, Evicted.GONE):
            del drain.pods[pod.key]
            return
        tries = drain.tries.get(pod.key, 0) + 1
        drain.tries[pod.key] = tries
        drain.pods[pod.key] = now + min(self.retry * tries, MAX_RETRY)
        if result is Evicted.BLOCKED:
            log.info(
                "eviction refused by a disruption budget; retrying",
                extra={"pod": pod.key, "node": drain.node, "left": round(drain.deadline - now, 1)},
            )

    def _finish(self, drain: Drain) -> None:
        """Terminate the instance and delete the node (ours only); retried on failure."""
        if drain.ours:
            try:
                if drain.instance_id:
                    self.provider.terminate([drain.instance_id])
                self.api.delete_node(drain.node)
            except SpotpackError as exc:
                log.warning("cannot remove an interrupted node yet", extra={"error": str(exc)})
                return
        self.drains.pop(drain.node, None)
        if not drain.ours:
            log.info("drained a node we did not launch", extra={"node": drain.node})
            return
        claim = self.book.by_instance(drain.instance_id) or self.book.by_node(drain.node)
        if claim is not None:
            self.book.remove(claim.claim_id)
        self.metrics.removed.labels("interruption").inc()
        left = sorted(drain.pods)
        log.info(
            "interrupted node removed",
            extra={"node": drain.node, "instance": drain.instance_id, "not_evicted": left},
        )

    def take_released(self) -> Collection[str]:
        released, self.released = self.released, set()
        return released


__all__ = ["Drain", "Interruptions", "Replace"]
