"""Settings, the HTTP endpoints and the command line, without a cluster."""

from __future__ import annotations

import argparse

import pytest

from provisioner import cli
from provisioner.app import Service, build_provider, create_app, loop_config, planning_zones
from provisioner.fakes import harness, pod_manifest
from provisioner.settings import ProvisionerSettings, load_settings
from spotpack.catalog import load_catalog
from spotpack.cli import build_parser
from spotpack.errors import ConfigError
from spotpack.provisioning.model import Limits


def test_defaults() -> None:
    s = ProvisionerSettings()
    assert (s.cloud, s.batch_idle_seconds, s.batch_max_seconds) == ("aws", 1.0, 10.0)
    assert s.registration_timeout_seconds == 900 and s.empty_node_delay_seconds == 300
    assert s.limits == Limits()
    assert s.lease_namespace == "spotpack-system" and s.identity


def test_environment_with_json_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTPACK_PROVISIONER_SUBNETS", '{"us-east-1a": "subnet-1"}')
    monkeypatch.setenv("SPOTPACK_PROVISIONER_MAX_GPUS", "8")
    monkeypatch.setenv("SPOTPACK_PROVISIONER_MAX_COST_PER_HOUR", "12.5")
    s = load_settings()
    assert s.subnets == {"us-east-1a": "subnet-1"}
    assert s.limits == Limits(None, 8, 12.5)
    assert planning_zones(s, load_catalog()) == ["us-east-1a"]


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("SPOTPACK_PROVISIONER_CLOUD", "gcp", "SPOTPACK_PROVISIONER_CLOUD"),
        ("SPOTPACK_PROVISIONER_MAX_NODES", "-1", "SPOTPACK_PROVISIONER_MAX_NODES"),
        ("SPOTPACK_PROVISIONER_BATCH_MAX_SECONDS", "0.5", "batch_max_seconds"),
        ("SPOTPACK_PROVISIONER_RENEW_DEADLINE_SECONDS", "30", "renew_deadline_seconds"),
    ],
)
def test_invalid_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_loop_config_takes_the_clouds_notice_window() -> None:
    assert loop_config(ProvisionerSettings()).notice_window == 120
    assert loop_config(ProvisionerSettings(local=True)).notice_window == 120  # local: like AWS
    config = loop_config(ProvisionerSettings(notice_window_seconds=30, labels={"team": "ml"}))
    assert config.notice_window == 30
    assert config.labels == {"team": "ml", "spotpack.io/managed": "true"}


def test_local_zones_come_from_the_catalog() -> None:
    zones = planning_zones(ProvisionerSettings(local=True), load_catalog())
    assert "us-east-1a" in zones and len(zones) == 6


def service() -> Service:
    h = harness()
    svc = Service(settings=ProvisionerSettings(local=True), controller=h.controller, view=h.cluster)
    svc.app = create_app(svc)
    h.tick()
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(1.5)
    return svc


def test_http_endpoints() -> None:
    svc = service()
    assert svc.app is not None
    client = svc.app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    for name in (
        "spotpack_provisioner_pod_pending_seconds_bucket",
        'spotpack_provisioner_nodes_launched_total{capacity_type="spot"} 1.0',
        "spotpack_provisioner_cost_per_hour_dollars",
        'spotpack_provisioner_claims{phase="launched"} 1.0',
        "spotpack_provisioner_leader 1.0",
    ):
        assert name in metrics, name
    claims = client.get("/claims").get_json()
    assert claims["leader"] is True
    (claim,) = claims["claims"]
    assert claim["pods"] == ["default/a"] and claim["phase"] == "launched"


def test_not_ready_until_the_caches_are_synced() -> None:
    svc = service()
    svc.view.is_synced = False  # type: ignore[attr-defined]
    assert svc.app is not None
    assert svc.app.test_client().get("/readyz").status_code == 503


def test_the_command_line() -> None:
    parser = build_parser(["provisioner"])
    args = parser.parse_args(["provisioner", "--local", "--port", "0", "--cluster-name", "c1"])
    assert cli.overrides(args) == {"local": True, "port": 0, "cluster_name": "c1"}
    args = parser.parse_args(["provisioner", "--no-leader-election", "--cloud", "aws"])
    assert cli.overrides(args) == {"cloud": "aws", "leader_election": False}


def test_help_lists_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser(["--help"]).parse_args(["--help"])
    assert "run the node provisioner" in capsys.readouterr().out
    assert isinstance(build_parser(["provisioner"]), argparse.ArgumentParser)


def test_pending_time_is_measured_until_the_pod_is_bound() -> None:
    h = harness()
    h.tick()
    pod = h.cluster.add_pod(pod_manifest("a"))  # Unschedulable since the clock's start
    h.controller.observe_pod(pod)
    h.tick(1.5)
    (instance,) = h.live()
    h.register(instance.instance_id)
    h.clock.advance(28.5)
    h.cluster.bind("default/a", instance.node_name)
    h.controller.observe_pod(h.cluster.pods_by_key["default/a"])
    histogram = h.controller.parts.metrics.pending_seconds
    registry = h.controller.parts.metrics.registry
    assert registry.get_sample_value("spotpack_provisioner_pod_pending_seconds_count") == 1
    assert registry.get_sample_value("spotpack_provisioner_pod_pending_seconds_sum") == 30.0
    assert histogram is not None


