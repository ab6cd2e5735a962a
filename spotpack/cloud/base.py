"""The provisioner's view of a cloud: launch requests, instances, errors, notices, as values.

Pure: no cloud SDK, no Kubernetes client. Each cloud adapter (:mod:`.aws`,
:mod:`.local`, the recording :mod:`.fake`) implements :class:`CloudProvider`,
each notice feed (:mod:`.sqs`) implements :class:`NoticeSource`, so the
provisioner's loop is written once and tested against the fake.

Idempotency is the contract that matters most. A provisioner that crashes
between "the cloud launched an instance" and "I recorded that" must not launch
a second one on restart. Two mechanisms cover it, because neither is enough
alone:

- **the claim tag**: every instance carries ``spotpack.io/claim=<claim id>``
  from the moment it exists (tags are part of the launch call), and every
  ``launch`` first looks the claim up (:meth:`CloudProvider.find`). This works
  for as long as the instance lives, across any restart, and against moto,
  which ignores client tokens.
- **the client token**: EC2 remembers a request's token and answers a repeat
  with the first result. It covers the seconds after a launch in which
  DescribeInstances may not show the new instance yet (EC2's API is
  eventually consistent), e.g. a botocore retry after a timeout.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, get_args, runtime_checkable

from spotpack.errors import CloudError

Capacity = Literal["spot", "on-demand"]
"""How an instance is bought, by Karpenter's ``karpenter.sh/capacity-type`` values."""

CAPACITIES: tuple[Capacity, ...] = get_args(Capacity)

NoticeKind = Literal["spot-interruption", "rebalance", "scheduled-change", "state-change"]
NOTICE_KINDS: tuple[NoticeKind, ...] = get_args(NoticeKind)

CLUSTER_TAG = "spotpack.io/cluster"
"""Tag (and label) naming the cluster an instance belongs to: what ``list_owned`` filters on."""

CLAIM_TAG = "spotpack.io/claim"
"""Tag (and label) naming the claim an instance was launched for: what ``find`` filters on."""

MANAGED_LABEL = "spotpack.io/managed"
"""Node label ``true`` on every node we launched."""

MAX_CLIENT_TOKEN = 64
"""EC2's limit: "a unique, case-sensitive string of up to 64 ASCII characters"."""

NOTICE_WINDOWS: Mapping[str, timedelta] = MappingProxyType(
    {
        "aws": timedelta(seconds=120),
        "alibaba": timedelta(seconds=300),
        "azure": timedelta(seconds=30),
    }
)
"""How long a spot instance lives after its interruption warning, per cloud.

AWS: "a warning that is issued two minutes before Amazon EC2 stops or
terminates your Spot Instance" (none for hibernation, which starts at once).
Alibaba Cloud: about five minutes for preemptible instances. Azure: Scheduled
Events give a Spot eviction (``Preempt``) at least 30 seconds.
"""


class Offering(NamedTuple):
    """One capacity pool: an instance type in a zone, bought as spot or on-demand."""

    instance_type: str
    zone: str
    capacity: str


# --- requests and instances ------------------------------------------------------------------


def client_token(claim_id: str, *, attempt: int = 0, scope: str = "") -> str:
    """The idempotency token of launch ``attempt`` for ``claim_id``: stable, ASCII, 49 chars.

    A hash, so any claim id (and cluster ``scope``) fits EC2's 64 characters and
    two clusters sharing an account never share a token. ``attempt`` must
    change when the caller retries with *different* candidates after a
    definitive failure: EC2 answers a reused token with the first request's
    result (the same capacity error) or, if the parameters differ, with
    ``IdempotentParameterMismatch``. Keep it for a retry of the *same* request
    whose outcome is unknown (timeout, 5xx, throttling).
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    digest = hashlib.sha256(f"{scope}\x00{claim_id}\x00{attempt}".encode()).hexdigest()
    return f"spotpack-{digest[:40]}"


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Launch one instance for ``claim_id``: the first offering of ``candidates`` that has room.

    ``candidates`` are ``(instance type, zone)`` pairs in preference order (the
    planner's ranking); the cloud may pick any of them (EC2 Fleet weighs price
    and capacity itself). ``tags`` go on the instance in addition to ours;
    ``labels`` and ``taints`` are what the node should register with (the
    local provider applies them; a real cloud passes them to the bootstrap).
    Build with :meth:`for_claim` so the token is derived, not invented.
    """

    claim_id: str
    candidates: tuple[tuple[str, str], ...]
    capacity: Capacity
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    taints: tuple[dict[str, Any], ...] = ()
    client_token: str = ""

    def __post_init__(self) -> None:
        if not self.claim_id:
            raise ValueError("claim_id must not be empty")
        if not self.candidates:
            raise ValueError(f"claim {self.claim_id}: no candidate offerings")
        if self.capacity not in CAPACITIES:
            raise ValueError(f"capacity must be one of {CAPACITIES}, got {self.capacity!r}")
        if not self.client_token:
            object.__setattr__(self, "client_token", client_token(self.claim_id))
        if len(self.client_token) > MAX_CLIENT_TOKEN or not self.client_token.isascii():
            raise ValueError(f"client_token must be <= {MAX_CLIENT_TOKEN} ASCII characters")

    @classmethod
    def for_claim(
        cls,
        claim_id: str,
        candidates: Iterable[tuple[str, str]],
        capacity: Capacity,
        *,
        attempt: int = 0,
        scope: str = "",
        tags: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Mapping[str, Any]] = (),
    ) -> LaunchRequest:
        """A request whose token is :func:`client_token` of the claim, attempt and scope."""
        return cls(
            claim_id=claim_id,
            candidates=tuple((str(t), str(z)) for t, z in candidates),
            capacity=capacity,
            tags=MappingProxyType(dict(tags or {})),
            labels=MappingProxyType(dict(labels or {})),
            taints=tuple(dict(t) for t in taints),
            client_token=client_token(claim_id, attempt=attempt, scope=scope),
        )

    def offerings(self) -> tuple[Offering, ...]:
        return tuple(Offering(t, z, self.capacity) for t, z in self.candidates)


