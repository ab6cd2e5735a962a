"""Kubernetes Events that say why a node was bought or removed, and what it costs.

People read ``kubectl describe pod`` when a pod waits, and ``kubectl describe
node`` when a bill surprises them; both show core/v1 Events about the object.
So every launch tells each pod where it will run and the price
(``Nominated: will run on a new g5.xlarge spot node, claim c-1f.., $0.40/h``),
every registered node why it exists, every removal why and what it saves.

The messages are built by pure functions (tested as text); the
:class:`EventRecorder` writes them, never raises (an Event is worth less than
the loop that sends it) and drops repeats of the same message about the same
object within ``dedupe_seconds``, so a pod that stays unplaceable does not
collect an Event per planning round.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from provisioner.kubeapi import ClusterApi
from provisioner.lifecycle import Claim
from spotpack.errors import SpotpackError
from spotpack.provisioning.model import PlannedNode

log = logging.getLogger(__name__)

COMPONENT = "spotpack-provisioner"
NODE_EVENT_NAMESPACE = "default"
"""Node events live in ``default``, where ``kubectl describe node`` looks for them."""
MAX_MESSAGE = 1024
MAX_LISTED_PODS = 5


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"

    @classmethod
    def pod(cls, key: str, uid: str = "") -> ObjectRef:
        namespace, _, name = key.partition("/")
        return cls("Pod", name, namespace, uid)

    @classmethod
    def node(cls, name: str, uid: str = "") -> ObjectRef:
        return cls("Node", name, "", uid)


def _price(value: float) -> str:
    return f"${value:.4f}/h" if value < 0.1 else f"${value:.2f}/h"


def _pods(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_PODS])
    more = len(keys) - MAX_LISTED_PODS
    return shown + (f" and {more} more" if more > 0 else "")


def nominated_message(node: PlannedNode, instance_type: str) -> str:
    """For each pod of a launch: where it will run and what the node costs."""
    return (
        f"will run on a new {instance_type} {node.capacity} node in {node.zone}, "
        f"claim {node.claim_id}, {_price(node.price_per_hour)} "
        f"({len(node.pods)} pods on it)"
    )


def adopted_message(claim: Claim) -> str:
    return (
        f"will run on {claim.instance_type} {claim.capacity} node of claim {claim.claim_id} "
        f"(already launched), {_price(claim.price_per_hour)}"
    )


def launched_message(claim: Claim) -> str:
    """For the node when it registers: why spotpack bought it."""
    pods = sorted(claim.pods)
    why = f"; {claim.reason}" if claim.reason else ""
    return (
        f"launched by spotpack as {claim.instance_type} {claim.capacity} in {claim.zone} "
        f"for claim {claim.claim_id}, {_price(claim.price_per_hour)}, "
        f"for {len(pods)} pods: {_pods(pods) or 'none recorded'}{why}"
    )


def removed_message(empty_for: float, price_per_hour: float | None) -> str:
    saves = f"; saves {_price(price_per_hour)}" if price_per_hour else ""
    return f"empty (only DaemonSet and mirror pods) for {empty_for:.0f}s: removing it{saves}"


def interrupted_message(kind: str, instance_id: str, replacements: Sequence[str]) -> str:
    where = (
        f"replacement claims {', '.join(replacements)}"
        if replacements
        else "no new node needed for its pods"
    )
    return f"{kind} notice for instance {instance_id}: tainted, draining; {where}"


def unplaceable_message(reason: str) -> str:
    return f"spotpack cannot place this pod on a new node: {reason}"


def _micro(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(
    ref: ObjectRef,
    reason: str,
    message: str,
    *,
    now: float,
    name: str,
    kind: str = "Normal",
    instance: str = "",
) -> dict[str, object]:
    """A core/v1 Event (pure), with ``firstTimestamp``/``lastTimestamp`` and ``eventTime``."""
    namespace = ref.namespace or NODE_EVENT_NAMESPACE
    involved: dict[str, object] = {
        "kind": ref.kind,
        "name": ref.name,
        "apiVersion": ref.api_version,
    }
    if ref.namespace:
        involved["namespace"] = ref.namespace
    if ref.uid:
        involved["uid"] = ref.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "type": kind,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance or COMPONENT,
        "action": reason,
        "firstTimestamp": _seconds(now),
        "lastTimestamp": _seconds(now),
        "eventTime": _micro(now),
        "count": 1,
    }


class EventRecorder:
    """Writes Events through a :class:`ClusterApi`; logs and drops them on failure."""

    def __init__(
        self,
        api: ClusterApi,
        *,
        instance: str = "",
        clock: Callable[[], float] = time.time,
        dedupe_seconds: float = 600.0,
    ) -> None:
        self._api = api
        self._instance = instance
        self._clock = clock
        self._dedupe = dedupe_seconds
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.sent = 0

    def record(self, ref: ObjectRef, reason: str, message: str, *, kind: str = "Normal") -> bool:
        """Send one Event unless the same one was sent recently; True when sent."""
        now = self._clock()
        key = (ref.kind, f"{ref.namespace}/{ref.name}", reason, message)
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < self._dedupe:
                return False
            self._recent[key] = now
            if len(self._recent) > 10_000:
                self._forget(now)
            name = f"{ref.name[:200]}.{int(now * 1e9):x}{next(self._seq) % 4096:03x}"
        event = build_event(
            ref, reason, message, now=now, name=name, kind=kind, instance=self._instance
        )
        try:
            self._api.create_event(ref.namespace or NODE_EVENT_NAMESPACE, event)
        except SpotpackError as exc:
            log.warning(
                "event not recorded",
                extra={"object": key[1], "reason": reason, "error": str(exc)},
            )
            return False
        self.sent += 1
        return True

    def _forget(self, now: float) -> None:
        for key, when in list(self._recent.items()):
            if now - when >= self._dedupe:
                del self._recent[key]


__all__ = [
    "COMPONENT",
    "EventRecorder",
    "ObjectRef",
    "adopted_message",
    "build_event",
    "interrupted_message",
    "launched_message",
    "nominated_message",
    "removed_message",
    "unplaceable_message",
]
