"""CreateFleet requests and answers, and DescribeInstances entries, as values (pure).

The half of the EC2 provider that needs no network: what we send
(:func:`build_fleet_request`), what came back (:func:`parse_fleet_response`)
and why nothing launched (:func:`fleet_failure`), so each is tested on plain
dicts. The provider in :mod:`spotpack.cloud.aws` does the calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spotpack.cloud.base import (
    CLAIM_TAG,
    CLUSTER_TAG,
    Instance,
    InsufficientCapacity,
    LaunchRequest,
    Offering,
    Throttled,
)
from spotpack.cloud.ec2_errors import ErrorClass, classify, error_for
from spotpack.errors import CloudError

MAX_OVERRIDES = 300
"""EC2's documented cap on overrides across a fleet's templates (stated for request and
maintain fleets; we keep instant fleets under it too)."""

SPOT_STRATEGY = "price-capacity-optimized"
ON_DEMAND_STRATEGY = "lowest-price"


def instance_tags(req: LaunchRequest, cluster_name: str) -> dict[str, str]:
    """The request's tags plus ours; ours win, so a caller cannot untag an instance."""
    return {
        **req.tags,
        CLUSTER_TAG: cluster_name,
        CLAIM_TAG: req.claim_id,
        "Name": f"{cluster_name}/{req.claim_id}",
    }


DEFAULT_ARCH = "amd64"
"""The architecture of every type when the provider is given no type -> architecture map."""


@dataclass(frozen=True, slots=True)
class FleetRequest:
    """CreateFleet parameters, and the candidates left out of them (and why)."""

    params: dict[str, Any]
    no_subnet: tuple[str, ...] = ()
    """Zones of candidates without a configured subnet."""
    no_template: tuple[str, ...] = ()
    """Instance types of an architecture without a launch template (or of none known)."""

    @property
    def overrides(self) -> int:
        return sum(len(c["Overrides"]) for c in self.params["LaunchTemplateConfigs"])


def build_fleet_request(
    req: LaunchRequest,
    *,
    templates: Mapping[str, Mapping[str, str]],
    subnet_by_zone: Mapping[str, str],
    cluster_name: str,
    arch_of: Mapping[str, str] | None = None,
) -> FleetRequest:
    """CreateFleet parameters for ``req``: one launch template config per architecture.

    ``templates`` maps an architecture (``amd64``, ``arm64``) to its
    LaunchTemplateSpecification: an AMI boots one architecture, so each
    override goes under the template of its type's architecture (``arch_of``;
    without it every type is taken as amd64). One request carries them all,
    so EC2's allocation strategy still chooses among every candidate. Types
    of an architecture without a template, and zones without a subnet, are
    left out and reported.
    """
    grouped: dict[str, list[dict[str, str]]] = {}
    no_subnet: list[str] = []
    no_template: list[str] = []
    seen: set[tuple[str, str]] = set()
    count = 0
    for instance_type, zone in req.candidates:
        arch = DEFAULT_ARCH if arch_of is None else arch_of.get(instance_type)
        if arch is None or arch not in templates:
            if instance_type not in no_template:
                no_template.append(instance_type)
            continue
        subnet = subnet_by_zone.get(zone)
        if subnet is None:
            if zone not in no_subnet:
                no_subnet.append(zone)
            continue
        if (instance_type, subnet) in seen or count >= MAX_OVERRIDES:
            continue
        seen.add((instance_type, subnet))
        count += 1
        grouped.setdefault(arch, []).append({"InstanceType": instance_type, "SubnetId": subnet})
    tags = [{"Key": k, "Value": v} for k, v in sorted(instance_tags(req, cluster_name).items())]
    params: dict[str, Any] = {
        "Type": "instant",
        "ClientToken": req.client_token,
        "LaunchTemplateConfigs": [
            {"LaunchTemplateSpecification": dict(templates[arch]), "Overrides": overrides}
            for arch, overrides in grouped.items()
        ],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": 1,
            "DefaultTargetCapacityType": req.capacity,
        },
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "fleet", "Tags": tags},
        ],
    }
    if req.capacity == "spot":
        params["SpotOptions"] = {"AllocationStrategy": SPOT_STRATEGY}
    else:
        params["OnDemandOptions"] = {"AllocationStrategy": ON_DEMAND_STRATEGY}
    return FleetRequest(params, tuple(no_subnet), tuple(no_template))


def narrowed_token(token: str, candidates: Iterable[tuple[str, str]]) -> str:
    """The token for a request whose candidates the offering cache narrowed.

    Deterministic (a retry of the narrowed request is still idempotent), and
    different from ``token``, which EC2 may already hold for the full list.
    """
    text = token + "\x00" + "\x00".join(f"{t}/{z}" for t, z in candidates)
    return f"spotpack-{hashlib.sha256(text.encode()).hexdigest()[:40]}"


