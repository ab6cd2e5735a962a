"""The local provider against the dev cluster over real HTTP, through the kubernetes client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from kubernetes import client

from spotpack.catalog import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.cloud.base import CloudProvider, LaunchRefused, LaunchRequest, owned_without_claims
from spotpack.cloud.local import GPU_RESOURCE, HAMI_REGISTER, LocalProvider
from spotpack.devcluster import DevCluster
from spotpack.gpu.inventory import InventorySource, inventory_from_node, parse_hami_register
from spotpack.kube import api_client_for_url

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster() as running:
        yield running


@pytest.fixture
def api(cluster: DevCluster) -> Iterator[Any]:
    api_client = api_client_for_url(cluster.url)
    yield api_client
    api_client.close()


def _node(api: Any, name: str) -> dict[str, Any]:
    raw = client.CoreV1Api(api).read_node(name, _preload_content=False)
    node: dict[str, Any] = orjson.loads(raw.data)
    return node


def test_launch_registers_a_ready_gpu_node_with_hami_registration(
    api: Any, catalog: Catalog
) -> None:
    provider = LocalProvider(api, clock=Clock(), catalog=catalog)
    assert isinstance(provider, CloudProvider)
    taint = {"key": "spotpack.io/gpu", "value": "true", "effect": "NoSchedule"}
    req = LaunchRequest.for_claim(
        "claim-gpu",
        [("no-such.type", "us-east-1a"), ("g5.12xlarge", "us-east-1b")],
        "spot",
        labels={"team": "ml"},
        taints=[taint],
    )
    instance = provider.launch(req)
    assert (instance.instance_id, instance.instance_type, instance.zone) == (
        "local-claim-gpu",
        "g5.12xlarge",
        "us-east-1b",
    )
    assert (instance.capacity, instance.state, instance.launched_at) == ("spot", "running", T0)
    assert instance.node_name == "local-claim-gpu"

    node = _node(api, "local-claim-gpu")
    labels = node["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "g5.12xlarge"
    assert labels["topology.kubernetes.io/zone"] == "us-east-1b"
    assert labels["topology.kubernetes.io/region"] == "us-east-1"
    assert labels["karpenter.sh/capacity-type"] == "spot"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert labels["spotpack.io/claim"] == "claim-gpu"
    assert labels["spotpack.io/managed"] == "true"
    assert labels["team"] == "ml"
    assert node["spec"]["taints"] == [taint]

    status = node["status"]
    g5 = catalog.instance("g5.12xlarge")
    assert g5 is not None and g5.gpu is not None
    assert status["allocatable"] == {
        "cpu": "48",
        "memory": f"{g5.memory_mib}Mi",
        "pods": "110",
        GPU_RESOURCE: "40",  # 4 cards x HAMi's default split of 10
    }
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert [c["status"] for c in ready] == ["True"]

    cards = parse_hami_register(node["metadata"]["annotations"][HAMI_REGISTER])
    assert len(cards) == 4
    assert len({c.uuid for c in cards}) == 4 and all(c.uuid.startswith("GPU-") for c in cards)
    assert {(c.slots, c.mem_mib, c.healthy) for c in cards} == {(10, g5.gpu.mem_mib, True)}
    inventory = inventory_from_node(node, lambda _: None)  # the annotation alone suffices
    assert inventory.gpus is not None and inventory.gpus.source is InventorySource.HAMI


def test_a_cpu_node_has_no_gpu_resources(api: Any, catalog: Catalog) -> None:
    provider = LocalProvider(api, clock=Clock(), catalog=catalog)
    provider.launch(
        LaunchRequest.for_claim("claim-cpu", [("c6g.large", "us-east-1a")], "on-demand")
    )
    node = _node(api, "local-claim-cpu")
    assert GPU_RESOURCE not in node["status"]["allocatable"]
    assert HAMI_REGISTER not in node["metadata"]["annotations"]
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert node["metadata"]["labels"]["karpenter.sh/capacity-type"] == "on-demand"


def test_find_list_and_terminate(api: Any, cluster: DevCluster, catalog: Catalog) -> None:
    provider = LocalProvider(api, clock=Clock(), catalog=catalog)
    cluster.store.create("nodes", {"metadata": {"name": "someone-elses", "labels": {"a": "b"}}})
    a = provider.launch(LaunchRequest.for_claim("claim-a", [("m5.large", "us-east-1a")], "spot"))
    b = provider.launch(LaunchRequest.for_claim("claim-b", [("m5.large", "us-east-1b")], "spot"))

    again = provider.launch(
        LaunchRequest.for_claim("claim-a", [("c5.large", "us-east-1b")], "spot")
    )
    assert again == a  # the claim has its node: nothing new
    assert provider.find("claim-a") == a
    assert provider.find("claim-z") is None
    assert sorted(i.instance_id for i in provider.list_owned()) == [
        "local-claim-a",
        "local-claim-b",
    ]
    assert owned_without_claims(provider, {"claim-a"}) == [b]

    provider.terminate([a.instance_id, "local-unknown"])
    assert provider.find("claim-a") is None
    assert [i.instance_id for i in provider.list_owned()] == [b.instance_id]
    names = [n["metadata"]["name"] for n in cluster.store.list("nodes")[0]]
    assert sorted(names) == ["local-claim-b", "someone-elses"]
    provider.terminate([a.instance_id])  # already gone: no error


def test_registration_delay_keeps_the_instance_pending(api: Any, catalog: Catalog) -> None:
    clock = Clock()
    provider = LocalProvider(api, clock=clock, registration_delay=30.0, catalog=catalog)
    instance = provider.launch(
        LaunchRequest.for_claim("claim-slow", [("m5.large", "us-east-1a")], "spot")
    )
    assert instance.state == "pending"
    assert provider.find("claim-slow") == instance
    assert (
        provider.launch(LaunchRequest.for_claim("claim-slow", [("m5.large", "us-east-1a")], "spot"))
        == instance
    )
    assert client.CoreV1Api(api).list_node().items == []

    clock.now = T0 + timedelta(seconds=29)
    assert provider.tick() == 0
    clock.now = T0 + timedelta(seconds=30)
    registered = provider.find("claim-slow")  # any call registers what is due
    assert registered is not None and registered.state == "running"
    assert registered.launched_at == T0
    assert [n.metadata.name for n in client.CoreV1Api(api).list_node().items] == [
        "local-claim-slow"
    ]


def test_a_pending_node_registers_on_its_own_after_the_delay(api: Any, catalog: Catalog) -> None:
    """Like a booting kubelet: no call into the provider is needed for the Node to appear."""
    provider = LocalProvider(api, registration_delay=0.2, catalog=catalog)
    provider.launch(LaunchRequest.for_claim("claim-boot", [("m5.large", "us-east-1a")], "spot"))
    assert client.CoreV1Api(api).list_node().items == []
    deadline = time.monotonic() + 10
    while not client.CoreV1Api(api).list_node().items:
        assert time.monotonic() < deadline, "the node never registered"
        time.sleep(0.05)
    assert [n.metadata.name for n in client.CoreV1Api(api).list_node().items] == [
        "local-claim-boot"
    ]


def test_unknown_types_are_refused(api: Any, catalog: Catalog) -> None:
    provider = LocalProvider(api, clock=Clock(), catalog=catalog)
    with pytest.raises(LaunchRefused, match="no candidate type is in the catalog"):
        provider.launch(LaunchRequest.for_claim("claim-x", [("x9.huge", "us-east-1a")], "spot"))


def test_the_store_can_be_written_directly(cluster: DevCluster, catalog: Catalog) -> None:
    provider = LocalProvider(cluster.store, clock=Clock(), catalog=catalog)
    instance = provider.launch(
        LaunchRequest.for_claim("Claim_Upper/1", [("g4dn.xlarge", "us-east-1a")], "spot")
    )
    assert instance.instance_id == "local-Claim_Upper/1"
    assert instance.node_name is not None and instance.node_name.islower()
    assert provider.find("Claim_Upper/1") == instance
    provider.terminate([instance.instance_id])
    assert provider.list_owned() == []
