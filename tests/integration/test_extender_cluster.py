"""The extender against a real Kubernetes API over HTTP on loopback (the in-memory server).

Informers list and watch nodes and pods, binds create real Bindings, and the
state is checked from what the API holds afterwards, not from the extender's
own bookkeeping.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from extender.app import create_app
from spotpack.devcluster import DevCluster
from tests.extender.support import gpu_node, gpu_pod, settings

pytestmark = pytest.mark.integration
NODES = 50
CARDS_PER_NODE = 4
CARD_MIB = 22888


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout}s"
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[DevCluster, Path]]:
    with DevCluster() as dev:
        for i in range(NODES):
            dev.store.create("nodes", gpu_node(f"gpu-{i:02d}", cards=CARDS_PER_NODE, instance_type="g5.12xlarge", zone=f"us-east-1{'abc'[i % 3]}"))
        yield dev, dev.write_kubeconfig(tmp_path / "kubeconfig")


def start(kubeconfig: Path):
    app = create_app(settings(kubeconfig=str(kubeconfig), reservation_ttl_seconds=60))
    client = app.test_client()
    wait_for(lambda: client.get("/readyz").status_code == 200, what="extender ready")
    return app, client


def stop(app) -> None:
    app.extensions["spotpack.stop"]()


def schedule(client, pod: dict, names: list[str]) -> str:
    """One scheduling cycle as kube-scheduler runs it: filter, prioritize, bind the best."""
    result = orjson.loads(client.post("/filter", data=orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})).data)
    if not result["NodeNames"]:
        reasons = {**result["FailedNodes"], **result["FailedAndUnresolvableNodes"]}
        assert reasons, "a pod placed nowhere must be told why"
        return "unschedulable"
    scores = orjson.loads(client.post("/prioritize", data=orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": result["NodeNames"]})).data)
    best = max(scores, key=lambda s: (s["Score"], s["Host"]))["Host"]
    meta = pod["metadata"]
    bound = orjson.loads(client.post("/bind", data=orjson.dumps({"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"], "Node": best})).data)
    return "bound" if bound["Error"] == "" else "retry"


def card_usage(dev: DevCluster) -> dict[str, list[int]]:
    """Per card uuid: [MiB, slots, cores] as recorded on the pods the API holds."""
    usage: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    pods, _ = dev.store.list("pods")
    for pod in pods:
        raw = (pod["metadata"].get("annotations") or {}).get("spotpack.io/gpu-assignment")
        if raw is None or not pod["spec"].get("nodeName"):
            continue
        assignment = json.loads(raw)
        assert assignment["node"] == pod["spec"]["nodeName"]
        for container in assignment["containers"]:
            for device in container["devices"]:
                entry = usage[device["uuid"]]
                entry[0] += device["mem"]
                entry[1] += 1
                entry[2] += device["cores"]
    return usage


def test_burst_of_1000_gpu_pods_never_overcommits(cluster) -> None:
    dev, kubeconfig = cluster
    rng = random.Random(7)
    pods = []
    for i in range(1000):
        count = 2 if rng.random() < 0.1 else 1
        pod = gpu_pod(f"p{i:04d}", mem=rng.choice([2000, 4000, 6000, 8000, 12000]), count=count, cores=rng.choice([None, 10, 25]))
        del pod["metadata"]["uid"], pod["metadata"]["resourceVersion"]
        pods.append(dev.store.create("pods", pod, "default"))
    app, client_main = start(kubeconfig)
    names = [f"gpu-{i:02d}" for i in range(NODES)]
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def worker(batch: list[dict]) -> None:
        client = app.test_client()
        for pod in batch:
            outcome = "retry"
            for _ in range(5):
                outcome = schedule(client, pod, names)
                if outcome != "retry":
                    break
            with lock:
                outcomes[pod["metadata"]["name"]] = outcome

    threads = [threading.Thread(target=worker, args=(pods[k::6],)) for k in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(outcomes) == 1000
        assert set(outcomes.values()) <= {"bound", "unschedulable"}
        bound = [p for p in dev.store.list("pods")[0] if p["spec"].get("nodeName")]
        assert len(bound) == sum(1 for o in outcomes.values() if o == "bound")
        assert len(bound) > 500, "the cluster has room for most of the burst"
        for uuid, (mem, slots, cores) in card_usage(dev).items():
            assert mem <= CARD_MIB, f"{uuid} over-committed: {mem} MiB"
            assert slots <= 10 and cores <= 100, f"{uuid}: {slots} slots, {cores} cores"
        # Every bound pod carries HAMi's keys for the device plugin.
        assert all(p["metadata"]["annotations"]["hami.io/vgpu-node"] == p["spec"]["nodeName"] for p in bound)
        # Restart: a fresh extender over the same cluster reaches the same per-card usage.
        wait_for(lambda: orjson.loads(client_main.get("/inspect").data)["reservations"] == 0, what="reservations confirmed")
        before = orjson.loads(client_main.get("/inspect").data)["nodes"]
        fresh, fresh_client = start(kubeconfig)
        try:
            after = orjson.loads(fresh_client.get("/inspect").data)["nodes"]
            strip = lambda nodes: {n: [(c["uuid"], c["used_mem_mib"], c["used_slots"], c["used_cores"]) for c in v["cards"]] for n, v in nodes.items()}  # noqa: E731
            assert strip(after) == strip(before)
        finally:
            stop(fresh)
    finally:
        stop(app)


def test_watch_expiry_dropped_connections_and_deleted_nodes(cluster) -> None:
    dev, kubeconfig = cluster
    app, client = start(kubeconfig)
    try:
        # 410: history compacted while the watch is down -> relist, nothing lost.
        dev.store.compact()
        dev.store.close_watches(abrupt=True)
        dev.store.create("nodes", gpu_node("late-node"))
        wait_for(lambda: "late-node" in orjson.loads(client.get("/inspect?node=late-node").data)["nodes"], what="node after 410")
        # A pod bound behind our back (another scheduler wrote the annotation) is counted.
        pod = gpu_pod("external", mem=9000)
        del pod["metadata"]["uid"], pod["metadata"]["resourceVersion"]
        created = dev.store.create("pods", pod, "default")
        assert schedule(client, created, ["late-node"]) == "bound"
        dev.store.close_watches()
        wait_for(lambda: orjson.loads(client.get("/inspect").data)["reservations"] == 0, what="bind confirmed after reconnect")
        card = orjson.loads(client.get("/inspect?node=late-node").data)["nodes"]["late-node"]["cards"][0]
        assert card["used_mem_mib"] == 9000 and card["pods"] == ["default/external"]
        # Node deleted between filter and bind: the bind is refused with a reason.
        victim = gpu_pod("victim", mem=1000)
        del victim["metadata"]["uid"], victim["metadata"]["resourceVersion"]
        victim = dev.store.create("pods", victim, "default")
        filtered = orjson.loads(client.post("/filter", data=orjson.dumps({"Pod": victim, "NodeNames": ["gpu-00"]})).data)
        assert filtered["NodeNames"] == ["gpu-00"]
        dev.store.delete("nodes", "gpu-00")
        wait_for(lambda: "gpu-00" not in orjson.loads(client.get("/inspect").data)["nodes"], what="node deletion seen")
        meta = victim["metadata"]
        bound = orjson.loads(client.post("/bind", data=orjson.dumps({"PodName": meta["name"], "PodNamespace": "default", "PodUID": meta["uid"], "Node": "gpu-00"})).data)
        assert "not in the extender's cache" in bound["Error"]
        assert not dev.store.get("pods", "victim", "default")["spec"].get("nodeName")
        # Pod deleted -> its cards are free again.
        dev.store.delete("pods", "external", "default")
        wait_for(lambda: orjson.loads(client.get("/inspect?node=late-node").data)["nodes"]["late-node"]["cards"][0]["used_mem_mib"] == 0, what="cards released")
    finally:
        stop(app)
