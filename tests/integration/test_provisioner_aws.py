"""A crash between CreateFleet and recording the claim, then a restart: EC2 in moto's server mode.

moto launches again on a repeated CreateFleet (it ignores ``ClientToken``), so
this is the test that the provisioner's own look-up keeps a restart from
launching twice. The pods live in the in-memory API server; the loop is
ticked by the test (no loop thread), so the simulated crash surfaces here.

What happens to the instance: it is **adopted**. The restarted provisioner
lists its instances by the cluster tag when it becomes leader and takes each
one back as a claim; the pending pods it was launched for are placed on it
again (their claim id is deterministic, and ``find`` by claim tag backs the
listing up). No CreateFleet is sent, and the orphan collector finds nothing.
An adopted instance nobody needs any more is not an orphan either: it gets
the registration timeout like any claim, and is terminated when it expires.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.app import Service, build_service
from provisioner.fakes import pod_manifest
from provisioner.settings import ProvisionerSettings
from spotpack.cloud.aws import AwsProvider
from spotpack.cloud.base import CLAIM_TAG, CLUSTER_TAG, Instance, LaunchRequest
from spotpack.cloud.fake import SimulatedCrash
from spotpack.devcluster import DevCluster
from spotpack.errors import CloudError, ConfigError
from spotpack.kube import api_client_for_url
from tests.integration.moto_server import (
    REGION,
    Moto,
    Network,
    fake_session,
    isolate_aws_env,
    make_network,
    running_moto,
)

pytestmark = pytest.mark.integration

ZONES = ("us-east-1a", "us-east-1b")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def network(moto: Moto) -> Network:
    return make_network(moto.url, ZONES, 1)


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster(bookmark_interval=0.2) as dev:
        yield dev


def settings(moto: Moto, network: Network, name: str, **kw: Any) -> ProvisionerSettings:
    return ProvisionerSettings(
        cloud="aws",
        region=REGION,
        cluster_name=name,
        subnets=network.subnets,
        image_id=network.image_id,
        aws_endpoint_url=moto.url,
        leader_election=False,
        batch_idle_seconds=0.1,
        batch_max_seconds=0.5,
        orphan_grace_seconds=0.0,
        **kw,
    )


class CrashAfterLaunch:
    """The provider, except that the process "dies" right after CreateFleet returns."""

    def __init__(self, inner: AwsProvider) -> None:
        self.inner = inner
        self.name = inner.name

    def launch(self, req: LaunchRequest) -> Instance:
        instance = self.inner.launch(req)
        raise SimulatedCrash(f"crashed after launching {instance.instance_id}")

    def find(self, claim_id: str) -> Instance | None:
        return self.inner.find(claim_id)

    def list_owned(self) -> list[Instance]:
        return self.inner.list_owned()

    def terminate(self, instance_ids: Any) -> None:
        self.inner.terminate(instance_ids)


def provider(moto: Moto, network: Network, name: str) -> AwsProvider:
    return AwsProvider(
        REGION,
        name,
        subnet_by_zone=network.subnets,
        endpoint_url=moto.url,
        session=fake_session(),
        image_id=network.image_id,
        readback_delay=0.01,
    )


def fleets(p: AwsProvider) -> list[dict[str, Any]]:
    """Every CreateFleet this provider sends, recorded by a botocore hook."""
    seen: list[dict[str, Any]] = []
    p.client.meta.events.register(
        "before-parameter-build.ec2.CreateFleet", lambda params, **_: seen.append(dict(params))
    )
    return seen


def tagged(moto: Moto, name: str) -> list[dict[str, Any]]:
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    try:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{CLUSTER_TAG}", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    finally:
        ec2.close()


def started(svc: Service) -> Service:
    """Informers only: the test ticks the loop itself."""
    for informer in svc.informers:
        informer.start()
    deadline = time.monotonic() + 10
    while not svc.view.synced():
        assert time.monotonic() < deadline, "caches not synced"
        time.sleep(0.02)
    return svc


def tick_until(svc: Service, done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        svc.controller.tick()
        time.sleep(0.05)


def crash_once(
    moto: Moto, network: Network, cluster: DevCluster, name: str, clients: list[Any]
) -> dict[str, Any]:
    """Run a provisioner until it crashes right after its CreateFleet; the instance it left."""
    client = api_client_for_url(cluster.url)
    clients.append(client)
    real = provider(moto, network, name)
    first = started(
        build_service(
            settings(moto, network, name), api_client=client, provider=CrashAfterLaunch(real)
        )
    )
    try:
        with pytest.raises(SimulatedCrash):
            tick_until(first, lambda: False, "a launch")
        assert len(first.controller.book) == 0  # the claim was never recorded
    finally:
        for informer in first.informers:
            informer.stop()
        real.close()
    (instance,) = tagged(moto, name)
    return instance


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        client.close()


class ListingFailsOnce(CrashAfterLaunch):
    """The provider, with the first DescribeInstances-by-cluster failing (throttled)."""

    def __init__(self, inner: AwsProvider) -> None:
        super().__init__(inner)
        self.failed = False

    def launch(self, req: LaunchRequest) -> Instance:
        return self.inner.launch(req)

    def list_owned(self) -> list[Instance]:
        if not self.failed:
            self.failed = True
            raise CloudError("DescribeInstances throttled", code="RequestLimitExceeded")
        return self.inner.list_owned()


@pytest.mark.parametrize("listing", ["works", "fails"])
def test_restart_after_a_crash_adopts_the_instance_and_launches_nothing(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any], listing: str
) -> None:
    """Adopted by the listing at election, or (listing failed) by ``find`` before launching."""
    name = f"crash-{uuid.uuid4().hex[:8]}"
    for pod in ("exec-1", "exec-2"):
        cluster.store.create("pods", pod_manifest(pod, cpu="250m", memory="256Mi"))
    instance = crash_once(moto, network, cluster, name, clients)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    claim_id = tags[CLAIM_TAG]

    # A fresh process: empty claim book, a new provider, the same cloud.
    client = api_client_for_url(cluster.url)
    clients.append(client)
    fresh = provider(moto, network, name)
    sent = fleets(fresh)
    used: Any = fresh if listing == "works" else ListingFailsOnce(fresh)
    second = started(build_service(settings(moto, network, name), api_client=client, provider=used))
    try:
        tick_until(
            second,
            lambda: (
                bool(second.controller.book.get(claim_id))
                and second.controller.book.get(claim_id).pods  # type: ignore[union-attr]
                == {"default/exec-1", "default/exec-2"}
            ),
            "the instance adopted with its pods",
        )
        for _ in range(5):  # and later rounds do not launch either
            second.controller.tick()
            time.sleep(0.05)
        assert sent == []
        assert [i["InstanceId"] for i in tagged(moto, name)] == [instance["InstanceId"]]
        claim = second.controller.book.get(claim_id)
        assert claim is not None and claim.adopted
        assert claim.instance_id == instance["InstanceId"]
        if listing == "fails":  # found by its claim tag right before launching
            pods, _ = cluster.store.list("events")
            told = [e["message"] for e in pods if e["involvedObject"]["name"] == "exec-1"]
            assert any("already launched" in m for m in told), told
        snap = second.controller.snapshot()
        assert second.controller.collect_orphans(snap, time.time() + 3600) == []
        assert [i["InstanceId"] for i in tagged(moto, name)] == [instance["InstanceId"]]
    finally:
        for informer in second.informers:
            informer.stop()
        fresh.close()


def test_an_adopted_instance_nobody_needs_is_terminated_at_the_registration_timeout(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any]
) -> None:
    name = f"crash-{uuid.uuid4().hex[:8]}"
    cluster.store.create("pods", pod_manifest("gone-soon", cpu="250m", memory="256Mi"))
    instance = crash_once(moto, network, cluster, name, clients)
    cluster.store.delete("pods", "gone-soon", "default")  # its claim is gone for good

    client = api_client_for_url(cluster.url)
    clients.append(client)
    fresh = provider(moto, network, name)
    sent = fleets(fresh)
    svc = started(
        build_service(
            settings(moto, network, name, registration_timeout_seconds=3.0),
            api_client=client,
            provider=fresh,
        )
    )
    try:
        svc.controller.tick()
        assert [c.instance_id for c in svc.controller.book.all()] == [instance["InstanceId"]]
        assert svc.controller.collect_orphans(svc.controller.snapshot(), time.time()) == []
        tick_until(svc, lambda: not tagged(moto, name), "terminated after the timeout")
        assert len(svc.controller.book) == 0
        assert sent == []
    finally:
        for informer in svc.informers:
            informer.stop()
        fresh.close()


# --- architectures ---------------------------------------------------------------------------


def arm_pod(name: str) -> dict[str, Any]:
    pod = pod_manifest(name, cpu="250m", memory="256Mi")
    pod["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    return pod


def arch_service(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any], name: str, **kw: Any
) -> Service:
    """A provisioner that builds its own AwsProvider from the settings, as in production."""
    client = api_client_for_url(cluster.url)
    clients.append(client)
    return started(build_service(settings(moto, network, name, **kw), api_client=client))


def arches_of(moto: Moto, instances: list[dict[str, Any]]) -> list[str]:
    ec2 = fake_session().client("ec2", endpoint_url=moto.url)
    try:
        types = sorted({i["InstanceType"] for i in instances})
        found = ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]
    finally:
        ec2.close()
    return sorted({a for t in found for a in t["ProcessorInfo"]["SupportedArchitectures"]})


def test_by_default_only_amd64_is_launched_and_an_arm64_pod_is_told_why(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any]
) -> None:
    name = f"arch-{uuid.uuid4().hex[:8]}"
    cluster.store.create("pods", pod_manifest("free", cpu="250m", memory="256Mi"))
    cluster.store.create("pods", arm_pod("graviton"))
    svc = arch_service(moto, network, cluster, clients, name)
    try:
        tick_until(svc, lambda: bool(tagged(moto, name)), "a launch for the free pod")
        tick_until(
            svc, lambda: "default/graviton" in svc.controller.unplaceable, "the arm64 pod refused"
        )
        reason = svc.controller.unplaceable["default/graviton"]
        assert "kubernetes.io/arch arm64" in reason
        assert "SPOTPACK_PROVISIONER_ARCHITECTURES" in reason
        instances = tagged(moto, name)
        assert len(instances) == 1
        assert arches_of(moto, instances) == ["x86_64"]
        events, _ = cluster.store.list("events")
        told = [e for e in events if e["involvedObject"]["name"] == "graviton"]
        assert any(e["reason"] == "ProvisioningFailed" for e in told), told
    finally:
        for informer in svc.informers:
            informer.stop()
        svc.controller.parts.provider.terminate([i["InstanceId"] for i in tagged(moto, name)])


def test_with_arm64_allowed_an_arm64_pod_launches_from_the_arm64_template(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any]
) -> None:
    name = f"arch-{uuid.uuid4().hex[:8]}"
    cluster.store.create("pods", arm_pod("graviton"))
    svc = arch_service(
        moto,
        network,
        cluster,
        clients,
        name,
        architectures=["amd64", "arm64"],
        image_id_arm64=network.image_id,  # moto does not check an AMI's architecture
    )
    try:
        tick_until(svc, lambda: bool(tagged(moto, name)), "a launch for the arm64 pod")
        (instance,) = tagged(moto, name)
        assert arches_of(moto, [instance]) == ["arm64"]
        ec2 = fake_session().client("ec2", endpoint_url=moto.url)
        try:
            template = ec2.describe_launch_templates(LaunchTemplateNames=[f"spotpack-{name}-arm64"])
        finally:
            ec2.close()
        assert len(template["LaunchTemplates"]) == 1
    finally:
        for informer in svc.informers:
            informer.stop()
        svc.controller.parts.provider.terminate([i["InstanceId"] for i in tagged(moto, name)])


def test_arm64_allowed_without_an_arm64_template_fails_at_start(
    moto: Moto, network: Network, cluster: DevCluster, clients: list[Any]
) -> None:
    client = api_client_for_url(cluster.url)
    clients.append(client)
    with pytest.raises(ConfigError) as info:
        build_service(
            settings(moto, network, "arch-x", architectures=["amd64", "arm64"]), api_client=client
        )
    message = str(info.value)
    assert "SPOTPACK_PROVISIONER_LAUNCH_TEMPLATE_ARM64" in message
    assert "deploy/values/spotpack.env" in message
    assert "\n" not in message
