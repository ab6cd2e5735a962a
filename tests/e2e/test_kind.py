"""End to end on a real cluster (kind): runs where one is reachable, skipped cleanly elsewhere.

Set ``SPOTPACK_E2E_KUBECONFIG`` to a kind cluster's kubeconfig. The module
installs ``deploy/overlays/kind`` with ``kubectl apply -k`` (one replica each,
the local cloud, certificates from the Job), waits for the cert Job and the
three Deployments, then checks what only a real API server can show: the Job
wrote the caBundle the API server uses, the webhook mutates a Spark driver, the
provisioner holds its Lease. Set ``SPOTPACK_E2E_KEEP=1`` to leave the install
in place afterwards.

The image must be in the cluster first (kind nodes cannot pull an unpublished
image)::

    make image && kind load docker-image ghcr.io/spotpack/spotpack:0.1.0

or set ``SPOTPACK_E2E_KIND_CLUSTER`` to the cluster's name and the fixture
runs ``kind load docker-image`` itself (needs ``kind`` and the image built).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

KUBECONFIG = os.environ.get("SPOTPACK_E2E_KUBECONFIG", "")
KIND_CLUSTER = os.environ.get("SPOTPACK_E2E_KIND_CLUSTER", "")
KEEP = os.environ.get("SPOTPACK_E2E_KEEP", "") == "1"
OVERLAY = Path(__file__).resolve().parents[2] / "deploy" / "overlays" / "kind"
IMAGE = "ghcr.io/spotpack/spotpack:0.1.0"
NS = "spotpack-system"
WAIT = "180s"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not KUBECONFIG, reason="no cluster: set SPOTPACK_E2E_KUBECONFIG to run the end-to-end test"
    ),
    pytest.mark.timeout(900),
]


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl not installed: cannot install the kind overlay")
    return subprocess.run(
        [binary, "--kubeconfig", KUBECONFIG, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    """deploy/overlays/kind applied and running; removed afterwards unless SPOTPACK_E2E_KEEP=1."""
    if KIND_CLUSTER:
        kind = shutil.which("kind")
        if kind is None:
            pytest.skip("SPOTPACK_E2E_KIND_CLUSTER is set but kind is not installed")
        subprocess.run(
            [kind, "load", "docker-image", IMAGE, "--name", KIND_CLUSTER], check=True, timeout=300
        )
    applied = kubectl("apply", "-k", str(OVERLAY), check=False)
    assert applied.returncode == 0, applied.stderr
    try:
        done = kubectl(
            "-n",
            NS,
            "wait",
            "--for=condition=complete",
            "job/spotpack-certs",
            f"--timeout={WAIT}",
            check=False,
        )
        assert done.returncode == 0, f"cert Job: {done.stderr}\n{_logs('job/spotpack-certs')}"
        for deployment in ("spotpack-webhook", "spotpack-scheduler", "spotpack-provisioner"):
            rolled = kubectl(
                "-n",
                NS,
                "rollout",
                "status",
                f"deploy/{deployment}",
                f"--timeout={WAIT}",
                check=False,
            )
            assert rolled.returncode == 0, f"{deployment}: {rolled.stderr}"
        yield
    finally:
        if not KEEP:
            kubectl(
                "delete",
                "mutatingwebhookconfiguration",
                "spotpack",
                "--ignore-not-found",
                check=False,
            )
            kubectl("delete", "-k", str(OVERLAY), "--ignore-not-found", "--wait=false", check=False)


def _logs(target: str) -> str:
    return kubectl("-n", NS, "logs", target, "--tail=20", check=False).stdout


@pytest.fixture(scope="module")
def api(installed: None) -> Iterator[Any]:
    from spotpack.kube.config import load_api_client

    api_client = load_api_client(KUBECONFIG)
    yield api_client
    api_client.close()


def test_cert_job_wrote_the_ca_bundle(api: Any) -> None:
    from kubernetes import client

    ca = client.CoreV1Api(api).read_namespaced_secret("spotpack-ca", NS).data["tls.crt"]
    tls = client.CoreV1Api(api).read_namespaced_secret("spotpack-webhook-tls", NS).data
    assert base64.b64decode(tls["ca.crt"]) == base64.b64decode(ca)
    config = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration("spotpack")
    assert {w.client_config.ca_bundle for w in config.webhooks} == {ca}


def test_spark_driver_gets_on_demand_affinity(api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"e2e-driver-{int(time.time())}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"spark-role": "driver", "spark-app-selector": "e2e"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
    }
    created = core.create_namespaced_pod("default", body)
    try:
        affinity = created.spec.affinity.node_affinity
        terms = affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert any(
            e.key == "karpenter.sh/capacity-type" and e.operator == "NotIn"
            for t in terms
            for e in t.match_expressions
        )
        assert created.metadata.annotations["spotpack.io/capacity-applied"] == "on-demand"
    finally:
        core.delete_namespaced_pod(name, "default")


def test_provisioner_holds_its_lease(api: Any) -> None:
    from kubernetes import client

    leases = client.CoordinationV1Api(api)
    deadline = time.monotonic() + 60
    holder = ""
    while time.monotonic() < deadline and not holder:
        try:
            holder = leases.read_namespaced_lease("spotpack-provisioner", NS).spec.holder_identity
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        if not holder:
            time.sleep(2)
    assert holder.startswith("spotpack-provisioner-"), (
        f"holder {holder!r}: {_logs('deploy/spotpack-provisioner')}"
    )
