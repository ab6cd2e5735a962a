"""JSON Patch builders: every op must apply to the document it was built for."""

from __future__ import annotations

import jsonpatch
import pytest

from spotpack.patch import append_items, merge_map, set_value

CASES = [
    (
        {},
        ("spec", "affinity", "nodeAffinity"),
        {"a": 1},
        {"spec": {"affinity": {"nodeAffinity": {"a": 1}}}},
    ),
    (
        {"spec": {}},
        ("spec", "affinity", "nodeAffinity"),
        {"a": 1},
        {"spec": {"affinity": {"nodeAffinity": {"a": 1}}}},
    ),
    (
        {"spec": {"affinity": None}},
        ("spec", "affinity", "nodeAffinity"),
        1,
        {"spec": {"affinity": {"nodeAffinity": 1}}},
    ),
    (
        {"spec": {"affinity": {"podAffinity": 2}}},
        ("spec", "affinity", "nodeAffinity"),
        1,
        {"spec": {"affinity": {"podAffinity": 2, "nodeAffinity": 1}}},
    ),
    (
        {"spec": {"affinity": {"nodeAffinity": 0}}},
        ("spec", "affinity", "nodeAffinity"),
        1,
        {"spec": {"affinity": {"nodeAffinity": 1}}},
    ),
]


@pytest.mark.parametrize(("doc", "tokens", "value", "expected"), CASES)
def test_set_value(doc, tokens, value, expected) -> None:
    assert jsonpatch.apply_patch(doc, [set_value(doc, tokens, value)]) == expected


def test_append_creates_or_extends() -> None:
    doc: dict = {"spec": {}}
    assert jsonpatch.apply_patch(doc, append_items(doc, ("spec", "tolerations"), [1, 2])) == {
        "spec": {"tolerations": [1, 2]}
    }
    doc = {"spec": {"tolerations": [0]}}
    assert jsonpatch.apply_patch(doc, append_items(doc, ("spec", "tolerations"), [1])) == {
        "spec": {"tolerations": [0, 1]}
    }
    assert append_items(doc, ("spec", "tolerations"), []) == []


def test_merge_map_escapes_keys_and_skips_equal_values() -> None:
    doc = {"metadata": {"annotations": {"spotpack.io/role": "worker"}}}
    ops = merge_map(doc, ("metadata", "annotations"), {"spotpack.io/role": "worker", "a~b/c": "x"})
    assert ops == [{"op": "add", "path": "/metadata/annotations/a~0b~1c", "value": "x"}]
    assert jsonpatch.apply_patch(doc, ops)["metadata"]["annotations"]["a~b/c"] == "x"


def test_merge_map_adds_whole_map_when_absent() -> None:
    doc = {"metadata": {"name": "p"}}
    ops = merge_map(doc, ("metadata", "annotations"), {"k/1": "v"})
    assert ops == [{"op": "add", "path": "/metadata/annotations", "value": {"k/1": "v"}}]
    assert merge_map(doc, ("metadata", "annotations"), {}) == []