@dataclass(frozen=True, slots=True)
class Instance:
    """An instance as the provisioner sees it, whatever the cloud.

    ``node_name`` is the Kubernetes node it will register as, when the cloud
    can tell in advance (EKS: the private DNS name; local: the node we wrote).
    """

    instance_id: str
    instance_type: str
    zone: str
    capacity: str
    claim_id: str
    state: str
    launched_at: datetime
    node_name: str | None = None
    private_dns: str | None = None

    @property
    def offering(self) -> Offering:
        return Offering(self.instance_type, self.zone, self.capacity)


# --- errors ----------------------------------------------------------------------------------


class InsufficientCapacity(CloudError):  # noqa: N818 - the cloud's own word
    """No room in any offering tried; ``offerings`` names each one that said so.

    Retryable: other offerings (other types, zones, on-demand) or the same ones
    a few minutes later may succeed. Feed ``offerings`` to an
    :class:`OfferingCache` so the next plan avoids them.
    """

    def __init__(
        self,
        offerings: Iterable[Offering | tuple[str, str, str]],
        message: str = "",
        *,
        code: str = "InsufficientInstanceCapacity",
    ) -> None:
        self.offerings: tuple[Offering, ...] = tuple(Offering(*o) for o in offerings)
        named = ", ".join(f"{o.instance_type}/{o.zone}/{o.capacity}" for o in self.offerings)
        text = message or "no capacity"
        super().__init__(f"{text} ({code}) for {named or 'the requested offerings'}", code=code)
        self.retryable = True


class Throttled(CloudError):  # noqa: N818
    """The cloud rate-limited our API calls; back off and try again."""

    def __init__(self, message: str, *, code: str = "RequestLimitExceeded") -> None:
        super().__init__(message, code=code, retryable=True)


class LaunchRefused(CloudError):  # noqa: N818
    """The cloud refused the request as given (credentials, permissions, parameters).

    Not retryable: the same call will fail the same way until a person fixes
    the configuration; the message says what to fix.
    """

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message, code=code, retryable=False)


# --- the provider Protocol -------------------------------------------------------------------


