"""The instance catalog: packaged data, lookups, overrides, the build script and pure refresh.

The packaged catalog is checked against the public facts in the shared data
README (g4dn.xlarge is one T4 at $0.526/h, ...); every spot figure must say
where it came from; a zone without its own figure uses its region's; an
override file merges over the packaged data, and a bad one is refused with a
message naming the file, the path inside it and the fix. Loading any document
at all raises nothing but ConfigError.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.catalog import advisor as advisor_mod
from spotpack.catalog.advisor import AdvisorFigure, parse_advisor
from spotpack.catalog.build import (
    CLASS_ESTIMATES,
    FAMILY_ESTIMATES,
    build_alibaba_document,
    build_aws_document,
    estimate_for,
)
from spotpack.catalog.load import (
    apply_override,
    dumps,
    load_catalog,
    load_document,
    load_override,
    load_price_table,
    packaged_path,
    read_document,
    write_catalog,
)
from spotpack.catalog.model import (
    BUCKET_LABELS,
    BUCKET_RATES,
    SOURCES,
    Catalog,
    GPUSpec,
    SpotOffer,
    zone_region,
)
from spotpack.catalog.refresh import LivePrice, LiveSpec, refresh, refresh_from
from spotpack.catalog.schema import FIELD_NAMES, to_document
from spotpack.cli import main
from spotpack.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "catalog"
PACKAGED = REPO / "spotpack" / "data" / "catalog-aws.json"
PACKAGED_ALIBABA = REPO / "spotpack" / "data" / "catalog-alibaba.json"
NOW = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif name.endswith((".yaml", ".yml")):
        path.write_text(yaml.safe_dump(content))
    else:
        path.write_text(json.dumps(content))
    return path


# -- packaged data: public facts -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "model", "mem_mib", "price"),
    [
        ("g4dn.xlarge", 1, "T4", 16384, 0.526),
        ("g4dn.12xlarge", 4, "T4", 16384, 3.912),
        ("g5.xlarge", 1, "A10G", 22888, 1.006),
        ("g5.12xlarge", 4, "A10G", 22888, 5.672),
        ("g5.48xlarge", 8, "A10G", 22888, 16.288),
        ("g6.xlarge", 1, "L4", 22888, 0.8048),
        ("g6e.xlarge", 1, "L40S", 45776, 1.861),
        ("p3.2xlarge", 1, "V100", 16384, 3.06),
        ("p3.16xlarge", 8, "V100", 16384, 24.48),
        ("p4d.24xlarge", 8, "A100", 40960, 21.957642),
        ("p5.4xlarge", 1, "H100", 81920, 6.88),
        ("p5.48xlarge", 8, "H100", 81920, 55.04),
    ],
)
def test_gpu_types_match_the_public_facts(
    catalog: Catalog, name: str, count: int, model: str, mem_mib: int, price: float
) -> None:
    assert catalog.gpu_spec(name) == GPUSpec(count, model, mem_mib, "NVIDIA")
    assert catalog.on_demand_price(name, "us-east-1") == price
    assert catalog.on_demand_price(name) == price


def test_g4dn_xlarge_specs(catalog: Catalog) -> None:
    t = catalog.instance("g4dn.xlarge")
    assert t is not None
    assert (t.family, t.vcpu, t.memory_mib, t.arch) == ("g4dn", 4, 16384, "amd64")
    assert t.usage_classes == {"on-demand", "spot"}


@pytest.mark.parametrize("family", ["c6g", "m6g"])
def test_graviton_families_are_arm64(catalog: Catalog, family: str) -> None:
    members = [t for t in catalog.all() if t.family == family]
    assert len(members) >= 8
    assert {t.arch for t in members} == {"arm64"}


def test_every_other_family_is_amd64_by_kubernetes_name(catalog: Catalog) -> None:
    others = {t.arch for t in catalog.all() if t.family not in ("c6g", "m6g")}
    assert others == {"amd64"}


def test_counts_and_gpu_lookups(catalog: Catalog) -> None:
    assert len(catalog) == 145
    assert catalog.gpu_spec("m5.large") is None
    assert catalog.gpu_spec("no.such") is None
    assert catalog.instance("no.such") is None
    assert catalog.on_demand_price("no.such") is None
    assert catalog.on_demand_price("g4dn.xlarge", "eu-west-1") is None


def test_provenance_is_the_source_line_verbatim(catalog: Catalog) -> None:
    source = (
        json.loads((SHARED / "aws-instance-types.json").read_text())["source"]
        if SHARED.exists()
        else None
    )
    assert catalog.provenance[0].startswith("Specs: github.com/getmoto/moto")
    assert "zz_generated.pricing_aws.go" in catalog.provenance[0]
    if source is not None:
        assert catalog.provenance[0] == source
    assert any("estimate" in n for n in catalog.notes)


def test_p3_keeps_its_note(catalog: Catalog) -> None:
    t = catalog.instance("p3.2xlarge")
    assert t is not None and t.note and "95a01280bd2c" in t.note


# -- spot figures and their sources ------------------------------------------------


def test_every_spot_figure_carries_a_source(catalog: Catalog) -> None:
    offers = [o for t in catalog.all() for o in t.spot.values()]
    assert len(offers) == 145
    for offer in offers:
        assert offer.source in SOURCES
        assert offer.risk_source in SOURCES
        assert 0 <= offer.bucket < len(BUCKET_LABELS)
    # Nothing in the shipped data is a measurement: it all says so.
    assert {o.source for o in offers} == {"estimate"}


@pytest.mark.parametrize(
    ("family", "savings", "bucket"),
    [("g4dn", 0.70, 2), ("p5", 0.45, 4), ("m5", 0.55, 1), ("c6g", 0.50, 1), ("r6i", 0.60, 1)],
)
def test_estimates_follow_the_documented_table(
    catalog: Catalog, family: str, savings: float, bucket: int
) -> None:
    for t in (t for t in catalog.all() if t.family == family):
        offer = catalog.spot_offer(t.name)
        assert offer is not None
        assert offer.price == pytest.approx(t.on_demand["us-east-1"] * (1 - savings), abs=1e-6)
        assert offer.bucket == bucket


def test_g4dn_xlarge_spot_uses_the_70_percent_seed(catalog: Catalog) -> None:
    offer = catalog.spot_offer("g4dn.xlarge", "us-east-1")
    assert offer == SpotOffer(0.1578, 2, "estimate")
    assert FAMILY_ESTIMATES["g4dn"].savings == 0.70


def test_estimate_classes() -> None:
    assert estimate_for("m9", "amd64", has_gpu=False) is CLASS_ESTIMATES["general"]
    assert estimate_for("c9", "amd64", has_gpu=False) is CLASS_ESTIMATES["compute"]
    assert estimate_for("r9", "amd64", has_gpu=False) is CLASS_ESTIMATES["memory"]
    assert estimate_for("m9g", "arm64", has_gpu=False) is CLASS_ESTIMATES["arm"]
    assert estimate_for("g9", "amd64", has_gpu=True) is CLASS_ESTIMATES["gpu"]
    with pytest.raises(ConfigError, match="FAMILY_ESTIMATES"):
        estimate_for("x9", "amd64", has_gpu=False)


@pytest.mark.parametrize("zone", [f"us-east-1{z}" for z in "abcdef"])
def test_zone_lookups_fall_back_to_the_region(catalog: Catalog, zone: str) -> None:
    region_offer = catalog.spot_offer("g5.xlarge", "us-east-1")
    assert region_offer is not None
    assert catalog.spot_offer("g5.xlarge", zone) == region_offer
    assert catalog.interruption_bucket("g5.xlarge", zone) == region_offer.bucket


def test_zone_lookups_outside_the_catalog(catalog: Catalog) -> None:
    assert catalog.spot_offer("g5.xlarge", "eu-west-1a") is None
    assert catalog.spot_offer("g5.xlarge", "not-a-zone") is None
    assert catalog.spot_offer("no.such", "us-east-1a") is None
    assert catalog.interruption_bucket("no.such", "us-east-1a") is None
    # A zone not listed in regions still maps to its region by name.
    assert catalog.spot_offer("g5.xlarge", "us-east-1z") == catalog.spot_offer("g5.xlarge")


def test_zone_region_names() -> None:
    assert zone_region("us-east-1a") == "us-east-1"
    assert zone_region("ap-southeast-2c") == "ap-southeast-2"
    assert zone_region("us-gov-west-1b") == "us-gov-west-1"
    assert zone_region("us-east-1") is None
    assert zone_region("us-east-1-bos-1a") is None


def test_offer_invariants_and_rates() -> None:
    with pytest.raises(ValueError, match="bucket"):
        SpotOffer(0.1, 5, "estimate")
    with pytest.raises(ValueError, match="price"):
        SpotOffer(0.0, 1, "estimate")
    offer = SpotOffer(0.1, 4, "live", bucket_source="estimate")
    assert (offer.bucket_label, offer.risk_source, offer.interruption_rate) == (
        ">20%",
        "estimate",
        0.30,
    )
    assert list(BUCKET_RATES) == sorted(BUCKET_RATES)


def test_types_filters_and_orders_by_price(catalog: Catalog) -> None:
    arm = catalog.types("us-east-1", arch="arm64")
    assert {t.family for t in arm} == {"c6g", "m6g"}
    gpus = catalog.types(gpu=True)
    assert len(gpus) == 37 and all(t.gpu for t in gpus)
    assert not any(t.gpu for t in catalog.types(gpu=False))
    prices = [t.on_demand["us-east-1"] for t in catalog.types()]
    assert prices == sorted(prices)
    assert catalog.types("eu-west-1") == ()


# -- files: round trip and reproducibility -----------------------------------------


def test_packaged_file_round_trips_byte_for_byte(catalog: Catalog) -> None:
    assert dumps(to_document(catalog)) == PACKAGED.read_text()
    assert packaged_path().read_text() == PACKAGED.read_text()


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared data not at {SHARED}")
def test_build_reproduces_the_committed_file() -> None:
    document = build_aws_document(read_document(SHARED / "aws-instance-types.json"))
    assert dumps(document) == PACKAGED.read_text(), (
        "run: python -m spotpack.catalog.build --shared ../shared/data/catalog "
        "--out spotpack/data/catalog-aws.json"
    )


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared data not at {SHARED}")
def test_build_reproduces_the_alibaba_price_table() -> None:
    document = build_alibaba_document(read_document(SHARED / "alibaba-on-demand-prices.json"))
    assert dumps(document) == PACKAGED_ALIBABA.read_text()


def test_alibaba_price_table() -> None:
    table = load_price_table()
    assert table.cloud == "alibaba"
    assert table.currency is None and "NOT STATED" in table.currency_note
    assert len(table.regions) == 27
    assert table.on_demand_price("ecs.r6.2xlarge", "cn-hangzhou") == 2.65
    assert table.on_demand_price("ecs.r6.2xlarge", "mars-1") is None
    # Zero prices in the source mean "no price": they are not shipped as free.
    assert table.on_demand_price("ecs.c7.large", "ap-southeast-6") is None
    assert all(table.on_demand_price(t, r) for r in table.regions for t in table.types(r))
    seed = table.spot_quote("ecs.gn7i-c8g1.2xlarge", "cn-hangzhou")
    assert seed is not None and seed.source == "snapshot"
    assert seed.price * 730 == pytest.approx(2436.0, abs=0.01)
    assert table.spot_quote("ecs.r6.2xlarge", "cn-beijing") is None


def test_write_is_atomic_and_loadable(tmp_path: Path, catalog: Catalog) -> None:
    out = tmp_path / "catalog.json"
    write_catalog(catalog, out)
    assert load_catalog(out).spot_offer("g4dn.xlarge") == catalog.spot_offer("g4dn.xlarge")
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]
    assert out.stat().st_mode & 0o777 == 0o644


def test_write_into_a_missing_directory_is_a_config_error(tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        write_catalog(catalog, tmp_path / "missing" / "catalog.json")


# -- overrides ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_override_merges_over_the_packaged_catalog(tmp_path: Path, suffix: str) -> None:
    override = {
        "provenance": ["ops: measured g5 prices, 2026-08-01"],
        "instance_types": {
            "g5.xlarge": {
                "on_demand": {"us-east-1": 0.9},
                "spot": {
                    "us-east-1b": {
                        "price": 0.31,
                        "bucket": 0,
                        "source": "snapshot",
                        "as_of": "2026-08-01T00:00:00Z",
                    }
                },
            },
            "x9.large": {
                "family": "x9",
                "vcpu": 2,
                "memory_mib": 4096,
                "arch": "arm64",
                "gpu": None,
                "usage_classes": ["on-demand"],
                "on_demand": {"us-east-1": 0.05},
            },
        },
    }
    merged = load_catalog(override=write(tmp_path, f"override{suffix}", override))
    base = load_catalog()
    assert merged.on_demand_price("g5.xlarge") == 0.9
    assert merged.spot_offer("g5.xlarge", "us-east-1b") == SpotOffer(
        0.31, 0, "snapshot", None, "2026-08-01T00:00:00Z"
    )
    # Other zones still fall back to the untouched region estimate.
    assert merged.spot_offer("g5.xlarge", "us-east-1a") == base.spot_offer("g5.xlarge")
    assert merged.gpu_spec("g5.xlarge") == base.gpu_spec("g5.xlarge")
    assert merged.instance("x9.large") is not None
    assert merged.spot_offer("x9.large") is None  # not spot-capable
    assert merged.instance("m5.large") == base.instance("m5.large")
    assert merged.provenance[-1] == "ops: measured g5 prices, 2026-08-01"
    assert len(merged) == len(base) + 1


def test_override_adds_zones_and_can_remove_gpus(tmp_path: Path) -> None:
    override = {
        "regions": {"us-east-1": ["us-east-1-bos-1a"]},
        "instance_types": {
            "g4dn.xlarge": {
                "gpu": None,
                "spot": {"us-east-1-bos-1a": {"price": 0.2, "bucket": 3, "source": "snapshot"}},
            }
        },
    }
    merged = load_catalog(override=write(tmp_path, "o.json", override))
    assert merged.gpu_spec("g4dn.xlarge") is None
    assert "us-east-1-bos-1a" in merged.regions["us-east-1"]
    assert merged.interruption_bucket("g4dn.xlarge", "us-east-1-bos-1a") == 3


@pytest.mark.parametrize(
    ("override", "path", "fix"),
    [
        (
            {"instance_types": {"g5.xlarge": {"vpcu": 8}}},
            "instance_types['g5.xlarge'].vpcu",
            "rename it to 'vcpu'",
        ),
        (
            {"instance_types": {"g5.xlarge": {"vcpu": "8"}}},
            "instance_types['g5.xlarge'].vcpu",
            "plain number",
        ),
        (
            {"instance_types": {"g5.xlarge": {"arch": "x86_64"}}},
            "instance_types['g5.xlarge'].arch",
            "'amd64' or 'arm64'",
        ),
        (
            {
                "instance_types": {
                    "g5.xlarge": {
                        "spot": {"us-east-1a": {"price": 0.3, "bucket": 7, "source": "live"}}
                    }
                }
            },
            "instance_types['g5.xlarge'].spot['us-east-1a'].bucket",
            "less than or equal to 4",
        ),
        (
            {
                "instance_types": {
                    "g5.xlarge": {
                        "spot": {"us-east-1a": {"price": 0.3, "bucket": 1, "source": "guess"}}
                    }
                }
            },
            "instance_types['g5.xlarge'].spot['us-east-1a'].source",
            "'live', 'snapshot' or 'estimate'",
        ),
        (
            {
                "instance_types": {
                    "g5.xlarge": {"spot": {"us-east-1a": {"price": 0.3, "bucket": 1}}}
                }
            },
            "instance_types['g5.xlarge'].spot['us-east-1a'].source",
            "add 'source'",
        ),
        (
            {"instance_types": {"g5.xlarge": {"on_demand": {"us-east1": 1.0}}}},
            "instance_types['g5.xlarge'].on_demand['us-east1']",
            "add the region to regions",
        ),
        (
            {
                "instance_types": {
                    "g5.xlarge": {
                        "spot": {"eu-west-1a": {"price": 0.3, "bucket": 1, "source": "live"}}
                    }
                }
            },
            "instance_types['g5.xlarge'].spot['eu-west-1a']",
            "unknown region or zone",
        ),
        (
            {"instance_types": {"new.large": {"vcpu": 2}}},
            "instance_types['new.large'].family",
            "add 'family'",
        ),
        ({"regoins": {}}, "regoins", "rename it to 'regions'"),
        ({"schema_version": 2}, "schema_version", "less than or equal to 1"),
        ([1, 2], "(top level)", "valid dictionary"),
    ],
)
def test_invalid_override_names_the_file_the_path_and_the_fix(
    tmp_path: Path, override: Any, path: str, fix: str
) -> None:
    file = write(tmp_path, "override.json", override)
    with pytest.raises(ConfigError) as info:
        load_catalog(override=file)
    message = str(info.value)
    assert message.startswith(f"{file}: ")
    assert path in message
    assert fix in message
    assert "fix:" in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("o.yaml", "instance_types: {g5.xlarge: {vcpu: [}", "invalid YAML"),
        ("o.json", '{"instance_types": ', "line 1 column 20: invalid JSON"),
        ("o.json", '{"region": "us-east-1", "region": "us-east-1"}', "duplicate key 'region'"),
        ("o.txt", "::: not json\n  - nor yaml: [", "invalid YAML"),
    ],
)
def test_unparseable_override_is_a_config_error(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_catalog(override=write(tmp_path, name, text))
    assert str(tmp_path / name) in str(info.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_catalog(override=tmp_path / "absent.yaml")
    binary = tmp_path / "o.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_catalog(override=binary)


def test_yaml_aliases_cannot_multiply_a_small_file(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 8)
    ]
    with pytest.raises(ConfigError, match="more than"):
        load_catalog(override=write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n"))


def test_a_broken_base_catalog_names_its_file(tmp_path: Path) -> None:
    doc = json.loads(PACKAGED.read_text())
    doc["instance_types"]["g4dn.xlarge"]["gpu"]["count"] = 0
    with pytest.raises(
        ConfigError, match=r"catalog.json: instance_types\['g4dn.xlarge'\].gpu.count"
    ):
        load_catalog(write(tmp_path, "catalog.json", doc))


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["us-east-1", "us-east-1a", "g5.xlarge", "live", "amd64", "estimate"]),
)
KEYS = st.one_of(
    st.sampled_from(sorted(FIELD_NAMES)),
    st.text(max_size=8),
    st.sampled_from(["g5.xlarge", "us-east-1", "us-east-1c", "new.type"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)
    ),
    max_leaves=30,
)
SPOT = st.fixed_dictionaries(
    {"price": JSON_LEAVES, "bucket": JSON_LEAVES, "source": JSON_LEAVES},
    optional={"as_of": JSON_LEAVES, "bucket_source": JSON_LEAVES, "extra": JSON_LEAVES},
)
TYPE_PATCH = st.dictionaries(
    st.sampled_from(
        [
            "family",
            "vcpu",
            "memory_mib",
            "arch",
            "gpu",
            "usage_classes",
            "on_demand",
            "spot",
            "note",
            "vpcu",
        ]
    ),
    st.one_of(JSON_VALUES, st.dictionaries(KEYS, SPOT, max_size=2)),
    max_size=4,
)
OVERRIDES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "instance_types": st.dictionaries(KEYS, TYPE_PATCH, max_size=3),
            "regions": st.one_of(
                JSON_VALUES, st.dictionaries(KEYS, st.lists(KEYS, max_size=3), max_size=2)
            ),
            "region": JSON_LEAVES,
            "provenance": st.one_of(JSON_VALUES, st.lists(st.text(max_size=10), max_size=2)),
            "schema_version": JSON_LEAVES,
        },
    ),
)


@pytest.fixture(scope="module")
def base_document() -> Any:
    return load_document(packaged_path())


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=OVERRIDES, as_yaml=st.booleans())
def test_random_overrides_only_ever_raise_config_error(
    base_document: Any, document: Any, as_yaml: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("override.yaml" if as_yaml else "override.json")
        path.write_text(yaml.safe_dump(document) if as_yaml else json.dumps(document))
        try:
            merged = apply_override(base_document, load_override(path), where=str(path))
        except ConfigError as exc:
            assert str(path) in str(exc)
        else:
            assert len(merged.instance_types) >= len(base_document.instance_types)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), suffix=st.sampled_from([".json", ".yaml", ".cfg"]))
def test_random_text_only_ever_raises_config_error(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"override{suffix}"
        path.write_text(text)
        with contextlib.suppress(ConfigError):  # anything else fails the test
            load_override(path)


# -- the Spot Advisor feed ---------------------------------------------------------


def advisor_feed(**overrides: Any) -> dict[str, Any]:
    feed: dict[str, Any] = {
        "global_rate": "<10%",
        "instance_types": {"g4dn.xlarge": {"emr": True, "cores": 4, "ram_gb": 16.0}},
        "ranges": [
            {"index": i, "label": label, "dots": i, "max": m}
            for i, (label, m) in enumerate(zip(BUCKET_LABELS, [5, 11, 16, 22, 100], strict=True))
        ],
        "spot_advisor": {
            "us-east-1": {
                "Linux": {"g4dn.xlarge": {"s": 72, "r": 0}, "m5.large": {"s": 60, "r": 3}},
                "Windows": {"g4dn.xlarge": {"s": 30, "r": 4}},
            }
        },
    }
    feed.update(overrides)
    return feed


def test_advisor_feed_is_read_per_region_and_os() -> None:
    figures = parse_advisor(advisor_feed(), "us-east-1", where="feed.json")
    assert figures["g4dn.xlarge"] == AdvisorFigure("g4dn.xlarge", 72, 0)
    assert figures["m5.large"].bucket == 3
    assert (
        parse_advisor(advisor_feed(), "us-east-1", where="f", os_name="Windows")[
            "g4dn.xlarge"
        ].bucket
        == 4
    )


def test_advisor_feed_problems_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"feed\.json: no figures for region 'eu-north-9'"):
        parse_advisor(advisor_feed(), "eu-north-9", where="feed.json")
    relabelled = advisor_feed(ranges=[{"index": 0, "label": "<3%"}])
    with pytest.raises(ConfigError, match="ranges\\[0\\] is '<3%'"):
        parse_advisor(relabelled, "us-east-1", where="feed.json")
    with pytest.raises(ConfigError, match="not a Spot Advisor feed"):
        parse_advisor(
            {"spot_advisor": {"us-east-1": {"Linux": {"m5.large": {"s": 60, "r": 9}}}}},
            "us-east-1",
            where="f",
        )
    with pytest.raises(ConfigError, match=advisor_mod.DEFAULT_URL):
        parse_advisor([], "us-east-1", where="f")


# -- pure refresh --------------------------------------------------------------------


def price(name: str, zone: str, value: float, minutes_ago: int = 0) -> LivePrice:
    return LivePrice(name, zone, value, NOW - timedelta(minutes=minutes_ago))


class FakeSource:
    """A recording CatalogSource."""

    region = "us-east-1"

    def __init__(self, specs: list[LiveSpec], prices: list[LivePrice]) -> None:
        self.specs = specs
        self.prices = prices
        self.asked: list[str] = []

    def instance_specs(self, instance_types: Any) -> list[LiveSpec]:
        self.asked_specs = list(instance_types)
        return self.specs

    def spot_prices(self, instance_types: Any) -> list[LivePrice]:
        self.asked = list(instance_types)
        return self.prices


def test_refresh_tags_what_it_read_live_and_leaves_the_rest(catalog: Catalog) -> None:
    spec = LiveSpec(
        "g5.xlarge", 4, 16384, "amd64", GPUSpec(1, "A10G", 24576), frozenset({"on-demand", "spot"})
    )
    prices = [
        price("g5.xlarge", "us-east-1a", 0.40, minutes_ago=30),
        price("g5.xlarge", "us-east-1a", 0.42),  # newer wins
        price("g5.xlarge", "us-east-1b", 0.50),
        price("g5.xlarge", "us-east-1c", 0.60),
        price("g5.xlarge", "us-west-2a", 0.10),  # another region: ignored
        price("zz.unknown", "us-east-1a", 0.10),  # not in the catalog: ignored
        price("m5.large", "us-east-1-bos-1a", 0.02),  # a zone name we cannot place: ignored
    ]
    source = FakeSource([spec], prices)
    fresh, report = refresh_from(catalog, source, now=NOW)

    assert len(source.asked) == len(source.asked_specs) == 145
    assert fresh.gpu_spec("g5.xlarge") == GPUSpec(1, "A10G", 24576)
    a = fresh.spot_offer("g5.xlarge", "us-east-1a")
    assert a == SpotOffer(0.42, 2, "live", "estimate", "2026-08-01T12:00:00Z")
    region = fresh.spot_offer("g5.xlarge", "us-east-1")
    assert region is not None and (region.price, region.source, region.risk_source) == (
        0.5,
        "live",
        "estimate",
    )
    # Zones without a live price fall back to the (now live) region figure.
    assert fresh.spot_offer("g5.xlarge", "us-east-1d") == region
    # Everything not refreshed keeps its value and its source.
    assert fresh.spot_offer("g4dn.xlarge", "us-east-1a") == catalog.spot_offer("g4dn.xlarge")
    assert fresh.instance("m5.large") == catalog.instance("m5.large")
    assert (report.specs, report.zone_prices, report.region_prices, report.buckets) == (1, 3, 1, 0)
    assert fresh.provenance[:-1] == catalog.provenance
    assert "Live refresh 2026-08-01T12:00:00Z in us-east-1" in fresh.provenance[-1]
    assert fresh.regions == catalog.regions


def test_refresh_with_the_advisor(catalog: Catalog) -> None:
    figures = parse_advisor(advisor_feed(), "us-east-1", where="feed.json")
    fresh, report = refresh(
        catalog,
        region="us-east-1",
        prices=[price("g4dn.xlarge", "us-east-1c", 0.2)],
        advisor=figures,
        advisor_where="feed.json",
        now=NOW,
    )
    # m5.large: no live price; the advisor's savings and bucket, both live.
    m5 = fresh.spot_offer("m5.large", "us-east-1")
    assert m5 == SpotOffer(round(0.096 * 0.4, 6), 3, "live")
    # g4dn.xlarge: live zone price, region price = that price; bucket from the advisor.
    assert fresh.spot_offer("g4dn.xlarge", "us-east-1c") == SpotOffer(
        0.2, 0, "live", None, "2026-08-01T12:00:00Z"
    )
    assert fresh.interruption_bucket("g4dn.xlarge", "us-east-1a") == 0
    assert report.buckets == 2
    assert "2 interruption buckets from the Spot Advisor feed feed.json" in fresh.provenance[-1]


def test_refresh_new_zone_and_unknown_risk(catalog: Catalog) -> None:
    # A type with no spot figure at all gets the worst bucket, tagged estimate.
    m5 = catalog.instance("m5.large")
    assert m5 is not None
    bare = replace(m5, spot={})
    small = Catalog([bare], region="us-east-1", regions={"us-east-1": ["us-east-1a"]})
    fresh, _ = refresh(
        small, region="us-east-1", prices=[price("m5.large", "us-east-1f", 0.03)], now=NOW
    )
    assert fresh.spot_offer("m5.large", "us-east-1f") == SpotOffer(
        0.03, 4, "live", "estimate", "2026-08-01T12:00:00Z"
    )
    assert fresh.regions["us-east-1"] == ("us-east-1a", "us-east-1f")


def test_refresh_spec_can_drop_spot(catalog: Catalog) -> None:
    spec = LiveSpec(
        "p5.4xlarge", 16, 262144, "amd64", GPUSpec(1, "H100", 81920), frozenset({"on-demand"})
    )
    fresh, _ = refresh(
        catalog,
        region="us-east-1",
        specs=[spec],
        prices=[price("p5.4xlarge", "us-east-1a", 1.0)],
        now=NOW,
    )
    assert fresh.spot_offer("p5.4xlarge") is None


# -- the command line ---------------------------------------------------------------


def test_cli_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["catalog", "show"]) == 0
    table = capsys.readouterr().out
    assert "g4dn.xlarge" in table and "145 types in us-east-1" in table
    assert main(["catalog", "show", "g5.12xlarge"]) == 0
    detail = capsys.readouterr().out
    assert "4x NVIDIA A10G, 22888 MiB each" in detail and "(estimate)" in detail
    assert main(["catalog", "show", "g5.12xlarge", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["g5.12xlarge"]["gpu"]["count"] == 4


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["catalog", "show", "g5.12xlarg"]) == 2
    err = capsys.readouterr().err
    assert "did you mean g5.12xlarge" in err and len(err.strip().splitlines()) == 1
    bad = write(tmp_path, "o.yaml", {"instance_types": {"g5.xlarge": {"vpcu": 1}}})
    assert main(["catalog", "show", "--override", str(bad)]) == 2
    assert "rename it to 'vcpu'" in capsys.readouterr().err
