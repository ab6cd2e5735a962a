"""EC2 behind :class:`~spotpack.cloud.base.CloudProvider`: CreateFleet ``instant``, tags, terminate.

How a launch goes:

1. **Look the claim up first** (DescribeInstances, tag filters): an instance
   already tagged with this claim is returned as is. This is what makes a
   launch idempotent across restarts. The client token cannot do it alone: EC2
   documents it for RunInstances as valid "for at least 24 hours after the
   termination of the instance" and says nothing more for CreateFleet, and
   moto ignores it altogether (a repeated CreateFleet launches again).
2. **One CreateFleet of type instant** with every candidate as a launch
   template override (one per instance type and zone, the zone given by its
   subnet, since an instant fleet override takes one subnet), grouped into one
   launch template config per CPU architecture (an AMI boots one: amd64
   types under the amd64 template, arm64 under the arm64 one), total capacity
   1, ``DefaultTargetCapacityType`` spot or on-demand; spot uses the
   ``price-capacity-optimized`` allocation strategy (AWS's recommendation:
   the cheapest of the pools least likely to be interrupted), on-demand
   ``lowest-price``. Instance and fleet are tagged at creation with
   ``spotpack.io/cluster``, ``spotpack.io/claim`` and ``Name``, so there is no
   moment when our instance exists untagged.
3. **Read the answer**: instance ids, and ``Errors`` per override. Capacity
   codes become :class:`InsufficientCapacity` naming the offerings (and mark
   the optional :class:`OfferingCache`, even when another override succeeded).
4. **Read the instance back** (DescribeInstances by id, retried briefly since
   a new instance may not be visible yet) for its zone, type and DNS name.

CreateFleet needs a launch template per architecture it may launch
(``architectures``, default amd64 only). Production passes them (user data,
AMI, security groups, instance profile: the node's bootstrap is not ours to
invent); without one, :meth:`AwsProvider.ensure_launch_template` creates a
minimal ``spotpack-<cluster>`` (``spotpack-<cluster>-arm64``) template holding
only the image id, which is what tests against moto and quick trials need.
Each type's architecture comes from ``instance_arch`` (the catalog's); a type
of an architecture without a template is never sent. RunInstances is not used:
CreateFleet works in moto and in every commercial region.

IAM: ``ec2:CreateFleet``, ``ec2:RunInstances`` (a fleet launches through it),
``ec2:CreateTags``,
``ec2:DescribeInstances``, ``ec2:TerminateInstances``,
``ec2:DescribeLaunchTemplates``, ``ec2:CreateLaunchTemplate`` (only without a
template) and ``iam:PassRole`` for the node role. Credentials come from the
standard AWS chain; ``endpoint_url`` points the client elsewhere (moto).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from spotpack.cloud.aws_errors import (
    client_config,
    error_code,
    error_message,
    translate,
    translated,
)
from spotpack.cloud.base import (
    CLAIM_TAG,
    CLUSTER_TAG,
    Instance,
    InsufficientCapacity,
    LaunchRefused,
    LaunchRequest,
    Offering,
    OfferingCache,
)
from spotpack.cloud.ec2_fleet import (
    DEFAULT_ARCH,
    FleetError,
    FleetRequest,
    build_fleet_request,
    capacity_offerings,
    fleet_failure,
    instance_from_ec2,
    narrowed_token,
    parse_fleet_response,
)
from spotpack.errors import CloudError, ConfigError

log = logging.getLogger(__name__)

LIVE_STATES = ("pending", "running")
"""States of an instance that still counts: what ``find`` and ``list_owned`` return."""

TERMINATE_BATCH = 100
"""TerminateInstances takes up to 1000 ids; AWS recommends smaller batches."""

_INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- the provider ----------------------------------------------------------------------------


class AwsProvider:
    """Launches, finds and terminates this cluster's EC2 instances (a ``CloudProvider``)."""

    name = "aws"

    def __init__(
        self,
        region: str,
        cluster_name: str,
        *,
        launch_template: str | None = None,
        subnet_by_zone: Mapping[str, str],
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        image_id: str | None = None,
        launch_template_arm64: str | None = None,
        image_id_arm64: str | None = None,
        architectures: Sequence[str] = (DEFAULT_ARCH,),
        instance_arch: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        offering_cache: OfferingCache | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        readback_attempts: int = 5,
        readback_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not cluster_name:
            raise ConfigError("AwsProvider needs a cluster name: it tags and finds instances by it")
        if not subnet_by_zone:
            raise ConfigError("AwsProvider needs subnet_by_zone: a subnet per zone to launch in")
        given = {
            "amd64": (launch_template, image_id),
            "arm64": (launch_template_arm64, image_id_arm64),
        }
        self.templates: dict[str, tuple[str | None, str | None]] = {}
        for arch in architectures:
            if arch not in given:
                raise ConfigError(f"AwsProvider: unknown architecture {arch!r} (amd64, arm64)")
            if given[arch] == (None, None):
                raise ConfigError(
                    f"AwsProvider needs a launch template for {arch}, "
                    "or an image id to create a minimal one"
                )
            self.templates[arch] = given[arch]
        if not self.templates:
            raise ConfigError("AwsProvider needs at least one architecture to launch")
        self.region = region
        self.cluster_name = cluster_name
        self.launch_template = launch_template
        self.image_id = image_id
        self.instance_arch = dict(instance_arch) if instance_arch is not None else None
        self.subnet_by_zone = dict(subnet_by_zone)
        self.zone_of_subnet = {subnet: zone for zone, subnet in self.subnet_by_zone.items()}
        self.offering_cache = offering_cache
        self._clock = clock
        self._sleep = sleep
        self._readback_attempts = max(1, readback_attempts)
        self._readback_delay = readback_delay
        self._template_ids: dict[str, str] = {}
        config = client_config(
            max_attempts=max_attempts, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        with translated("EC2", "creating the client"):
            self.client: Any = (session or boto3.session.Session()).client(
                "ec2", region_name=region, endpoint_url=endpoint_url, config=config
            )

    def close(self) -> None:
        self.client.close()

    # --- launch --------------------------------------------------------------------------

    def launch(self, req: LaunchRequest) -> Instance:
        """The claim's instance: the one that exists, or a new one from the best candidate."""
        existing = self.find(req.claim_id)
        if existing is not None:
            log.info(
                "claim already has an instance; not launching",
                extra={"claim": req.claim_id, "instance": existing.instance_id},
            )
            return existing
        request = self._without_unavailable(req)
        fleet = self._fleet_request(request)
        try:
            with translated("EC2", "CreateFleet", offerings=request.offerings()):
                response = self.client.create_fleet(**fleet.params)
        except LaunchRefused as exc:
            if exc.code.startswith(("InvalidLaunchTemplateId", "InvalidLaunchTemplateName")):
                self._template_ids.clear()  # deleted behind our back: look up again next time
            raise
        result = parse_fleet_response(
            response, zone_of_subnet=self.zone_of_subnet, capacity=req.capacity
        )
        self._remember_unavailable(result.errors)
        if not result.instance_ids:
            raise fleet_failure(result.errors, request)
        instance_id, extra = result.instance_ids[0], result.instance_ids[1:]
        if extra:
            log.error(
                "CreateFleet launched more than one instance for a claim; terminating the extra",
                extra={"claim": req.claim_id, "kept": instance_id, "extra": list(extra)},
            )
            self.terminate(extra)
        instance = self._read_back(instance_id, req, result.launched)
        log.info(
            "launched",
            extra={
                "claim": req.claim_id,
                "instance": instance.instance_id,
                "type": instance.instance_type,
                "zone": instance.zone,
                "capacity": instance.capacity,
            },
        )
        return instance

    def _fleet_request(self, request: LaunchRequest) -> FleetRequest:
        """The CreateFleet parameters; refused when no candidate can be sent at all."""
        arches = {a for t, _ in request.candidates if (a := self._arch(t)) in self.templates}
        fleet = build_fleet_request(
            request,
            templates={arch: self._template_spec(arch) for arch in sorted(arches)},
            subnet_by_zone=self.subnet_by_zone,
            cluster_name=self.cluster_name,
            arch_of=self.instance_arch,
        )
        claim = request.claim_id
        if fleet.no_subnet:
            log.warning(
                "no subnet configured for some candidate zones; skipping them",
                extra={"claim": claim, "zones": fleet.no_subnet},
            )
        if fleet.no_template:
            log.warning(
                "no launch template for the architecture of some candidate types; skipping them",
                extra={"claim": claim, "types": fleet.no_template, "have": sorted(self.templates)},
            )
        if fleet.overrides:
            return fleet
        if fleet.no_subnet:
            raise LaunchRefused(
                f"claim {claim}: no subnet for any candidate zone ({', '.join(fleet.no_subnet)}); "
                "fix: add the zones to subnet_by_zone",
                code="NoSubnet",
            )
        raise LaunchRefused(
            f"claim {claim}: no launch template for the architecture of any candidate "
            f"({', '.join(fleet.no_template)}); launch templates are configured for "
            f"{', '.join(sorted(self.templates))}",
            code="NoLaunchTemplate",
        )

    def _arch(self, instance_type: str) -> str | None:
        if self.instance_arch is None:
            return DEFAULT_ARCH
        return self.instance_arch.get(instance_type)

    def _without_unavailable(self, req: LaunchRequest) -> LaunchRequest:
        """``req`` without the offerings the cache says are out of capacity right now."""
        if self.offering_cache is None:
            return req
        candidates = self.offering_cache.available(req.candidates, req.capacity)
        if not candidates:
            raise InsufficientCapacity(
                req.offerings(),
                f"claim {req.claim_id}: every candidate ran out of capacity in the last "
                f"{self.offering_cache.ttl:.0f}s",
                code="RecentlyUnavailable",
            )
        if candidates == req.candidates:
            return req
        # Other parameters under the same token would be IdempotentParameterMismatch.
        token = narrowed_token(req.client_token, candidates)
        return replace(req, candidates=candidates, client_token=token)

    def _remember_unavailable(self, errors: Sequence[FleetError]) -> None:
        offerings = capacity_offerings(errors)
        if offerings:
            log.info(
                "offerings out of capacity",
                extra={
                    "offerings": [f"{o.instance_type}/{o.zone}/{o.capacity}" for o in offerings]
                },
            )
        if self.offering_cache is not None:
            codes = {e.offering: e.code for e in errors if e.offering is not None}
            for offering in offerings:
                self.offering_cache.mark(*offering, reason=codes.get(offering, ""))

    def _read_back(
        self, instance_id: str, req: LaunchRequest, launched: Offering | None
    ) -> Instance:
        """DescribeInstances by id; a new instance may take a moment to become visible."""
        for attempt in range(self._readback_attempts):
            try:
                found = self._describe(instance_ids=[instance_id], states=None)
            except CloudError as exc:
                if exc.code != "InvalidInstanceID.NotFound":
                    raise
                found = []
            if found:
                return found[0]
            if attempt + 1 < self._readback_attempts:
                self._sleep(self._readback_delay * (attempt + 1))
        log.warning(
            "launched instance not visible yet; using what CreateFleet said",
            extra={"claim": req.claim_id, "instance": instance_id},
        )
        offering = launched or Offering(req.candidates[0][0], req.candidates[0][1], req.capacity)
        return Instance(
            instance_id=instance_id,
            instance_type=offering.instance_type,
            zone=offering.zone,
            capacity=req.capacity,
            claim_id=req.claim_id,
            state="pending",
            launched_at=self._clock(),
        )

    # --- launch template -----------------------------------------------------------------

    @property
    def template_name(self) -> str:
        """The minimal amd64 template's name (see :meth:`template_name_for`)."""
        return self.template_name_for(DEFAULT_ARCH)

    def template_name_for(self, arch: str) -> str:
        """``spotpack-<cluster>`` for amd64, ``spotpack-<cluster>-<arch>`` otherwise."""
        base = f"spotpack-{self.cluster_name}"
        return base if arch == DEFAULT_ARCH else f"{base}-{arch}"

    def _template_spec(self, arch: str) -> dict[str, str]:
        template, _ = self.templates[arch]
        if template:
            key = "LaunchTemplateId" if template.startswith("lt-") else "LaunchTemplateName"
            return {key: template, "Version": "$Default"}
        return {"LaunchTemplateId": self.ensure_launch_template(arch), "Version": "$Latest"}

    def ensure_launch_template(self, arch: str = DEFAULT_ARCH) -> str:
        """The id of the minimal template of ``arch``, created with its image when missing.

        An existing template is used as it is (its image is not compared):
        delete it to change the image. Two provisioners racing to create it
        both end up with the one that won.
        """
        found = self._template_ids.get(arch)
        if found is not None:
            return found
        name = self.template_name_for(arch)
        template_id = self._lookup_template(name)
        if template_id is None:
            try:
                template_id = self._create_template(name, self.templates[arch][1])
            except LaunchRefused as exc:
                if exc.code != "InvalidLaunchTemplateName.AlreadyExistsException":
                    raise
                template_id = self._lookup_template(name)
        if template_id is None:
            raise CloudError(
                f"launch template {name} neither exists nor can be created",
                code="NoLaunchTemplate",
                retryable=True,
            )
        self._template_ids[arch] = template_id
        return template_id

    def _lookup_template(self, name: str) -> str | None:
        try:
            with translated("EC2", "DescribeLaunchTemplates"):
                response = self.client.describe_launch_templates(LaunchTemplateNames=[name])
        except LaunchRefused as exc:
            if exc.code.startswith("InvalidLaunchTemplateName.NotFound"):
                return None
            raise
        templates = response.get("LaunchTemplates") or []
        return str(templates[0]["LaunchTemplateId"]) if templates else None

    def _create_template(self, name: str, image_id: str | None) -> str:
        with translated("EC2", "CreateLaunchTemplate"):
            response = self.client.create_launch_template(
                LaunchTemplateName=name,
                LaunchTemplateData={"ImageId": image_id},
                TagSpecifications=[
                    {
                        "ResourceType": "launch-template",
                        "Tags": [{"Key": CLUSTER_TAG, "Value": self.cluster_name}],
                    }
                ],
            )
        template_id = str(response["LaunchTemplate"]["LaunchTemplateId"])
        log.info(
            "created launch template",
            extra={"template": name, "id": template_id, "image": image_id},
        )
        return template_id

    # --- lookups -------------------------------------------------------------------------

    def find(self, claim_id: str) -> Instance | None:
        """The claim's live instance (the oldest, should a bug ever have made two)."""
        found = self._describe(filters=[{"Name": f"tag:{CLAIM_TAG}", "Values": [claim_id]}])
        if not found:
            return None
        found.sort(key=lambda i: (i.launched_at, i.instance_id))
        if len(found) > 1:
            log.error(
                "claim has more than one instance",
                extra={"claim": claim_id, "instances": [i.instance_id for i in found]},
            )
        return found[0]

    def list_owned(self) -> list[Instance]:
        """Every live instance tagged with this cluster."""
        return self._describe()

    def _describe(
        self,
        *,
        filters: Sequence[Mapping[str, Any]] = (),
        instance_ids: Sequence[str] = (),
        states: Sequence[str] | None = LIVE_STATES,
    ) -> list[Instance]:
        query: list[Mapping[str, Any]] = [
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [self.cluster_name]},
            *filters,
        ]
        if states:
            query.append({"Name": "instance-state-name", "Values": list(states)})
        kwargs: dict[str, Any] = {"Filters": query}
        if instance_ids:
            kwargs["InstanceIds"] = list(instance_ids)
        instances: list[Instance] = []
        with translated("EC2", "DescribeInstances"):
            for page in self.client.get_paginator("describe_instances").paginate(**kwargs):
                for reservation in page.get("Reservations") or []:
                    instances.extend(
                        instance_from_ec2(item) for item in reservation.get("Instances") or []
                    )
        return instances

    # --- terminate -----------------------------------------------------------------------

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Terminate; ids EC2 does not know (already gone) are logged and skipped.

        EC2 refuses the whole call when one id is unknown ("none of the
        instances are terminated"), so the unknown ids named in the error are
        dropped and the rest sent again.
        """
        ids = list(dict.fromkeys(i for i in instance_ids if i))
        for start in range(0, len(ids), TERMINATE_BATCH):
            self._terminate_batch(ids[start : start + TERMINATE_BATCH])

    def _terminate_batch(self, ids: list[str]) -> None:
        pending = list(ids)
        while pending:
            try:
                self.client.terminate_instances(InstanceIds=pending)
            except ClientError as exc:
                if error_code(exc) != "InvalidInstanceID.NotFound":
                    raise translate(exc, "EC2", "TerminateInstances") from exc
                named = set(_INSTANCE_ID.findall(error_message(exc))) & set(pending)
                if not named:
                    self._terminate_one_by_one(pending)
                    return
                log.info("already gone; not terminating", extra={"instances": sorted(named)})
                pending = [i for i in pending if i not in named]
                continue
            except BotoCoreError as exc:
                raise translate(exc, "EC2", "TerminateInstances") from exc
            log.info("terminating", extra={"instances": pending})
            return

    def _terminate_one_by_one(self, ids: Iterable[str]) -> None:
        for instance_id in ids:
            try:
                with translated("EC2", "TerminateInstances"):
                    self.client.terminate_instances(InstanceIds=[instance_id])
            except LaunchRefused as exc:
                if exc.code != "InvalidInstanceID.NotFound":
                    raise
                log.info("already gone; not terminating", extra={"instances": [instance_id]})


__all__ = ["LIVE_STATES", "TERMINATE_BATCH", "AwsProvider"]
