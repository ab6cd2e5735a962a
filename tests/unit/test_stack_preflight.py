"""Pre-flight of ``spotpack run``: each problem is one line naming the file or setting and
the fix, and a failed pre-flight starts nothing (no process, no directory, no certificate)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spotpack import cli
from spotpack.errors import ConfigError
from spotpack.stack import Stack, StackSettings
from spotpack.stack.preflight import (
    certs_missing,
    check_certs,
    kubeconfig_server,
    load_seed,
    port_problem,
    preflight,
    resolve_seed,
    server_of,
)
from spotpack.tls.certs import generate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something really listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to start a process."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    generate(out)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(tmp_path: Path, **overrides: object) -> StackSettings:
    values: dict[str, object] = {
        "webhook_port": free_port(),
        "extender_port": free_port(),
        "provisioner_port": free_port(),
        "certs_dir": tmp_path / "certs",
        "workdir": tmp_path / "run",
        **overrides,
    }
    return StackSettings(**values)  # type: ignore[arg-type]


def assert_nothing_started(tmp_path: Path, stack: Stack) -> None:
    assert stack.pids == {}
    assert not (tmp_path / "run").exists()


def one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- ports ------------------------------------------------------------------------------------


def test_port_in_use_names_the_service_the_flag_and_the_fix(
    tmp_path: Path, listening: int, no_processes: None
) -> None:
    stack = Stack(settings(tmp_path, webhook_port=listening), cwd=REPO)
    with pytest.raises(ConfigError) as exc:
        stack.start()
    assert one_line(exc) == (
        f"port {listening} (webhook, --webhook-port) is in use; "
        "stop what uses it or pick another with --webhook-port"
    )
    assert_nothing_started(tmp_path, stack)
    assert not (tmp_path / "certs").exists(), "certificates are made only after every check"


def test_api_port_is_checked_only_for_the_embedded_cluster(
    tmp_path: Path, listening: int, certs: Path
) -> None:
    with pytest.raises(ConfigError, match=r"\(api, --api-port\) is in use"):
        preflight(settings(tmp_path, api_port=listening), cwd=REPO, source_root=None)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(f"https://127.0.0.1:{listening}")))
    checked = preflight(
        settings(tmp_path, api_port=listening, kubeconfig=kubeconfig), cwd=REPO, source_root=None
    )
    assert checked.api_url == f"https://127.0.0.1:{listening}"


def test_a_port_without_a_listener_is_free() -> None:
    assert port_problem("127.0.0.1", free_port()) is None


def test_no_provisioner_means_its_port_is_not_checked(
    tmp_path: Path, listening: int, certs: Path
) -> None:
    checked = preflight(
        settings(tmp_path, provisioner_port=listening, cloud="none"), cwd=REPO, source_root=None
    )
    assert checked.seed


# --- kubeconfig -------------------------------------------------------------------------------

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


def kubeconfig_for(server: str) -> dict[str, object]:
    clusters = [{"name": "c", "cluster": {"server": server}}]
    return {**KUBECONFIG, "clusters": clusters}


def test_an_unreachable_api_server_is_one_line_before_anything_starts(
    tmp_path: Path, certs: Path, no_processes: None
) -> None:
    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{reserved.getsockname()[1]}"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(url)))
        stack = Stack(settings(tmp_path, kubeconfig=kubeconfig), cwd=REPO)
        with pytest.raises(ConfigError) as exc:
            stack.start()
    assert one_line(exc).startswith(
        f"the API server {url} of kubeconfig {kubeconfig} is not reachable ("
    )
    assert "--embedded" in one_line(exc)
    assert_nothing_started(tmp_path, stack)


def test_missing_kubeconfig_names_the_file_and_the_fix(tmp_path: Path, no_processes: None) -> None:
    missing = tmp_path / "nope.kubeconfig"
    stack = Stack(settings(tmp_path, kubeconfig=missing), cwd=REPO)
    with pytest.raises(ConfigError) as exc:
        stack.start()
    assert one_line(exc) == (
        f"kubeconfig {missing} does not exist; fix --kubeconfig (or $KUBECONFIG), "
        "or unset both to run the embedded cluster"
    )
    assert_nothing_started(tmp_path, stack)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("clusters: [unclosed", "is not YAML"),
        ("just a string", "has no cluster server for its current context"),
        (yaml.safe_dump({**KUBECONFIG, "current-context": "other"}), "has no cluster server"),
    ],
)
def test_unusable_kubeconfig_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        kubeconfig_server(path)
    assert one_line(exc).startswith(f"kubeconfig {path} {problem}")


@pytest.mark.parametrize(
    ("doc", "server"),
    [
        (KUBECONFIG, "https://10.0.0.1:6443"),
        ({**KUBECONFIG, "clusters": []}, None),
        ({**KUBECONFIG, "contexts": "bad"}, None),
        ([], None),
    ],
)
def test_server_of_follows_the_current_context(doc: object, server: str | None) -> None:
    assert server_of(doc) == server


# --- certificates -----------------------------------------------------------------------------


def test_missing_or_empty_certs_dir_is_generated_an_existing_one_is_checked(
    tmp_path: Path, certs: Path
) -> None:
    assert certs_missing(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    assert certs_missing(tmp_path / "empty")
    assert not certs_missing(certs)
    check_certs(certs)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("tls.crt", b"not a certificate", "is not a usable PEM certificate"),
        ("ca.crt", b"-----BEGIN CERTIFICATE-----\ngarbage\n", "is not a usable PEM certificate"),
        ("tls.key", b"", "is not a usable PEM private key"),
    ],
)
def test_corrupt_certificate_files_name_the_file_and_the_fix(
    tmp_path: Path, certs: Path, name: str, content: bytes, problem: str, no_processes: None
) -> None:
    (certs / name).write_bytes(content)
    stack = Stack(settings(tmp_path), cwd=REPO)
    with pytest.raises(ConfigError) as exc:
        stack.start()
    fix = (
        f"make a new CA: `spotpack certs --out {certs} --new-ca`"
        if name == "ca.crt"
        else f"regenerate with `spotpack certs --out {certs}` (or `make certs`)"
    )
    assert one_line(exc) == f"{certs / name} {problem}; {fix}"
    assert_nothing_started(tmp_path, stack)
    assert (certs / name).read_bytes() == content, "someone's files are never overwritten"


def test_a_missing_file_in_an_existing_certs_dir_is_reported(tmp_path: Path, certs: Path) -> None:
    (certs / "tls.key").unlink()
    with pytest.raises(ConfigError, match=r"tls\.key is missing; regenerate with"):
        check_certs(certs)


def test_a_key_of_another_pair_is_reported(tmp_path: Path, certs: Path) -> None:
    other = tmp_path / "other"
    generate(other)
    (certs / "tls.key").write_bytes((other / "tls.key").read_bytes())
    with pytest.raises(ConfigError, match=r"tls\.key does not belong to .*tls\.crt"):
        check_certs(certs)


def test_a_serving_cert_from_another_ca_is_reported(tmp_path: Path, certs: Path) -> None:
    other = tmp_path / "other"
    generate(other)
    (certs / "ca.crt").write_bytes((other / "ca.crt").read_bytes())
    with pytest.raises(ConfigError, match=r"tls\.crt was not issued by .*ca\.crt"):
        check_certs(certs)


def test_certs_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "certs"
    path.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory; fix --certs-dir"):
        check_certs(path)


# --- seed -------------------------------------------------------------------------------------


def test_missing_seed_file_names_it_and_the_flag(tmp_path: Path, no_processes: None) -> None:
    missing = tmp_path / "cluster.yaml"
    stack = Stack(settings(tmp_path, seed=(missing,)), cwd=REPO)
    with pytest.raises(ConfigError) as exc:
        stack.start()
    assert one_line(exc) == (
        f"seed file {missing} does not exist; pass existing YAML files with --seed"
    )
    assert_nothing_started(tmp_path, stack)


def test_default_seed_comes_from_the_working_directory_then_the_checkout(tmp_path: Path) -> None:
    assert resolve_seed(None, cwd=REPO, source_root=None) == (
        REPO / "deploy/examples/cluster.yaml",
    )
    assert resolve_seed(None, cwd=tmp_path, source_root=REPO)[0].parent == REPO / "deploy/examples"
    with pytest.raises(ConfigError) as exc:
        resolve_seed(None, cwd=tmp_path, source_root=None)
    assert one_line(exc) == (
        f"no seed files: deploy/examples/*.yaml not found in {tmp_path}; "
        "run from the spotpack checkout or pass --seed FILE"
    )


def test_empty_seed_tuple_is_an_empty_cluster(tmp_path: Path) -> None:
    assert resolve_seed((), cwd=tmp_path, source_root=None) == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: Node\nmetadata: {name: [unclosed\n", "cannot read seed file"),
        ("- a list\n", "a manifest must be a mapping"),
        ("apiVersion: example.com/v1\nkind: Widget\n", "seed kind example.com/v1/Widget"),
    ],
)
def test_unparseable_seed_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_seed([path])
    assert problem in one_line(exc)


def test_the_shipped_seed_parses() -> None:
    manifests = load_seed(resolve_seed(None, cwd=REPO, source_root=None))
    kinds = {m["kind"] for m in manifests}
    assert kinds == {"Namespace", "Node"}


# --- through the command line -----------------------------------------------------------------


def test_cli_prints_one_line_and_exits_non_zero(
    tmp_path: Path, listening: int, capsys: pytest.CaptureFixture[str], no_processes: None
) -> None:
    code = cli.main(
        [
            "run",
            "--extender-port",
            str(listening),
            "--certs-dir",
            str(tmp_path / "certs"),
            "--workdir",
            str(tmp_path / "run"),
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"spotpack run: port {listening} (extender, --extender-port) is in use; "
        "stop what uses it or pick another with --extender-port"
    ]
    assert not (tmp_path / "run").exists()