def test_idle_ticks_do_not_read_the_caches() -> None:
    h = harness(scan_interval=5.0, replan_interval=30.0, gc_interval=60.0)
    h.tick()
    reads: list[int] = []
    real = h.cluster.pods

    def counted() -> list[dict[str, object]]:
        reads.append(1)
        return real()

    h.cluster.pods = counted  # type: ignore[method-assign]
    for _ in range(4):
        h.tick(1.0)
    assert reads == []
    h.tick(1.0)  # the scan for empty nodes is due
    assert reads == [1]
    h.controller.observe_pod(h.cluster.add_pod(pod_manifest("a")))
    h.tick(0.5)  # a batch window is open but not closed yet
    assert reads == [1]
    h.tick(0.5)
    assert reads == [1, 1] and len(h.launches()) == 1


def test_daemonset_overhead_setting() -> None:
    import pytest

    from provisioner.settings import ProvisionerSettings
    from spotpack.errors import ConfigError
    from spotpack.provisioning.model import Resources

    assert ProvisionerSettings(
        daemonset_cpu="500m", daemonset_memory="1Gi", daemonset_pods=3
    ).daemonset_overhead() == Resources(500, 1024, 3)
    with pytest.raises(ConfigError, match="DAEMONSET"):
        ProvisionerSettings(daemonset_cpu="lots").daemonset_overhead()


# --- architectures and the aws settings ---------------------------------------------------------


def test_architectures_default_to_amd64_and_read_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProvisionerSettings().architectures == ["amd64"]
    assert loop_config(ProvisionerSettings()).architectures == frozenset({"amd64"})
    monkeypatch.setenv("SPOTPACK_PROVISIONER_ARCHITECTURES", '["amd64", "arm64"]')
    assert load_settings().allowed_architectures == frozenset({"amd64", "arm64"})
    monkeypatch.setenv("SPOTPACK_PROVISIONER_ARCHITECTURES", '["x86"]')
    with pytest.raises(ConfigError, match="SPOTPACK_PROVISIONER_ARCHITECTURES"):
        load_settings()
    monkeypatch.setenv("SPOTPACK_PROVISIONER_ARCHITECTURES", "[]")
    with pytest.raises(ConfigError, match="SPOTPACK_PROVISIONER_ARCHITECTURES"):
        load_settings()


AWS_OK = {"subnets": {"us-east-1a": "subnet-1"}, "launch_template": "nodes"}


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"subnets": {}}, ["SPOTPACK_PROVISIONER_SUBNETS"]),
        ({"cluster_name": ""}, ["SPOTPACK_PROVISIONER_CLUSTER_NAME"]),
        (
            {"zones": ["us-east-1a", "us-east-1f"]},
            ["SPOTPACK_PROVISIONER_ZONES", "us-east-1f", "SPOTPACK_PROVISIONER_SUBNETS"],
        ),
        (
            {"launch_template": None},
            ["SPOTPACK_PROVISIONER_LAUNCH_TEMPLATE", "SPOTPACK_PROVISIONER_IMAGE_ID"],
        ),
        (
            {"architectures": ["amd64", "arm64"]},
            ["SPOTPACK_PROVISIONER_LAUNCH_TEMPLATE_ARM64", "SPOTPACK_PROVISIONER_ARCHITECTURES"],
        ),
        (
            {"architectures": ["arm64"], "launch_template": None},
            ["SPOTPACK_PROVISIONER_LAUNCH_TEMPLATE_ARM64"],
        ),
    ],
)
def test_aws_provider_errors_name_the_variable_and_the_values_file(
    overrides: dict[str, object], names: list[str]
) -> None:
    from spotpack.cloud.base import OfferingCache

    settings = ProvisionerSettings(**{**AWS_OK, **overrides})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        build_provider(settings, None, load_catalog(), OfferingCache(60))
    message = str(info.value)
    for name in names:
        assert name in message
    assert "deploy/values/spotpack.env" in message
    assert "\n" not in message
    assert "subnet_by_zone" not in message and "image id" not in message


def test_aws_provider_gets_a_template_per_allowed_architecture() -> None:
    from spotpack.cloud.aws import AwsProvider
    from spotpack.cloud.base import OfferingCache

    settings = ProvisionerSettings(
        **AWS_OK,  # type: ignore[arg-type]
        architectures=["amd64", "arm64"],
        launch_template_arm64="nodes-arm",
    )
    provider = build_provider(settings, None, load_catalog(), OfferingCache(60))
    try:
        assert isinstance(provider, AwsProvider)
        assert provider.templates == {"amd64": ("nodes", None), "arm64": ("nodes-arm", None)}
        assert provider.instance_arch is not None
        assert provider.instance_arch["m6g.large"] == "arm64"
        assert provider.instance_arch["m5.large"] == "amd64"
    finally:
        provider.close()  # type: ignore[attr-defined]
