"""EC2 as a catalog source: instance specs, live spot prices, and the Spot Advisor feed.

The only module of the catalog that imports boto3. It reads; it never launches
anything. Calls are paginated, retried by botocore's standard retry mode, and
every boto3/botocore failure is translated once, here, into
:class:`~spotpack.errors.CloudError` (chained), with ``retryable`` set for
throttling, server errors and timeouts.

Credentials come from the standard AWS chain (environment, profile, web
identity/IRSA, instance role). ``endpoint_url`` points the client elsewhere,
e.g. at moto's server mode in tests. IAM: ``ec2:DescribeInstanceTypes`` and
``ec2:DescribeSpotPriceHistory``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from spotpack.catalog.load import MAX_FILE_BYTES, read_document
from spotpack.catalog.model import Arch, GPUSpec
from spotpack.catalog.refresh import LivePrice, LiveSpec
from spotpack.errors import CloudError, ConfigError

log = logging.getLogger(__name__)

LINUX_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
"""Spot price product descriptions of plain Linux (moto reports only the VPC one)."""

TYPES_PER_CALL = 100
"""Names or patterns per request filter; the rest go in further calls."""

RETRYABLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
    }
)

_HINTS: Mapping[str, str] = {
    "RequestLimitExceeded": "EC2 is throttling this account's API calls; try again in a minute",
    "UnauthorizedOperation": "grant ec2:DescribeInstanceTypes and ec2:DescribeSpotPriceHistory",
    "AuthFailure": "check the AWS credentials (profile, keys or role)",
    "InvalidClientTokenId": "check the AWS credentials (profile, keys or role)",
}


class AwsCatalogSource:
    """Reads specs and spot prices of one region from EC2 (implements ``CatalogSource``)."""

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        session: boto3.session.Session | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.region = region
        config = Config(
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        with _translated("creating the EC2 client"):
            self.client: Any = (session or boto3.session.Session()).client(
                "ec2", region_name=region, endpoint_url=endpoint_url, config=config
            )

    def close(self) -> None:
        """Close the client's connection pool (a refresh is a one-shot command)."""
        self.client.close()

    def __enter__(self) -> AwsCatalogSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def instance_specs(self, instance_types: Sequence[str]) -> list[LiveSpec]:
        """The specs of ``instance_types`` that EC2 offers in the region (all pages).

        Asks by family wildcard (``instance-type`` filter ``g5.*``), not by name:
        naming a type the region does not offer fails the whole call with
        InvalidInstanceType, and a filter that matches nothing does not.
        """
        wanted = set(instance_types)
        patterns = sorted({f"{name.split('.', 1)[0]}.*" for name in wanted})
        specs = []
        with _translated("DescribeInstanceTypes"):
            for start in range(0, len(patterns), TYPES_PER_CALL):
                chunk = patterns[start : start + TYPES_PER_CALL]
                pages = self.client.get_paginator("describe_instance_types").paginate(
                    Filters=[{"Name": "instance-type", "Values": chunk}]
                )
                for page in pages:
                    for item in page.get("InstanceTypes", []):
                        spec = parse_spec(item)
                        if spec is not None and spec.name in wanted:
                            specs.append(spec)
        return specs

    def spot_prices(self, instance_types: Sequence[str]) -> list[LivePrice]:
        """The current Linux/UNIX spot price per (type, zone), newest record only."""
        now = datetime.now(UTC)
        latest: dict[tuple[str, str], LivePrice] = {}
        with _translated("DescribeSpotPriceHistory"):
            for start in range(0, len(instance_types), TYPES_PER_CALL):
                pages = self.client.get_paginator("describe_spot_price_history").paginate(
                    InstanceTypes=list(instance_types[start : start + TYPES_PER_CALL]),
                    ProductDescriptions=list(LINUX_PRODUCTS),
                    StartTime=now,
                )
                for page in pages:
                    for item in page.get("SpotPriceHistory", []):
                        price = parse_price(item)
                        if price is None:
                            continue
                        key = (price.instance_type, price.zone)
                        seen = latest.get(key)
                        if seen is None or price.timestamp > seen.timestamp:
                            latest[key] = price
        return list(latest.values())


