"""boto3/botocore failures -> spotpack's cloud error tree, once, chained.

Shared by the EC2 provider and the SQS notice source. The tree is
:mod:`spotpack.cloud.base`'s (``InsufficientCapacity``, ``Throttled``,
``LaunchRefused``, a retryable ``CloudError`` for server and network trouble);
which code goes where is :mod:`spotpack.cloud.ec2_errors`'s decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from spotpack.cloud.base import LaunchRefused, Offering
from spotpack.cloud.ec2_errors import error_for
from spotpack.errors import CloudError

DEFAULT_MAX_ATTEMPTS = 3
"""botocore's standard retry mode, bounded: the first call and two retries.

Standard mode retries throttling codes and 5xx with exponential backoff and
jitter; beyond that the loop's own backoff takes over, so one slow API never
holds the provisioner for minutes.
"""


def client_config(
    *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, connect_timeout: float, read_timeout: float
) -> Config:
    return Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")).strip() or str(exc)


def translate(
    exc: Exception, service: str, operation: str, *, offerings: Iterable[Offering] = ()
) -> Exception:
    """The spotpack error for a boto failure (``exc`` itself when it is not one); chain it."""
    if isinstance(exc, ClientError):
        meta: Any = exc.response.get("ResponseMetadata", {})
        retries = meta.get("RetryAttempts", 0)
        status = meta.get("HTTPStatusCode")
        after = f" (after {retries} retries)" if retries else ""
        return error_for(
            error_code(exc),
            error_message(exc) + after,
            operation=operation,
            service=service,
            status=status if isinstance(status, int) else None,
            offerings=tuple(offerings),
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return LaunchRefused(
            f"{service} {operation}: no usable AWS credentials ({exc}); fix: set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance or IRSA role",
            code="NoCredentials",
        )
    if isinstance(exc, NoRegionError):
        return LaunchRefused(
            f"{service} {operation}: no region; fix: configure the region", code="NoRegion"
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return CloudError(
            f"{service} {operation}: cannot reach the endpoint ({exc}); fix: check the network "
            "or the endpoint URL",
            code="ConnectionError",
            retryable=True,
        )
    if isinstance(exc, BotoCoreError):
        return CloudError(f"{service} {operation} failed: {exc}", code=type(exc).__name__)
    return exc


@contextmanager
def translated(
    service: str, operation: str, *, offerings: Iterable[Offering] = ()
) -> Iterator[None]:
    """Run boto3 calls; re-raise any boto failure as the matching spotpack error, chained."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service, operation, offerings=offerings) from exc


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "client_config",
    "error_code",
    "error_message",
    "translate",
    "translated",
]
