"""End to end on a real cluster (kind): runs where one is reachable, skipped cleanly elsewhere.

Set ``SPOTPACK_E2E_KUBECONFIG`` to a kind cluster's kubeconfig with spotpack
installed (``kubectl apply -k deploy/``); the test creates a Spark driver pod and
checks the webhook gave it on-demand affinity.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.e2e
KUBECONFIG = os.environ.get("SPOTPACK_E2E_KUBECONFIG", "")


@pytest.mark.skipif(not KUBECONFIG, reason="no cluster: set SPOTPACK_E2E_KUBECONFIG to run the end-to-end test")
def test_spark_driver_gets_on_demand_affinity() -> None:
    from kubernetes import client

    from spotpack.kube.config import load_api_client

    api = client.CoreV1Api(load_api_client(KUBECONFIG))
    name = f"e2e-driver-{int(time.time())}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"spark-role": "driver", "spark-app-selector": "e2e"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
    }
    created = api.create_namespaced_pod("default", body)
    try:
        terms = created.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert any(e.key == "karpenter.sh/capacity-type" and e.operator == "NotIn" for t in terms for e in t.match_expressions)
        assert created.metadata.annotations["spotpack.io/capacity-applied"] == "on-demand"
    finally:
        api.delete_namespaced_pod(name, "default")
