"""Namespace defaults read through the Kubernetes API (a real HTTP server on loopback)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from spotpack.devcluster import DevCluster
from tests.pods import pod, review
from webhook.app import create_app
from webhook.settings import WebhookSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[DevCluster, Path]]:
    with DevCluster() as dev:
        dev.store.create("namespaces", {"metadata": {"name": "batch", "annotations": {"spotpack.io/capacity": "spot"}}})
        yield dev, dev.write_kubeconfig(tmp_path / "kubeconfig")


def capacity_applied(client, namespace: str) -> str | None:
    obj = pod(namespace=namespace)
    body = orjson.loads(client.post("/mutate", data=orjson.dumps(review(obj))).data)["response"]
    if "patch" not in body:
        return None
    import base64

    for op in orjson.loads(base64.b64decode(body["patch"])):
        if op["path"] == "/metadata/annotations":
            return op["value"].get("spotpack.io/capacity-applied")
    return None


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_namespace_annotations_are_watched(cluster) -> None:
    dev, kubeconfig = cluster
    app = create_app(WebhookSettings(cert_file=None, key_file=None, kubeconfig=str(kubeconfig)))
    client = app.test_client()
    try:
        wait_for(lambda: client.get("/readyz").status_code == 200)
        assert capacity_applied(client, "batch") == "spot"
        assert capacity_applied(client, "default") is None
        dev.store.patch("namespaces", "batch", {"metadata": {"annotations": {"spotpack.io/capacity": "on-demand"}}}, "application/merge-patch+json")
        wait_for(lambda: capacity_applied(client, "batch") == "on-demand")
        dev.store.create("namespaces", {"metadata": {"name": "late", "annotations": {"spotpack.io/capacity": "any"}}})
        wait_for(lambda: capacity_applied(client, "late") == "any")
    finally:
        app.extensions["spotpack"].namespaces.close()


def test_no_cluster_means_global_defaults_and_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app(WebhookSettings(cert_file=None, key_file=None, kubeconfig=str(tmp_path / "missing")))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert capacity_applied(client, "batch") is None
    assert any("no cluster reachable" in r.getMessage() for r in caplog.records)
