"""``POST /local/interruptions``: the local cloud's notice source, into the real loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.app import Service, create_app
from provisioner.fakes import harness, node_manifest, pod_manifest
from provisioner.local_notices import InterruptionRequest, build_notice, instance_of
from provisioner.settings import ProvisionerSettings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "window", "want"),
    [
        ("spot-interruption", None, NOW + timedelta(seconds=120)),
        ("spot-interruption", 2.5, NOW + timedelta(seconds=2.5)),
        ("scheduled-change", 30.0, NOW + timedelta(seconds=30)),
        ("rebalance", 5.0, None),
        ("state-change", 5.0, NOW),
    ],
)
def test_notice_deadline_by_kind(kind: Any, window: float | None, want: datetime | None) -> None:
    req = InterruptionRequest(node="n1", kind=kind, window_seconds=window)
    notice = build_notice(req, "local-c1", now=NOW, window=120.0)
    assert (notice.kind, notice.instance_id, notice.deadline) == (kind, "local-c1", want)
    assert notice.receipt.startswith("local-")


@pytest.mark.parametrize(
    ("node", "want"),
    [
        ({"spec": {"providerID": "local:///us-east-1a/local-c1"}}, "local-c1"),
        ({"spec": {}, "metadata": {"annotations": {"spotpack.io/instance-id": "i-9"}}}, "i-9"),
        ({"spec": {"providerID": "not-a-provider-id"}, "metadata": {}}, ""),
        ({}, ""),
    ],
)
def test_instance_of(node: dict[str, Any], want: str) -> None:
    assert instance_of(node) == want


def world(*, local: bool = True) -> tuple[Service, Any]:
    h = harness(notice_window=120.0)
    h.cluster.add_node(node_manifest("n1", instance_id="i-1", instance_type="m5.large"))
    h.cluster.add_node(node_manifest("bare", managed=False))
    h.cluster.add_pod(pod_manifest("web", node="n1", pending=False, owner="ReplicaSet"))
    settings = ProvisionerSettings(local=True) if local else ProvisionerSettings()
    svc = Service(settings=settings, controller=h.controller, view=h.cluster)
    svc.app = create_app(svc)
    return svc, h


def test_a_notice_taints_and_drains_the_node_through_the_loop() -> None:
    svc, h = world()
    assert svc.app is not None
    client = svc.app.test_client()
    resp = client.post("/local/interruptions", json={"node": "n1", "window_seconds": 3})
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["instance"] == "i-1"
    h.tick()
    (name, patch) = h.cluster.patches[0]
    taints = patch["spec"]["taints"]
    assert name == "n1" and any(t["key"] == "spotpack.io/interruption" for t in taints)
    assert h.cluster.evictions == [("default", "web")]
    assert h.cluster.deleted_nodes == ["n1"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"node": "nope"}, 404, "not in the provisioner's cache"),
        ({"node": "bare"}, 409, "no instance id"),
        ({"node": "n1", "kind": "meteor"}, 400, "kind"),
        ({"node": "n1", "colour": "red"}, 400, "colour"),
        ({"node": ""}, 400, "node"),
        ({"node": "n1", "window_seconds": -1}, 400, "window_seconds"),
    ],
)
def test_bad_requests(body: dict[str, Any], status: int, words: str) -> None:
    svc, _ = world()
    assert svc.app is not None
    resp = svc.app.test_client().post("/local/interruptions", json=body)
    assert resp.status_code == status
    assert words in resp.get_json()["error"]


def test_a_follower_refuses() -> None:
    svc, h = world()
    h.leader[0] = False
    assert svc.app is not None
    resp = svc.app.test_client().post("/local/interruptions", json={"node": "n1"})
    assert resp.status_code == 503


def test_not_served_for_a_real_cloud() -> None:
    svc, _ = world(local=False)
    assert svc.app is not None
    assert svc.app.test_client().post("/local/interruptions", json={"node": "n1"}).status_code in (
        404,
        405,
    )