def parse_spec(item: Mapping[str, Any]) -> LiveSpec | None:
    """A DescribeInstanceTypes entry as a :class:`LiveSpec`; None (logged) when unusable."""
    try:
        name = str(item["InstanceType"])
        arches = item["ProcessorInfo"]["SupportedArchitectures"]
        arch: Arch | None = (
            "arm64" if "arm64" in arches else "amd64" if "x86_64" in arches else None
        )
        if arch is None:
            return None
        return LiveSpec(
            name=name,
            vcpu=int(item["VCpuInfo"]["DefaultVCpus"]),
            memory_mib=int(item["MemoryInfo"]["SizeInMiB"]),
            arch=arch,
            gpu=_gpu(item.get("GpuInfo")),
            usage_classes=frozenset(str(u) for u in item.get("SupportedUsageClasses", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning(
            "skipping an instance type EC2 described oddly: %s",
            exc,
            extra={"item": str(item)[:200]},
        )
        return None


def _gpu(info: Mapping[str, Any] | None) -> GPUSpec | None:
    """Sum the cards of every GPU entry; the first entry names the model (EC2 lists one)."""
    gpus = (info or {}).get("Gpus") or []
    if not gpus:
        return None
    first = gpus[0]
    count = sum(int(g.get("Count", 0)) for g in gpus)
    if count < 1:
        return None
    return GPUSpec(
        count=count,
        model=str(first["Name"]),
        mem_mib=int(first["MemoryInfo"]["SizeInMiB"]),
        manufacturer=str(first.get("Manufacturer", "NVIDIA")),
    )


def parse_price(item: Mapping[str, Any]) -> LivePrice | None:
    """A Linux/UNIX DescribeSpotPriceHistory record, None for other products or bad values."""
    if item.get("ProductDescription") not in LINUX_PRODUCTS:
        return None
    try:
        price = float(item["SpotPrice"])
        timestamp = item["Timestamp"]
        if not isinstance(timestamp, datetime):
            return None
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        if not price > 0:
            return None
        return LivePrice(str(item["InstanceType"]), str(item["AvailabilityZone"]), price, timestamp)
    except (KeyError, TypeError, ValueError):
        return None


def read_advisor(location: str, *, timeout: float = 30.0) -> Any:
    """The Spot Advisor feed from a file path or an http(s) URL, parsed as JSON."""
    if not location.startswith(("http://", "https://")):
        return read_document(Path(location))
    try:
        # The scheme is checked above: only http(s), never file:// or custom openers.
        with urllib.request.urlopen(location, timeout=timeout) as response:  # noqa: S310
            data = response.read(MAX_FILE_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise CloudError(
            f"cannot fetch the Spot Advisor feed {location}: {exc}; fix: check the URL and "
            "network, or download it and pass the file",
            code="AdvisorUnavailable",
            retryable=True,
        ) from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{location}: larger than {MAX_FILE_BYTES} bytes; fix: check the URL")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{location}: not JSON ({exc}); fix: check the URL") from exc


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """boto3/botocore errors -> CloudError, once, with a fix where we know one."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip() or str(exc)
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        retryable = code in RETRYABLE_CODES or code.endswith("Throttling")
        after = f" after {retries} retries" if retries else ""
        hint = _HINTS.get(code, "try again later" if retryable else "see the AWS error code")
        raise CloudError(
            f"EC2 {operation} failed{after}: {code}: {message}; fix: {hint}",
            code=code,
            retryable=retryable,
        ) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CloudError(
            f"EC2 {operation}: no usable AWS credentials ({exc}); fix: set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance or IRSA role",
            code="NoCredentials",
        ) from exc
    except NoRegionError as exc:
        raise CloudError(
            f"EC2 {operation}: no region; fix: pass --region", code="NoRegion"
        ) from exc
    except BotoConnectionError as exc:
        raise CloudError(
            f"EC2 {operation}: cannot reach the endpoint ({exc}); fix: check the network or "
            "--endpoint-url",
            code="ConnectionError",
            retryable=True,
        ) from exc
    except BotoCoreError as exc:
        raise CloudError(f"EC2 {operation} failed: {exc}", code=type(exc).__name__) from exc
