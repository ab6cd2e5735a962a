"""One short scenario through the real services: webhook -> extender -> provisioner, over HTTP.

The stack is the one ``spotpack simulate`` starts (embedded cluster, the three
services as child processes over TLS); the figures are checked against what
the run observed and against the catalog, computed here independently.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from spotpack.catalog import load_catalog
from spotpack.simulate.engine import Engine, service_env
from spotpack.simulate.metrics import figures, weights
from spotpack.simulate.report import html_report
from spotpack.simulate.scenario import parse_text
from spotpack.stack import Stack, StackSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SCENARIO = """
name: tiny
duration: 480
compression: 30
tick: 10
seed: 3
node_startup_seconds: 30
scale_down_delay_seconds: 60
interruptions:
  at: [200]
  warning_seconds: 30
workloads:
  - name: driver
    namespace: analytics
    kind: pod
    replicas: 1
    template:
      labels: {spark-role: driver, spark-app-selector: tiny}
      containers: [{name: spark, resources: {requests: {cpu: "1", memory: 2Gi}}}]
  - name: exec
    namespace: analytics
    kind: pod
    start: 10
    replicas: 2
    template:
      labels: {spark-role: executor, spark-app-selector: tiny}
      containers: [{name: spark, resources: {requests: {cpu: "2", memory: 4Gi}}}]
  - name: llm
    namespace: inference
    kind: deployment
    replicas: 1
    template:
      labels: {serving.kserve.io/inferenceservice: llm, component: predictor}
      containers:
        - name: kserve-container
          resources:
            limits: {volcano.sh/vgpu-number: 1, volcano.sh/vgpu-memory: 4000, volcano.sh/vgpu-cores: 30}
            requests: {cpu: "1", memory: 4Gi}
"""


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_a_tiny_scenario_end_to_end(tmp_path: Path) -> None:
    started = time.monotonic()
    scenario = parse_text(SCENARIO, "tiny.yaml")
    catalog = load_catalog()
    webhook, extender, provisioner = free_ports(3)
    settings = StackSettings(
        webhook_port=webhook,
        extender_port=extender,
        provisioner_port=provisioner,
        seed=(),
        certs_dir=tmp_path / "certs",
        workdir=tmp_path / "run",
        extra_env=service_env(scenario),
    )
    with Stack(settings) as stack:
        engine = Engine(scenario, stack.endpoints, catalog)
        try:
            record = engine.run()
        finally:
            engine.cleanup()
    result = figures(record, catalog, scenario.region)
    assert time.monotonic() - started < 90

    # Cost: the nodes that existed, priced from the catalog here, integrated over time.
    dts = weights([s.t for s in record.samples], scenario.duration)
    expected = 0.0
    for sample, dt in zip(record.samples, dts, strict=True):
        for node in sample.nodes:
            if node.capacity == "spot":
                offer = catalog.spot_offer(node.instance_type, node.zone)
                assert offer is not None
                price = offer.price
            else:
                od = catalog.on_demand_price(node.instance_type, scenario.region)
                assert od is not None
                price = od
            expected += price * dt / 3600
    assert result.total_cost == pytest.approx(expected)
    assert result.nodes_seen >= 2 and result.total_cost > 0
    assert 0 < result.total_cost < result.baseline_total_cost
    assert 0 < result.spot_node_share < 1  # the driver's node is on-demand, executors' spot

    # The driver never ran on spot.
    spot_nodes = {n.name for s in record.samples for n in s.nodes if n.spot}
    driver_nodes = {
        p.node for s in record.samples for p in s.pods if p.workload == "driver" and p.node
    }
    assert driver_nodes and not driver_nodes & spot_nodes

    # The GPU pod got a slice of a card, not the card: 4000 MiB, 30% of the cores.
    slices = [
        (p, {n.name: n for n in s.nodes}[p.node])
        for s in record.samples
        for p in s.pods
        if p.workload == "llm" and p.node
    ]
    assert slices
    pod, node = slices[-1]
    assert (pod.vgpus, pod.gpu_mem_mib, pod.gpu_cores) == (1, 4000, 30)
    assert node.cards >= 1 and node.gpu_mem_mib > pod.gpu_mem_mib
    assert 0 < result.gpu_mem_util < 1

    # The scheduled interruption was injected and survived.
    (scheduled,) = [i for i in result.interruptions if i.reason == "scheduled"]
    assert scheduled.affected and scheduled.survived
    assert (
        scheduled.recovered_at is not None
        and scheduled.t < scheduled.recovered_at < scheduled.t + 200
    )
    assert result.pending.never_bound == 0

    text = html_report(result)
    assert "http://" not in text and "https://" not in text
    assert text.count("<svg") == 6
