"""Launch one planned node through the cloud: the only place the loop calls ``launch``.

For a :class:`~spotpack.provisioning.model.PlannedNode`:

1. drop the candidates the :class:`~spotpack.cloud.base.OfferingCache` knows
   are out of capacity (none left: *no capacity*, without a call);
2. **look the claim up** (``provider.find``): an instance tagged with this
   claim id exists after a crash or a leader change, so it is adopted, never
   launched twice (moto and a fresh process both need this; the client token
   alone is not enough, see :mod:`spotpack.cloud.base`);
3. launch with every remaining ``(type, zone)`` candidate, tagged and labelled
   as ours, with the claim's deterministic client token;
4. turn the answer into a :class:`LaunchResult`: the claim, or why not.
   Capacity errors mark the offerings they name in the cache, so the loop's
   re-plan in the same round avoids them.

Errors are values here: the loop decides what each means (re-plan, back off,
give up on these pods), which keeps that policy in one readable place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from provisioner.lifecycle import Claim
from spotpack.cloud.base import (
    CloudProvider,
    Instance,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    OfferingCache,
    Throttled,
)
from spotpack.errors import CloudError
from spotpack.provisioning.model import PlannedNode

log = logging.getLogger(__name__)


class Result(StrEnum):
    LAUNCHED = "launched"
    ADOPTED = "adopted"
    NO_CAPACITY = "no-capacity"
    THROTTLED = "throttled"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LaunchResult:
    result: Result
    claim: Claim | None = None
    reason: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class Launcher:
    """Launches planned nodes on ``provider``; see the module docstring."""

    provider: CloudProvider
    cache: OfferingCache
    cluster_name: str
    labels: Mapping[str, str]
    price_of: Callable[[str, str, str], float | None]
    cards_of: Callable[[str], int]
    clock: Callable[[], float]

    def claim_for(self, node: PlannedNode, instance: Instance, *, adopted: bool) -> Claim:
        """The claim record of ``instance``, launched (or found) for ``node``'s pods."""
        price = self.price_of(instance.instance_type, instance.zone, instance.capacity)
        return Claim(
            claim_id=node.claim_id,
            instance_id=instance.instance_id,
            instance_type=instance.instance_type or node.instance_type,
            zone=instance.zone or node.zone,
            capacity=instance.capacity or node.capacity,
            launched_at=instance.launched_at.timestamp() if adopted else self.clock(),
            price_per_hour=price if price is not None else node.price_per_hour,
            gpus=self.cards_of(instance.instance_type or node.instance_type),
            pods=frozenset(node.pods),
            node_name=instance.node_name,
            adopted=adopted,
            reason=node.reason,
        )

    def launch(self, node: PlannedNode) -> LaunchResult:
        candidates = self.cache.available(
            ((t, node.zone) for t in node.instance_types), node.capacity
        )
        if not candidates:
            return LaunchResult(
                Result.NO_CAPACITY,
                reason="every candidate ran out of capacity recently",
                code="RecentlyUnavailable",
            )
        try:
            return self._find_or_launch(node, candidates)
        except InsufficientCapacity as exc:
            offerings = exc.offerings or request_offerings(node, candidates)
            self.cache.mark_all(offerings, reason=exc.code)
            return LaunchResult(Result.NO_CAPACITY, reason=str(exc), code=exc.code)
        except Throttled as exc:
            return LaunchResult(Result.THROTTLED, reason=str(exc), code=exc.code)
        except LaunchRefused as exc:
            return LaunchResult(Result.REFUSED, reason=str(exc), code=exc.code or "Refused")
        except CloudError as exc:
            return LaunchResult(Result.FAILED, reason=str(exc), code=exc.code or "CloudError")

    def _find_or_launch(
        self, node: PlannedNode, candidates: tuple[tuple[str, str], ...]
    ) -> LaunchResult:
        found = self.provider.find(node.claim_id)
        if found is not None:
            log.info(
                "claim already has an instance; adopting it",
                extra={"claim": node.claim_id, "instance": found.instance_id},
            )
            return LaunchResult(Result.ADOPTED, self.claim_for(node, found, adopted=True))
        request = LaunchRequest.for_claim(
            node.claim_id,
            candidates,
            node.capacity,
            scope=self.cluster_name,
            tags={"spotpack.io/pods": str(len(node.pods))},
            labels=self.labels,
        )
        instance = self.provider.launch(request)
        log.info(
            "launched",
            extra={
                "claim": node.claim_id,
                "instance": instance.instance_id,
                "type": instance.instance_type,
                "zone": instance.zone,
                "capacity": instance.capacity,
                "pods": len(node.pods),
            },
        )
        return LaunchResult(Result.LAUNCHED, self.claim_for(node, instance, adopted=False))


def request_offerings(
    node: PlannedNode, candidates: tuple[tuple[str, str], ...]
) -> list[tuple[str, str, str]]:
    return [(t, z, node.capacity) for t, z in candidates]


__all__ = ["LaunchResult", "Launcher", "Result"]