@runtime_checkable
class CloudProvider(Protocol):
    """What the provisioner's loop needs from a cloud: launch, look up, list, terminate."""

    @property
    def name(self) -> str: ...

    def launch(self, req: LaunchRequest) -> Instance:
        """One instance for ``req.claim_id``; the existing one if the claim already has one."""
        ...

    def find(self, claim_id: str) -> Instance | None:
        """The live instance tagged with ``claim_id``, or None."""
        ...

    def list_owned(self) -> list[Instance]:
        """Every live instance tagged with our cluster."""
        ...

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Terminate these instances; ids already gone are not an error."""
        ...


def owned_without_claims(
    provider: CloudProvider,
    known_claim_ids: Iterable[str],
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(0),
) -> list[Instance]:
    """Our instances whose claim the provisioner does not know: orphans to reap.

    A crash between the launch and recording the claim leaves such an
    instance; the restarted loop either adopts it (``launch`` finds it by
    claim) or, when the claim is gone for good, terminates what this returns.
    Instances younger than ``grace`` (relative to ``now``) are left alone, so a
    claim being recorded right now is not mistaken for an orphan.
    """
    known = set(known_claim_ids)
    orphans = []
    for instance in provider.list_owned():
        if instance.claim_id in known:
            continue
        if now is not None and grace and now - instance.launched_at < grace:
            continue
        orphans.append(instance)
    return orphans


# --- interruption notices --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterruptionNotice:
    """The cloud says an instance will go away (or already is going away).

    ``deadline`` is when the instance stops, when the notice says or implies it
    (a spot warning: its time plus the cloud's window); None for advice such as
    a rebalance recommendation. ``receipt`` identifies the message to
    acknowledge; several notices may share one (a Health event naming several
    instances). ``detail`` is the cloud's own word (``terminate``,
    ``stopping``, an event type code) for logs.
    """

    kind: NoticeKind
    instance_id: str
    time: datetime
    deadline: datetime | None
    receipt: str
    detail: str = ""
    event_id: str = ""


@runtime_checkable
class NoticeSource(Protocol):
    """A feed of interruption notices that must be acknowledged once handled."""

    def receive(
        self, max_messages: int = 10, wait_seconds: float = 20.0
    ) -> list[InterruptionNotice]:
        """Up to ``max_messages`` notices, waiting up to ``wait_seconds`` for the first."""
        ...

    def ack(self, notice: InterruptionNotice) -> None:
        """Handled: do not deliver it again."""
        ...


# --- unavailable offerings -------------------------------------------------------------------


class OfferingCache:
    """Offerings that recently ran out of capacity, remembered for ``ttl`` seconds.

    Karpenter keeps such a cache for 3 minutes: long enough that the next
    planning round tries other types, zones or on-demand instead of hammering
    a pool EC2 just said is empty, short enough that the pool is tried again
    once capacity may have come back. Thread-safe; the clock is injectable
    (seconds, monotonic by default) so tests need no sleeping. ``generation``
    changes whenever the set changes, so a planner can tell its cached plan is
    stale.
    """

    DEFAULT_TTL = 180.0

    def __init__(
        self, ttl: float = DEFAULT_TTL, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[Offering, tuple[float, str]] = {}
        self.generation = 0

    def mark(
        self,
        instance_type: str,
        zone: str,
        capacity: str,
        *,
        reason: str = "",
        ttl: float | None = None,
    ) -> None:
        """Block the offering for ``ttl`` (default: the cache's) from now."""
        until = self._clock() + (self.ttl if ttl is None else ttl)
        key = Offering(instance_type, zone, capacity)
        with self._lock:
            self._until[key] = (until, reason)
            self.generation += 1

    def mark_all(
        self, offerings: Iterable[Offering | tuple[str, str, str]], reason: str = ""
    ) -> None:
        for offering in offerings:
            self.mark(*offering, reason=reason)

    def blocked(self, instance_type: str, zone: str, capacity: str) -> bool:
        return self.reason(instance_type, zone, capacity) is not None

    def reason(self, instance_type: str, zone: str, capacity: str) -> str | None:
        """Why the offering is blocked ("" when no reason was given), None when it is not."""
        key = Offering(instance_type, zone, capacity)
        now = self._clock()
        with self._lock:
            entry = self._until.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._until[key]
                self.generation += 1
                return None
            return entry[1]

    def available(
        self, candidates: Iterable[tuple[str, str]], capacity: str
    ) -> tuple[tuple[str, str], ...]:
        """``candidates`` without the blocked ones, order kept."""
        return tuple((t, z) for t, z in candidates if not self.blocked(t, z, capacity))

    def snapshot(self) -> dict[Offering, str]:
        """The offerings blocked now, with their reasons."""
        now = self._clock()
        with self._lock:
            return {k: reason for k, (until, reason) in self._until.items() if until > now}

    def clear(self) -> None:
        with self._lock:
            self._until.clear()
            self.generation += 1


# --- names -----------------------------------------------------------------------------------

_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_LABEL_VALUE = 63


def label_value(value: str) -> str:
    """``value`` as a valid Kubernetes label value (<= 63, alphanumeric at both ends).

    Claim ids are ours and normally valid already; anything else is squeezed,
    and a long value keeps a hash suffix so two long ids stay distinct.
    """
    cleaned = _NOT_LABEL.sub("-", value).strip("-_.")
    if len(cleaned) > MAX_LABEL_VALUE or cleaned != value:
        digest = hashlib.sha256(value.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[: MAX_LABEL_VALUE - 11].rstrip('-_.')}-{digest}".strip("-_.")
    return cleaned


__all__ = [
    "CAPACITIES",
    "CLAIM_TAG",
    "CLUSTER_TAG",
    "MANAGED_LABEL",
    "MAX_CLIENT_TOKEN",
    "NOTICE_KINDS",
    "NOTICE_WINDOWS",
    "Capacity",
    "CloudProvider",
    "Instance",
    "InsufficientCapacity",
    "InterruptionNotice",
    "LaunchRefused",
    "LaunchRequest",
    "NoticeKind",
    "NoticeSource",
    "Offering",
    "OfferingCache",
    "Throttled",
    "client_token",
    "label_value",
    "owned_without_claims",
]
