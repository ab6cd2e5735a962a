"""What ``spotpack run`` starts and prints, decided without starting anything: settings
validation, each service's command line and environment, the banner, the flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from spotpack.errors import ConfigError
from spotpack.stack import Endpoints, StackSettings
from spotpack.stack.banner import (
    EMBEDDED_NOTE,
    READY_LINE,
    STOP_LINE,
    Examples,
    banner,
    find_examples,
    spotpack_command,
)
from spotpack.stack.cli import add_parser, settings_from_args
from spotpack.stack.plan import client_host, plan_services
from spotpack.stack.stack import absolute, with_own_namespace

KUBECONFIG = Path("/w/run/kubeconfig")
CERT, KEY = Path("/w/certs/tls.crt"), Path("/w/certs/tls.key")


def plan(settings: StackSettings, base_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    specs = plan_services(
        settings, kubeconfig=KUBECONFIG, cert_file=CERT, key_file=KEY, base_env=base_env or {}
    )
    return {spec.name: spec for spec in specs}


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_port": 0}, "webhook port 0 is out of range; pick 1-65535 with --webhook-port"),
        ({"api_port": 70000}, "api port 70000 is out of range"),
        (
            {"extender_port": 8443},
            "port 8443 is given to both webhook and extender; pick another with --extender-port",
        ),
        ({"cloud": "aws"}, "cloud 'aws' is not valid; allowed: local, none"),
        ({"extra_env": {"sheduler": {}}}, "extra_env names unknown services sheduler"),
        ({"ready_timeout": 0}, "must be positive"),
    ],
)
def test_bad_settings_are_one_line_config_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        StackSettings(**overrides)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_the_provisioner_port_may_clash_when_it_does_not_run() -> None:
    settings = StackSettings(provisioner_port=8443, cloud="none")
    assert settings.services == ("webhook", "extender")


def test_paths_become_absolute_against_the_working_directory(tmp_path: Path) -> None:
    settings = absolute(
        StackSettings(kubeconfig=Path("k"), seed=(Path("s.yaml"),), certs_dir=Path("c")),
        tmp_path,
    )
    assert settings.kubeconfig == tmp_path / "k"
    assert settings.seed == (tmp_path / "s.yaml",)
    assert settings.certs_dir == tmp_path / "c"
    assert settings.workdir == tmp_path / ".run"
    assert absolute(StackSettings(), tmp_path).seed is None


def test_the_own_namespace_is_added_once() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "spotpack-system"}}
    assert with_own_namespace(()) == [ns]
    assert with_own_namespace((ns,)) == [ns]


# --- plan -------------------------------------------------------------------------------------


def test_each_service_gets_its_port_certificates_and_kubeconfig_as_flags() -> None:
    specs = plan(StackSettings(webhook_port=9443, extender_port=9444, provisioner_port=9080))
    assert list(specs) == ["webhook", "extender", "provisioner"]
    webhook = specs["webhook"].args
    assert webhook[0] == "webhook"
    assert webhook[webhook.index("--port") : webhook.index("--port") + 2] == ("--port", "9443")
    assert "--cert-file" in webhook and str(CERT) in webhook and str(KEY) in webhook
    provisioner = specs["provisioner"].args
    assert provisioner[:1] == ("provisioner",)
    assert {"--cloud", "local", "--no-leader-election", str(KUBECONFIG)} <= set(provisioner)
    assert "--cert-file" not in provisioner
    assert all(spec.env["KUBECONFIG"] == str(KUBECONFIG) for spec in specs.values())
    assert specs["webhook"].ready_url == "https://127.0.0.1:9443/readyz"
    assert specs["provisioner"].url == "http://127.0.0.1:9080"
    assert specs["webhook"].tls and not specs["provisioner"].tls


def test_laptop_defaults_yield_to_the_shell_and_extra_env_comes_last() -> None:
    assert plan(StackSettings())["webhook"].env["SPOTPACK_WEBHOOK_WORKERS"] == "1"
    from_shell = plan(StackSettings(), {"SPOTPACK_WEBHOOK_WORKERS": "4"})["webhook"].env
    assert "SPOTPACK_WEBHOOK_WORKERS" not in from_shell
    tuned = StackSettings(
        cloud="local",
        extra_env={
            "provisioner": {"SPOTPACK_PROVISIONER_BATCH_IDLE_SECONDS": "0.2"},
            "webhook": {"SPOTPACK_WEBHOOK_WORKERS": "2"},
        },
    )
    specs = plan(tuned)
    assert specs["provisioner"].env["SPOTPACK_PROVISIONER_BATCH_IDLE_SECONDS"] == "0.2"
    assert specs["webhook"].env["SPOTPACK_WEBHOOK_WORKERS"] == "2"
    assert "SPOTPACK_PROVISIONER_BATCH_IDLE_SECONDS" not in specs["extender"].env


def test_without_a_provisioner_only_two_services_are_planned() -> None:
    assert list(plan(StackSettings(cloud="none"))) == ["webhook", "extender"]


@pytest.mark.parametrize(
    ("host", "client"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]")],
)
def test_clients_dial_loopback_for_wildcard_binds(host: str, client: str) -> None:
    assert client_host(host) == client


# --- banner -----------------------------------------------------------------------------------


def endpoints(cwd: Path, provisioner: bool = True) -> Endpoints:
    return Endpoints(
        api_url="http://127.0.0.1:40000",
        kubeconfig=cwd / ".run/kubeconfig",
        webhook_url="https://127.0.0.1:8443",
        extender_url="https://127.0.0.1:8444",
        provisioner_url="http://127.0.0.1:8080" if provisioner else None,
        ca_file=cwd / "certs/out/ca.crt",
        logs_dir=cwd / ".run/logs",
    )


def test_banner_lists_the_urls_and_what_to_try_with_pasteable_paths(tmp_path: Path) -> None:
    examples = Examples(
        admission_review=tmp_path / "deploy/examples/admissionreview-spark-executor.json",
        extender_filter=Path("/elsewhere/extender-filter.json"),
        scenario=tmp_path / "scenarios/spark-etl.yaml",
        makefile=tmp_path / "Makefile",
        program=tmp_path / ".venv/bin/spotpack",
    )
    text = banner(
        endpoints(tmp_path),
        cwd=tmp_path,
        embedded=True,
        seed=(tmp_path / "deploy/examples/cluster.yaml",),
        examples=examples,
    )
    lines = text.splitlines()
    assert lines[0] == f"{READY_LINE} on embedded cluster seeded from deploy/examples/cluster.yaml"
    assert lines[-1] == STOP_LINE
    assert "  webhook      https://127.0.0.1:8443/mutate" in lines
    assert "http://127.0.0.1:8080/metrics" in text and "http://127.0.0.1:8080/claims" in text
    assert "  CA file      certs/out/ca.crt" in lines
    assert "  kubectl --kubeconfig .run/kubeconfig get nodes" in lines
    assert (
        "curl -s --cacert certs/out/ca.crt https://127.0.0.1:8443/mutate "
        "-H 'Content-Type: application/json' "
        "-d @deploy/examples/admissionreview-spark-executor.json"
    ) in text
    assert "-d @/elsewhere/extender-filter.json" in text
    assert "https://127.0.0.1:8444/inspect" in text
    assert "  .venv/bin/spotpack simulate scenarios/spark-etl.yaml   (or: make demo)" in lines
    assert "\n".join(EMBEDDED_NOTE) in text
    assert "neither the webhook nor a scheduler" in text and "kwok-style" not in text


@pytest.mark.parametrize(
    ("program", "makefile", "want"),
    [
        ("spotpack", "Makefile", "  spotpack simulate scenarios/spark-etl.yaml   (or: make demo)"),
        (
            Path("/opt/venv/bin/spotpack"),
            None,
            "  /opt/venv/bin/spotpack simulate scenarios/spark-etl.yaml",
        ),
        (
            Path("bin/spotpack"),  # relative to the working directory below
            "/checkout/Makefile",
            "  bin/spotpack simulate scenarios/spark-etl.yaml   (or: make -C /checkout demo)",
        ),
    ],
)
def test_banner_names_spotpack_as_the_shell_finds_it(
    tmp_path: Path, program: str | Path, makefile: str | None, want: str
) -> None:
    if isinstance(program, Path) and not program.is_absolute():
        program = tmp_path / program
    examples = Examples(
        scenario=tmp_path / "scenarios/spark-etl.yaml",
        makefile=(tmp_path / makefile) if makefile else None,
        program=program,
    )
    lines = banner(endpoints(tmp_path), cwd=tmp_path, embedded=True, examples=examples)
    assert want in lines.splitlines()


def test_the_running_spotpack_is_bare_only_when_path_finds_that_very_file(tmp_path: Path) -> None:
    venv = tmp_path / ".venv/bin"
    venv.mkdir(parents=True)
    script = venv / "spotpack"
    script.write_text("#!/bin/sh\n")
    python = str(venv / "python")
    assert spotpack_command(str(script), python, lambda _: None) == script
    assert spotpack_command(str(script), python, lambda _: str(script)) == "spotpack"
    assert spotpack_command(str(script), python, lambda _: "/usr/bin/spotpack") == script
    # run as "python -m ..." or under pytest: the venv's sibling script
    assert spotpack_command("/x/pytest", python, lambda _: None) == script
    assert spotpack_command("/x/pytest", "/nowhere/python", lambda _: None) == "spotpack"


def test_find_examples_finds_the_checkouts_files_and_its_demo_target(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios/spark-etl.yaml").write_text("name: x\n")
    (tmp_path / "Makefile").write_text("help:\n\techo\ndemo: x\n\techo\n")
    found = find_examples((tmp_path,), argv0="/x/pytest", executable="/nowhere/python")
    assert found.scenario == tmp_path / "scenarios/spark-etl.yaml"
    assert found.makefile == tmp_path / "Makefile" and found.program == "spotpack"
    (tmp_path / "Makefile").write_text("help:\n\techo\n")
    assert find_examples((tmp_path,), argv0="/x", executable="/y").makefile is None


def test_banner_against_a_given_cluster_warns_about_the_local_cloud(tmp_path: Path) -> None:
    text = banner(endpoints(tmp_path), cwd=tmp_path, embedded=False)
    assert "on the cluster of .run/kubeconfig" in text
    assert "kwok-style" in text
    assert "spotpack simulate" not in text and "/mutate -H" not in text
    assert "no admission chain" not in text  # a real cluster may well have one
    without = banner(endpoints(tmp_path, provisioner=False), cwd=tmp_path, embedded=False)
    assert "provisioner  not running (--cloud none)" in without
    assert "kwok-style" not in without


# --- flags ------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["run", *argv])


def test_defaults_are_the_documented_ports_and_the_embedded_cluster() -> None:
    settings = settings_from_args(parse(), {})
    assert settings == StackSettings()
    assert settings.embedded


def test_kubeconfig_comes_from_the_flag_then_the_environment() -> None:
    env = {"KUBECONFIG": "/a/first:/b/second"}
    assert settings_from_args(parse(), env).kubeconfig == Path("/a/first")
    assert settings_from_args(parse("--kubeconfig", "/c"), env).kubeconfig == Path("/c")
    assert settings_from_args(parse("--embedded"), env).kubeconfig is None


def test_flags_reach_the_settings() -> None:
    args = parse(
        "--webhook-port", "1", "--extender-port", "2", "--provisioner-port", "3",
        "--api-port", "4", "--seed", "a.yaml", "--seed", "b.yaml", "--no-provisioner",
    )  # fmt: skip
    settings = settings_from_args(args, {})
    assert (settings.webhook_port, settings.extender_port, settings.provisioner_port) == (1, 2, 3)
    assert settings.api_port == 4
    assert settings.seed == (Path("a.yaml"), Path("b.yaml"))
    assert settings.cloud == "none"


def test_a_given_cluster_gets_no_fake_nodes_unless_the_local_cloud_is_asked_for() -> None:
    env = {"KUBECONFIG": "/a/kubeconfig"}
    assert settings_from_args(parse(), env).cloud == "none"
    assert settings_from_args(parse("--cloud", "local"), env).cloud == "local"
    assert settings_from_args(parse(), {}).cloud == "local"
    assert settings_from_args(parse("--embedded"), env).cloud == "local"
