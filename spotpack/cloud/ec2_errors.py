"""EC2 error codes, sorted once into spotpack's error tree (pure: no boto3 here).

The same code can reach us two ways: as the error of a whole API call (a
botocore ``ClientError``) or inside a successful CreateFleet answer, one entry
per launch template override in ``Errors``. Both go through :func:`classify`,
so "is this a capacity problem?" has one answer everywhere.

Capacity codes name a pool that is empty (or an account limit that makes it so
for us, as Karpenter also treats ``VcpuLimitExceeded``): other offerings may
still work, so they become :class:`~spotpack.cloud.base.InsufficientCapacity`
naming the offerings and are cached for a few minutes. Throttling codes are
about our call rate, not about an offering: :class:`Throttled`, retried with
backoff. Server codes are retryable. Everything else a client error (400s:
parameters, auth, a missing launch template) is :class:`LaunchRefused`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from spotpack.cloud.base import InsufficientCapacity, LaunchRefused, Offering, Throttled
from spotpack.errors import CloudError


class ErrorClass(StrEnum):
    CAPACITY = "capacity"
    THROTTLED = "throttled"
    SERVER = "server"
    REFUSED = "refused"


CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientCapacityOnHost",
        "InsufficientFreeAddressesInSubnet",
        "UnfulfillableCapacity",
        "MaxSpotInstanceCountExceeded",
        "VcpuLimitExceeded",
        "SpotMaxPriceTooLow",
        "Unsupported",  # "the instance type is not supported in the requested zone"
        # Spot request status codes, as fleets of type request report them:
        "capacity-not-available",
        "capacity-oversubscribed",
        "price-too-low",
    }
)
"""Codes meaning "this offering cannot be had right now": try others, cache it."""

THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled"}
)

SERVER_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "ServerInternal"}
)

HINTS = {
    "AuthFailure": "check the AWS credentials (profile, keys or role)",
    "InvalidClientTokenId": "check the AWS credentials (profile, keys or role)",
    "UnauthorizedOperation": (
        "grant ec2:CreateFleet, ec2:RunInstances, ec2:CreateTags, ec2:DescribeInstances, "
        "ec2:TerminateInstances, ec2:CreateLaunchTemplate, ec2:DescribeLaunchTemplates "
        "and iam:PassRole for the node role"
    ),
    "IdempotentParameterMismatch": (
        "a client token was reused with other parameters; build the retry with "
        "LaunchRequest.for_claim(..., attempt=n+1)"
    ),
    "InvalidLaunchTemplateName.NotFoundException": "create the launch template or fix its name",
    "InvalidLaunchTemplateId.NotFound": "create the launch template or fix its id",
    "InvalidSubnetID.NotFound": "fix subnet_by_zone: the subnet does not exist in this region",
    "InvalidAMIID.NotFound": "fix the image id: the AMI does not exist in this region",
    "RequestLimitExceeded": "EC2 is throttling this account's API calls; back off and retry",
}


def classify(code: str, status: int | None = None) -> ErrorClass:
    """Which branch of the error tree an EC2 error code (and HTTP status) belongs to."""
    if code in CAPACITY_CODES:
        return ErrorClass.CAPACITY
    if code in THROTTLE_CODES or code.endswith("Throttling"):
        return ErrorClass.THROTTLED
    if code in SERVER_CODES or (status is not None and status >= 500):
        return ErrorClass.SERVER
    return ErrorClass.REFUSED


def error_for(
    code: str,
    message: str,
    *,
    operation: str,
    service: str = "EC2",
    status: int | None = None,
    offerings: Iterable[Offering] = (),
) -> CloudError:
    """The spotpack error for an AWS error code; the caller raises it (chained)."""
    hint = HINTS.get(code, "")
    text = f"{service} {operation} failed: {code}: {message}".rstrip(": ")
    if hint:
        text = f"{text}; fix: {hint}"
    kind = classify(code, status)
    if kind is ErrorClass.CAPACITY:
        return InsufficientCapacity(
            tuple(offerings), f"{service} {operation}: {message}", code=code
        )
    if kind is ErrorClass.THROTTLED:
        return Throttled(text, code=code)
    if kind is ErrorClass.SERVER:
        return CloudError(f"{text}; try again later", code=code, retryable=True)
    return LaunchRefused(text, code=code)


__all__ = [
    "CAPACITY_CODES",
    "SERVER_CODES",
    "THROTTLE_CODES",
    "ErrorClass",
    "classify",
    "error_for",
]
