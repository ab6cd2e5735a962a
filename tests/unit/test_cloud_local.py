"""The local provider's Node manifests, and the provider over an in-memory NodeApi."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotpack.catalog import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.cloud.base import LaunchRequest
from spotpack.cloud.local import (
    GPU_RESOURCE,
    HAMI_REGISTER,
    LocalProvider,
    NodeExists,
    NodeSpec,
    card_uuid,
    instance_from_node,
    node_api_for,
    node_manifest,
    node_name_for,
)
from spotpack.gpu.inventory import parse_hami_register

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


class MemoryNodes:
    """A NodeApi in a dict, with naive equality-only label selectors."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def create_node(self, node: dict[str, Any]) -> dict[str, Any]:
        name = node["metadata"]["name"]
        if name in self.nodes:
            raise NodeExists("exists", code="AlreadyExists")
        self.nodes[name] = node
        return node

    def delete_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def list_nodes(self, label_selector: str) -> list[dict[str, Any]]:
        key, value = label_selector.split("=", 1)
        return [n for n in self.nodes.values() if n["metadata"]["labels"].get(key) == value]


def _spec(catalog: Catalog, name: str, **kw: Any) -> NodeSpec:
    itype = catalog.instance(name)
    assert itype is not None
    defaults: dict[str, Any] = {
        "instance_id": "local-c1",
        "claim_id": "c1",
        "itype": itype,
        "zone": "us-east-1a",
        "region": "us-east-1",
        "capacity": "spot",
        "labels": {},
        "taints": (),
        "launched_at": T0,
    }
    return NodeSpec(**{**defaults, **kw})


def test_gpu_node_manifest(catalog: Catalog) -> None:
    node = node_manifest(_spec(catalog, "g4dn.12xlarge", split=4))
    assert node["status"]["capacity"][GPU_RESOURCE] == "16"  # 4 cards x split 4
    cards = parse_hami_register(node["metadata"]["annotations"][HAMI_REGISTER])
    assert [c.index for c in cards] == [0, 1, 2, 3]
    assert {c.model for c in cards} == {"NVIDIA-T4"}
    assert cards[0].uuid == card_uuid("local-c1", 0)  # stable across launches
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["spec"]["providerID"] == "local:///us-east-1a/local-c1"
    info = node["status"]["nodeInfo"]
    assert info["architecture"] == "amd64" and all(isinstance(v, str) and v for v in info.values())


def test_instance_round_trips_through_its_node(catalog: Catalog) -> None:
    node = node_manifest(_spec(catalog, "m5.large", labels={"x": "y"}))
    instance = instance_from_node(node)
    assert instance is not None
    assert (instance.instance_id, instance.claim_id, instance.instance_type) == (
        "local-c1",
        "c1",
        "m5.large",
    )
    assert (instance.zone, instance.capacity, instance.state, instance.launched_at) == (
        "us-east-1a",
        "spot",
        "running",
        T0,
    )
    assert instance_from_node({"metadata": {"name": "other", "labels": {}}}) is None


@given(st.text(min_size=1, max_size=200))
def test_node_names_are_dns_labels(instance_id: str) -> None:
    name = node_name_for(instance_id)
    assert 0 < len(name) <= 63
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in name)
    assert name[0] != "-" and name[-1] != "-"


def test_provider_over_a_node_api(catalog: Catalog) -> None:
    nodes = MemoryNodes()
    assert node_api_for(nodes) is nodes
    provider = LocalProvider(nodes, clock=lambda: T0, catalog=catalog)
    instance = provider.launch(LaunchRequest.for_claim("c1", [("m5.large", "us-east-1a")], "spot"))
    assert list(nodes.nodes) == ["local-c1"]
    assert provider.find("c1") == instance
    # A node written behind the provider's back (a race) is adopted, not duplicated.
    other = LocalProvider(nodes, clock=lambda: T0, catalog=catalog)
    assert (
        other.launch(LaunchRequest.for_claim("c1", [("m5.large", "us-east-1a")], "spot"))
        == instance
    )
    provider.terminate([instance.instance_id])
    assert nodes.nodes == {}
    with pytest.raises(TypeError):
        node_api_for(object())
    with pytest.raises(ValueError):
        LocalProvider(nodes, registration_delay=-1, catalog=catalog)
