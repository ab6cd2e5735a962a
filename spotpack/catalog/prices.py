"""Price-only tables: on-demand (and a few spot) prices of a cloud without specs in our data.

The shared data has Alibaba Cloud pay-as-you-go prices for 27 regions but no
vCPU, memory, GPU or spot data, so it cannot be a :class:`~spotpack.catalog.model.Catalog`.
It ships as ``spotpack/data/catalog-alibaba.json`` in this smaller format::

    schema_version: 1
    kind: price-table
    cloud: alibaba
    currency: null                   # unknown: the source does not say
    currency_note: str
    provenance: [str], notes: [str]
    on_demand: {region: {type: price per hour}}
    spot: {region: {type: {price, source, as_of?, note?}}}

Spot quotes carry a source like catalog figures, but no interruption bucket:
none is known for Alibaba.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from spotpack.catalog.model import Source

Name = Annotated[str, Field(min_length=1, max_length=128)]
Price = Annotated[float, Field(gt=0, le=1_000_000)]
Text = Annotated[str, Field(max_length=4000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class QuoteDoc(_Strict):
    price: Price
    source: Source
    as_of: Annotated[str, Field(max_length=64)] | None = None
    note: Text | None = None


class PriceTableDoc(_Strict):
    schema_version: Literal[1]
    kind: Literal["price-table"]
    cloud: Name
    currency: Name | None
    currency_note: Text
    provenance: list[Text]
    notes: list[Text] = []
    on_demand: dict[Name, dict[Name, Price]]
    spot: dict[Name, dict[Name, QuoteDoc]] = {}


@dataclass(frozen=True, slots=True)
class SpotQuote:
    """A spot price per instance-hour, with where it came from and, for seeds, how."""

    price: float
    source: Source
    as_of: str | None = None
    note: str | None = None


class PriceTable:
    """Prices by (type, region); None where the table has none (never a guess)."""

    def __init__(self, doc: PriceTableDoc) -> None:
        self.cloud = doc.cloud
        self.currency = doc.currency
        self.currency_note = doc.currency_note
        self.provenance = tuple(doc.provenance)
        self.notes = tuple(doc.notes)
        self._on_demand: Mapping[str, Mapping[str, float]] = MappingProxyType(
            {r: MappingProxyType(dict(p)) for r, p in doc.on_demand.items()}
        )
        self._spot: Mapping[str, Mapping[str, SpotQuote]] = MappingProxyType(
            {
                r: MappingProxyType(
                    {t: SpotQuote(q.price, q.source, q.as_of, q.note) for t, q in quotes.items()}
                )
                for r, quotes in doc.spot.items()
            }
        )

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(self._on_demand)

    def on_demand_price(self, name: str, region: str) -> float | None:
        return self._on_demand.get(region, {}).get(name)

    def spot_quote(self, name: str, region: str) -> SpotQuote | None:
        return self._spot.get(region, {}).get(name)

    def types(self, region: str) -> tuple[str, ...]:
        return tuple(self._on_demand.get(region, {}))
