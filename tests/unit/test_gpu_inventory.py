"""A node's GPUs from HAMi's registration, GPU feature discovery labels, or the catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spotpack.gpu.inventory import (
    GPU_CORDON,
    HAMI_REGISTER,
    Card,
    GPUSpec,
    InventorySource,
    NodeGPUs,
    inventory_from_node,
    parse_hami_register,
)

FIXTURE = Path("/work/shared/data/protocol/extender-filter-fullnodes.json")
CATALOG = {
    "g5.12xlarge": GPUSpec(count=4, model="NVIDIA A10G", mem_mib=22888),
    "g4dn.xlarge": GPUSpec(count=1, model="NVIDIA T4", mem_mib=16384),
}


def lookup(instance_type: str) -> GPUSpec | None:
    return CATALOG.get(instance_type)


def node(
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    allocatable: dict[str, str] | None = None,
    name: str = "n1",
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
        "status": {"allocatable": allocatable or {}},
    }


def card_json(**fields: Any) -> dict[str, Any]:
    entry = {"id": "GPU-0", "count": 10, "devmem": 16384, "devcore": 100, "type": "NVIDIA-T4"}
    entry.update(health=True)
    entry.update(fields)
    return entry


def hami(*entries: dict[str, Any]) -> dict[str, str]:
    return {HAMI_REGISTER: json.dumps(list(entries))}


# --- HAMi ------------------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURE.exists(), reason="golden fixtures not present")
def test_golden_fullnodes_fixture() -> None:
    body = json.loads(FIXTURE.read_text())
    for item in body["Nodes"]["items"]:
        result = inventory_from_node(item, lookup)
        assert result.problem == ""
        gpus = result.gpus
        assert gpus is not None
        assert gpus.source is InventorySource.HAMI
        name = item["metadata"]["name"]
        assert gpus.cards == (
            Card(f"GPU-{name}", 0, 22888, 100, 10, "NVIDIA-NVIDIA A10G", 0, True),
        )


def test_json_zero_values_are_omitted_by_go() -> None:
    """HAMi marshals with omitempty: no index/numa means 0, no health means false."""
    raw = json.dumps([{"id": "GPU-a", "count": 4, "devmem": 1000, "devcore": 100, "type": "X"}])
    (card,) = parse_hami_register(raw)
    assert (card.index, card.numa, card.healthy) == (0, 0, False)


def test_json_cards_sorted_by_index_with_health_and_numa() -> None:
    raw = hami(
        card_json(id="GPU-b", index=1, numa=1, health=True),
        card_json(id="GPU-a", numa=1, health=False),
    )
    gpus = inventory_from_node(node(annotations=raw), lookup).gpus
    assert gpus is not None
    assert [(c.uuid, c.index, c.numa, c.healthy) for c in gpus.cards] == [
        ("GPU-a", 0, 1, False),
        ("GPU-b", 1, 1, True),
    ]
    assert gpus.healthy_count == 1


def test_json_without_any_index_uses_positions() -> None:
    """An older writer without ``index``: every card would read 0; positions are used."""
    raw = hami(card_json(id="GPU-a"), card_json(id="GPU-b"), card_json(id="GPU-c"))
    gpus = inventory_from_node(node(annotations=raw), lookup).gpus
    assert gpus is not None
    assert [c.index for c in gpus.cards] == [0, 1, 2]


def test_devcore_missing_means_full_card() -> None:
    (card,) = parse_hami_register(json.dumps([{"id": "G", "count": 2, "devmem": 10}]))
    assert card.cores == 100


LEGACY_ROWS = [
    (
        "GPU-a,10,32768,100,NVIDIA-Tesla V100-PCIE-32GB,0,true:",
        [Card("GPU-a", 0, 32768, 100, 10, "NVIDIA-Tesla V100-PCIE-32GB", 0, True)],
    ),
    (
        "GPU-a,10,1000,100,T4,0,true:GPU-b,5,2000,100,T4,1,false:",
        [
            Card("GPU-a", 0, 1000, 100, 10, "T4", 0, True),
            Card("GPU-b", 1, 2000, 100, 5, "T4", 1, False),
        ],
    ),
    (  # newer writers append index and mode
        "GPU-b,10,1000,100,T4,0,true,3,hami-core:GPU-a,10,1000,100,T4,0,true,1,hami-core:",
        [Card("GPU-a", 1, 1000, 100, 10, "T4"), Card("GPU-b", 3, 1000, 100, 10, "T4")],
    ),
]


@pytest.mark.parametrize(("raw", "cards"), LEGACY_ROWS)
def test_legacy_string_encoding(raw: str, cards: list[Card]) -> None:
    assert list(parse_hami_register(raw)) == cards


BAD_REGISTER = [
    ("[not json", "not valid JSON"),
    ('{"id": "x"}', "not a JSON list"),
    ("{}", "not a JSON list"),
    ("[]", "lists no card"),
    ('"GPU"', "neither JSON"),
    ("[1]", "is not an object"),
    ('[{"count": 1, "devmem": 1}]', "has no id"),
    ('[{"id": "a", "count": true, "devmem": 1}]', "count=True"),
    ('[{"id": "a", "count": 1, "devmem": 0}]', "devmem=0"),
    ('[{"id": "a", "count": -1, "devmem": 5}]', "count=-1"),
    ('[{"id": "a", "count": 1, "devmem": 5, "health": "yes"}]', "health a boolean"),
    ('[{"id": "a", "devmem": 5}, {"id": "a", "devmem": 5, "index": 1}]', "UUID twice"),
    ("GPU-a,10,1000:", "3 fields"),
    ("GPU-a,x,1000,100,T4,0,true:", "count='x'"),
    ("GPU-a,1,1000,100,T4,0,maybe:", "bad id or health"),
    ("GPU-a,1,²,100,T4,0,true:", "devmem"),
]


@pytest.mark.parametrize(("raw", "problem"), BAD_REGISTER)
def test_malformed_registration_falls_back_with_a_problem(raw: str, problem: str) -> None:
    labels = {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "16384"}
    result = inventory_from_node(node(annotations={HAMI_REGISTER: raw}, labels=labels), lookup)
    assert result.gpus is not None
    assert result.gpus.source is InventorySource.LABELS
    assert HAMI_REGISTER in result.problem
    assert problem in result.problem


# --- labels, catalog, none -------------------------------------------------------------------


LABELS = {
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.memory": "22888",
    "nvidia.com/gpu.product": "NVIDIA-A10G",
}

# allocatable nvidia.com/gpu, expected slots per card
SLOT_ROWS = [("20", 10), ("2", 1), ("1", 1), ("0", 1), (None, 1), ("garbage", 1), ("21", 10)]


@pytest.mark.parametrize(("allocatable", "slots"), SLOT_ROWS)
def test_labels_slots_from_allocatable(allocatable: str | None, slots: int) -> None:
    alloc = {"nvidia.com/gpu": allocatable} if allocatable is not None else {}
    result = inventory_from_node(node(labels=LABELS, allocatable=alloc), lookup)
    assert result.problem == ""
    gpus = result.gpus
    assert gpus is not None
    assert gpus.source is InventorySource.LABELS
    assert gpus.cards == (
        Card("n1/gpu0", 0, 22888, 100, slots, "NVIDIA-A10G"),
        Card("n1/gpu1", 1, 22888, 100, slots, "NVIDIA-A10G"),
    )


def test_catalog_by_instance_type() -> None:
    labels = {"node.kubernetes.io/instance-type": "g5.12xlarge"}
    result = inventory_from_node(node(labels=labels, allocatable={"nvidia.com/gpu": "40"}), lookup)
    gpus = result.gpus
    assert gpus is not None
    assert gpus.source is InventorySource.CATALOG
    assert len(gpus.cards) == 4
    assert {c.slots for c in gpus.cards} == {10}
    assert gpus.total_mem == 4 * 22888
    assert gpus.total_slots == 40
    assert gpus.models == ("NVIDIA A10G",)


def test_bad_labels_fall_back_to_catalog_with_a_problem() -> None:
    labels = {"nvidia.com/gpu.count": "two", "node.kubernetes.io/instance-type": "g4dn.xlarge"}
    result = inventory_from_node(node(labels=labels), lookup)
    assert result.gpus is not None
    assert result.gpus.source is InventorySource.CATALOG
    assert "nvidia.com/gpu.count" in result.problem


NO_GPU_ROWS = [
    node(),
    node(labels={"node.kubernetes.io/instance-type": "m5.large"}),
    node(labels={"nvidia.com/gpu.count": "0"}),
    {"metadata": None},
    {},
]


@pytest.mark.parametrize("raw", NO_GPU_ROWS)
def test_no_gpus_is_none(raw: dict[str, Any]) -> None:
    result = inventory_from_node(raw, lookup)
    assert result.gpus is None
    assert result.problem == ""


def test_garbage_everywhere_is_none_with_problems() -> None:
    raw = node(
        annotations={HAMI_REGISTER: "[oops"},
        labels={"nvidia.com/gpu.count": "1", "nvidia.com/gpu.memory": "-5"},
    )
    result = inventory_from_node(raw, lookup)
    assert result.gpus is None
    assert HAMI_REGISTER in result.problem
    assert "nvidia.com/gpu.memory" in result.problem


# --- cordon ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "healthy"),
    [
        ("GPU-b", [True, False, True]),
        ("0, 2", [False, True, False]),
        ("GPU-a,1,", [False, False, True]),
        ("nothing", [True, True, True]),
        (" ", [True, True, True]),
    ],
)
def test_cordon_by_uuid_or_index(value: str, healthy: list[bool]) -> None:
    raw = hami(*(card_json(id=f"GPU-{c}", index=i) for i, c in enumerate("abc")))
    raw[GPU_CORDON] = value
    gpus = inventory_from_node(node(annotations=raw), lookup).gpus
    assert gpus is not None
    assert [c.healthy for c in gpus.cards] == healthy
    assert gpus.healthy_count == sum(healthy)


def test_cordon_applies_to_label_cards() -> None:
    gpus = inventory_from_node(node(labels=LABELS, annotations={GPU_CORDON: "1"}), lookup).gpus
    assert gpus is not None
    assert [c.healthy for c in gpus.cards] == [True, False]


# --- NodeGPUs columns ------------------------------------------------------------------------


def test_node_gpus_columns() -> None:
    cards = (
        Card("a", 0, 1000, 100, 4, "NVIDIA A100", healthy=True),
        Card("b", 1, 2000, 100, 2, "NVIDIA T4", healthy=False),
    )
    gpus = NodeGPUs(cards, InventorySource.HAMI)
    assert gpus.mem == (1000, 2000)
    assert gpus.slots == (4, 2)
    assert gpus.healthy == (True, False)
    assert gpus.positions == {"a": 0, "b": 1}
    assert gpus.models_lower == ("nvidia a100", "nvidia t4")
    assert gpus.uniform_model is None
    assert gpus.max_healthy_mem == 1000
    assert (gpus.total_mem, gpus.total_slots, gpus.total_cores) == (3000, 6, 200)
    assert gpus == NodeGPUs(cards, InventorySource.HAMI)
    assert hash(gpus) == hash(NodeGPUs(cards, InventorySource.HAMI))