@dataclass(frozen=True, slots=True)
class FleetError:
    """One entry of CreateFleet's ``Errors``: the offering it names (when it names one)."""

    offering: Offering | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class FleetResult:
    instance_ids: tuple[str, ...]
    launched: Offering | None
    errors: tuple[FleetError, ...]


def _override_offering(
    item: Mapping[str, Any], zone_of_subnet: Mapping[str, str], capacity: str
) -> Offering | None:
    overrides = (item.get("LaunchTemplateAndOverrides") or {}).get("Overrides") or {}
    instance_type = overrides.get("InstanceType") or item.get("InstanceType")
    zone = (
        overrides.get("AvailabilityZone")
        or item.get("AvailabilityZone")
        or zone_of_subnet.get(str(overrides.get("SubnetId") or item.get("SubnetId") or ""))
    )
    if not instance_type or not zone:
        return None
    return Offering(str(instance_type), str(zone), str(item.get("Lifecycle") or capacity))


def parse_fleet_response(
    response: Mapping[str, Any], *, zone_of_subnet: Mapping[str, str], capacity: str
) -> FleetResult:
    """Instance ids, the offering that launched, and the per-override errors."""
    ids: list[str] = []
    launched = None
    for item in response.get("Instances") or []:
        for instance_id in item.get("InstanceIds") or []:
            ids.append(str(instance_id))
            launched = launched or _override_offering(item, zone_of_subnet, capacity)
    errors = tuple(
        FleetError(
            _override_offering(item, zone_of_subnet, capacity),
            str(item.get("ErrorCode") or "Unknown"),
            str(item.get("ErrorMessage") or ""),
        )
        for item in response.get("Errors") or []
    )
    return FleetResult(tuple(ids), launched, errors)


def capacity_offerings(errors: Iterable[FleetError]) -> tuple[Offering, ...]:
    """The offerings that said "no capacity", each once, in order."""
    seen: dict[Offering, None] = {}
    for error in errors:
        if error.offering is not None and classify(error.code) is ErrorClass.CAPACITY:
            seen.setdefault(error.offering)
    return tuple(seen)


def fleet_failure(errors: Sequence[FleetError], req: LaunchRequest) -> CloudError:
    """Why a fleet launched nothing, as one error of our tree."""
    if not errors:
        return CloudError(
            f"EC2 CreateFleet for claim {req.claim_id} launched nothing and reported no error",
            code="EmptyFleet",
            retryable=True,
        )
    kinds = [classify(e.code) for e in errors]
    summary = "; ".join(
        f"{e.offering.instance_type}/{e.offering.zone}: {e.code}" if e.offering else e.code
        for e in errors
    )
    if ErrorClass.CAPACITY in kinds:
        capacity = [e for e, k in zip(errors, kinds, strict=True) if k is ErrorClass.CAPACITY]
        offerings = capacity_offerings(capacity) or req.offerings()
        return InsufficientCapacity(
            offerings, f"EC2 CreateFleet for claim {req.claim_id}: {summary}", code=capacity[0].code
        )
    if all(k is ErrorClass.THROTTLED for k in kinds):
        return Throttled(f"EC2 CreateFleet throttled: {summary}", code=errors[0].code)
    transient = [e for e, k in zip(errors, kinds, strict=True) if k is not ErrorClass.REFUSED]
    if transient:
        return CloudError(
            f"EC2 CreateFleet failed: {summary}; try again later",
            code=transient[0].code,
            retryable=True,
        )
    first = errors[0]
    return error_for(first.code, f"{first.message} ({summary})", operation="CreateFleet")


def instance_from_ec2(item: Mapping[str, Any]) -> Instance:
    """A DescribeInstances entry as an :class:`Instance` (spot when its lifecycle says so)."""
    tags = {str(t.get("Key")): str(t.get("Value")) for t in item.get("Tags") or []}
    launched = item.get("LaunchTime")
    if not isinstance(launched, datetime):
        launched = datetime.now(UTC)
    elif launched.tzinfo is None:
        launched = launched.replace(tzinfo=UTC)
    dns = str(item.get("PrivateDnsName") or "") or None
    return Instance(
        instance_id=str(item["InstanceId"]),
        instance_type=str(item.get("InstanceType", "")),
        zone=str((item.get("Placement") or {}).get("AvailabilityZone", "")),
        capacity="spot" if item.get("InstanceLifecycle") == "spot" else "on-demand",
        claim_id=tags.get(CLAIM_TAG, ""),
        state=str((item.get("State") or {}).get("Name", "")),
        launched_at=launched,
        node_name=dns,
        private_dns=dns,
    )


__all__ = [
    "DEFAULT_ARCH",
    "MAX_OVERRIDES",
    "ON_DEMAND_STRATEGY",
    "SPOT_STRATEGY",
    "FleetError",
    "FleetRequest",
    "FleetResult",
    "build_fleet_request",
    "capacity_offerings",
    "fleet_failure",
    "instance_from_ec2",
    "instance_tags",
    "narrowed_token",
    "parse_fleet_response",
]
