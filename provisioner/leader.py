"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Two replicas must never both launch or delete capacity. The Lease holds
``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``, ``renewTime``
and ``leaseTransitions``; every write carries the ``resourceVersion`` read, so
the API server refuses (409) a write based on a stale read and only one of
two racing replicas wins. The loser re-reads and decides again.

Time is measured on *our* clock, never by comparing the holder's
``renewTime`` with ours (clocks differ across machines): a follower notes when
it last saw the record change and takes over only after a full
``lease_duration`` without a change. The leader, for its part, acts only
until ``renew_deadline`` after the start of its last successful renewal, and
``renew_deadline < lease_duration``, so the old leader has stopped acting
before anyone may take over, even when its renewals fail silently.

:func:`decide_lease` is the pure decision; :class:`LeaderElector` applies it.
On shutdown the leader *releases* the lease (empty holder, duration 1 s) so
the next replica takes over at once instead of waiting out the duration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import orjson

from provisioner.kubeapi import Conflict
from spotpack.errors import ClusterUnavailable, SpotpackError

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class LeaseAction(StrEnum):
    CREATE = "create"
    """No lease exists: create it holding it."""
    RENEW = "renew"
    """We hold it: write a new renewTime."""
    ACQUIRE = "acquire"
    """Released or expired: take it over."""
    WAIT = "wait"
    """Someone else holds a live lease."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The parts of a Lease the election reads."""

    holder: str
    duration: float
    renew_time: str
    acquire_time: str
    transitions: int
    resource_version: str

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            renew_time=str(spec.get("renewTime") or ""),
            acquire_time=str(spec.get("acquireTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    @property
    def observed(self) -> tuple[str, str, str]:
        """What changes when the holder renews or changes."""
        return (self.holder, self.renew_time, self.resource_version)


def decide_lease(
    record: LeaseRecord | None, me: str, *, now: float, observed_at: float
) -> LeaseAction:
    """What to do with the lease as read (``observed_at``: when we saw this record first).

    =====================================================  =========
    lease                                                  action
    =====================================================  =========
    absent                                                 create
    held by us                                             renew
    no holder (released)                                   acquire
    unchanged for its full duration on our clock           acquire
    held by another, changed within its duration           wait
    =====================================================  =========
    """
    if record is None:
        return LeaseAction.CREATE
    if record.holder == me:
        return LeaseAction.RENEW
    if not record.holder:
        return LeaseAction.ACQUIRE
    if now - observed_at >= record.duration:
        return LeaseAction.ACQUIRE
    return LeaseAction.WAIT


def micro_time(epoch: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    name: str,
    namespace: str,
    *,
    holder: str,
    duration: int,
    now: float,
    previous: LeaseRecord | None,
) -> Obj:
    """The Lease to write: renewTime now; acquireTime moves with the holder, and
    ``leaseTransitions`` counts takeovers (a release does not count, as in client-go)."""
    changed = previous is None or previous.holder != holder
    taken = previous is not None and changed and bool(holder)
    transitions = 0 if previous is None else previous.transitions + (1 if taken else 0)
    acquire = micro_time(now) if changed or previous is None else previous.acquire_time
    metadata: Obj = {"name": name, "namespace": namespace}
    if previous is not None and previous.resource_version:
        metadata["resourceVersion"] = previous.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": acquire,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        },
    }


class LeaseApi(Protocol):
    def get(self, namespace: str, name: str) -> Obj | None: ...

    def create(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        """Raises :class:`Conflict` when it exists already."""
        ...

    def replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> Obj:
        """Raises :class:`Conflict` when ``metadata.resourceVersion`` is stale."""
        ...


class LeaderElector:
    """Acquires and renews one Lease; :meth:`is_leader` says whether to act right now."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "need 0 < retry_period < renew_deadline < lease_duration, got "
                f"{retry_period}, {renew_deadline}, {lease_duration}"
            )
        if not identity:
            raise ValueError("the elector needs an identity")
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._leader_until = float("-inf")
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.transitions = 0  # how often this replica became leader (tests, logs)

    # --- state ---------------------------------------------------------------------------

    def is_leader(self) -> bool:
        with self._lock:
            return self._clock() < self._leader_until

    def _set_leader(self, until: float) -> None:
        with self._lock:
            was = self._clock() < self._leader_until
            self._leader_until = until
        if not was and until > self._clock():
            self.transitions += 1
            log.info("became leader", extra={"lease": self.name, "identity": self.identity})

    def _lose(self, why: str, level: int = logging.WARNING) -> None:
        with self._lock:
            was = self._clock() < self._leader_until
            self._leader_until = float("-inf")
        if was:
            log.log(level, "stopped leading", extra={"lease": self.name, "why": why})

    # --- one attempt ---------------------------------------------------------------------

    def step(self) -> bool:
        """Read, decide, write once (re-reading once after a 409); returns :meth:`is_leader`."""
        started = self._clock()
        for _ in range(2):
            try:
                if self._attempt(started):
                    return True
                return self.is_leader()
            except Conflict:
                continue
            except SpotpackError as exc:
                log.warning("lease not renewed", extra={"lease": self.name, "error": str(exc)})
                return self.is_leader()
        return self.is_leader()

    def _attempt(self, started: float) -> bool:
        raw = self.api.get(self.namespace, self.name)
        record = LeaseRecord.from_lease(raw) if raw is not None else None
        if record is not None and record.observed != self._observed:
            self._observed = record.observed
            self._observed_at = started
        action = decide_lease(record, self.identity, now=started, observed_at=self._observed_at)
        if action is LeaseAction.WAIT:
            if record is not None and record.holder != self.identity:
                self._lose(f"held by {record.holder}")
            return False
        body = lease_body(
            self.name,
            self.namespace,
            holder=self.identity,
            duration=max(1, round(self.lease_duration)),
            now=self._wall(),
            previous=record,
        )
        if action is LeaseAction.CREATE:
            written = self.api.create(self.namespace, body)
        else:
            written = self.api.replace(self.namespace, self.name, body)
        mine = LeaseRecord.from_lease(written)
        self._observed, self._observed_at = mine.observed, started
        self._set_leader(started + self.renew_deadline)
        return True

    def release(self) -> None:
        """Stop acting at once, then hand the lease over (empty holder, 1 s duration)."""
        self._lose("released", logging.INFO)
        try:
            raw = self.api.get(self.namespace, self.name)
            if raw is None:
                return
            record = LeaseRecord.from_lease(raw)
            if record.holder != self.identity:
                return
            body = lease_body(
                self.name, self.namespace, holder="", duration=1, now=self._wall(), previous=record
            )
            self.api.replace(self.namespace, self.name, body)
            log.info("released the lease", extra={"lease": self.name})
        except SpotpackError as exc:
            log.warning("lease not released", extra={"lease": self.name, "error": str(exc)})

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> LeaderElector:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="leader-elector", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.retry_period)

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if release:
            self.release()
        else:
            self._lose("stopped", logging.INFO)


class KubeLeaseApi:
    """:class:`LeaseApi` over ``CoordinationV1Api``, raw JSON."""

    def __init__(self, api_client: Any, *, timeout: float = 5.0) -> None:
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self._timeout = timeout

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._call("read", self._api.read_namespaced_lease, name, namespace, missing=True)

    def create(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        found = self._call("create", self._api.create_namespaced_lease, namespace, dict(body))
        return found or {}

    def replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> Obj:
        found = self._call(
            "replace", self._api.replace_namespaced_lease, name, namespace, dict(body)
        )
        return found or {}

    def _call(
        self, verb: str, method: Callable[..., Any], *args: Any, missing: bool = False
    ) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if missing and exc.status == 404:
                return None
            if exc.status == 409:
                raise Conflict(f"lease {verb}: {exc.reason}") from exc
            raise ClusterUnavailable(f"lease {verb} refused ({exc.status}): {exc.reason}") from exc
        except OSError as exc:
            raise ClusterUnavailable(f"lease {verb}: cannot reach the API server: {exc}") from exc
        try:
            value = orjson.loads(response.data)
        finally:
            response.release_conn()
        return value if isinstance(value, dict) else {}


__all__ = [
    "KubeLeaseApi",
    "LeaderElector",
    "LeaseAction",
    "LeaseApi",
    "LeaseRecord",
    "decide_lease",
    "lease_body",
    "micro_time",
]
