"""The AWS Spot Instance Advisor feed: spot savings and interruption bucket per region and type.

The feed is the JSON document behind the Spot Instance Advisor page
(``https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json``). Its
shape, as public parsers read it::

    {
      "global_rate": "<10%",
      "instance_types": {"m5.large": {"emr": true, "cores": 2, "ram_gb": 8.0}},
      "ranges": [{"index": 0, "label": "<5%", "dots": 0, "max": 5}, ...,
                 {"index": 4, "label": ">20%", "dots": 4, "max": 100}],
      "spot_advisor": {"us-east-1": {"Linux": {"m5.large": {"s": 59, "r": 0}},
                                     "Windows": {...}}}
    }

``s`` is the percent saved against on-demand over the last 30 days (averaged
across zones), ``r`` an index into ``ranges``: the monthly interruption
frequency bucket, the same numbering as :data:`~spotpack.catalog.model.BUCKET_LABELS`.
The feed is an outside wire format, so unknown keys are ignored; but if AWS ever
relabels the ranges we refuse it rather than misread every bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spotpack.catalog.model import BUCKET_LABELS, MAX_BUCKET
from spotpack.errors import ConfigError

DEFAULT_URL = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
LINUX = "Linux"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AdvisorStats(_Lenient):
    s: Annotated[int, Field(ge=0, le=100)]
    r: Annotated[int, Field(ge=0, le=MAX_BUCKET)]


class AdvisorRange(_Lenient):
    index: int
    label: str


class AdvisorFeed(_Lenient):
    ranges: list[AdvisorRange] = []
    spot_advisor: dict[str, dict[str, dict[str, AdvisorStats]]]


@dataclass(frozen=True, slots=True)
class AdvisorFigure:
    """One type in one region: percent saved versus on-demand, and the interruption bucket."""

    instance_type: str
    savings_percent: int
    bucket: int


def parse_advisor(
    document: object, region: str, *, where: str, os_name: str = LINUX
) -> dict[str, AdvisorFigure]:
    """The figures for ``region`` and ``os_name``, by instance type; ConfigError names ``where``."""
    try:
        feed = AdvisorFeed.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"{where}: not a Spot Advisor feed: {path}: {first['msg']} "
            f"({exc.error_count()} problems); fix: pass the JSON of {DEFAULT_URL}"
        ) from exc
    for rng in feed.ranges:
        if 0 <= rng.index <= MAX_BUCKET and rng.label != BUCKET_LABELS[rng.index]:
            raise ConfigError(
                f"{where}: ranges[{rng.index}] is {rng.label!r}, expected "
                f"{BUCKET_LABELS[rng.index]!r}; fix: the feed's buckets changed, update "
                "spotpack.catalog.model.BUCKET_LABELS before using it"
            )
    by_os = feed.spot_advisor.get(region)
    if by_os is None:
        known = ", ".join(sorted(feed.spot_advisor)[:10]) or "none"
        raise ConfigError(f"{where}: no figures for region {region!r}; fix: use one of {known}")
    stats = by_os.get(os_name, {})
    return {name: AdvisorFigure(name, s.s, s.r) for name, s in stats.items()}
