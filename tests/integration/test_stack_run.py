"""``spotpack run`` as users run it: one process, three services, real TLS, Ctrl-C.

Each test starts ``python -m spotpack.cli run`` on free ports with its own
certificates and work directory, talks to the services over loopback, then
signals it and checks that every child process group is gone.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotpack.devcluster import DevCluster
from spotpack.stack import Stack, StackSettings
from spotpack.stack.banner import STOP_LINE
from spotpack.stack.children import Child
from spotpack.stack.errors import ServiceError
from tests.extender.support import gpu_node
from tests.integration.servers import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
START_TIMEOUT = 45.0
STOP_TIMEOUT = 30.0
EXAMPLES = REPO / "deploy" / "examples"


class RunProcess:
    """A ``spotpack run`` child with its stdout collected line by line."""

    def __init__(self, args: list[str], tmp: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTPACK_")}
        env.pop("KUBECONFIG", None)
        env["PYTHONPATH"] = str(REPO)
        self.stderr_path = tmp / "run.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spotpack.cli", "run", *args],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line == STOP_LINE:
                self.ready.set()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready.wait(0.2):
            code = self.proc.poll()
            assert code is None, f"spotpack run exited with {code}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no banner in {START_TIMEOUT}s:\n{self.stderr}"
        return "\n".join(self.lines)

    def service_groups(self) -> list[int]:
        """Process groups of the services: each child is a session leader (pgid == pid)."""
        groups = [os.getpgid(pid) for pid in children_of(self.proc.pid)]
        assert all(g != os.getpgid(self.proc.pid) for g in groups), "a child shares our group"
        return groups

    def kill(self) -> None:
        """Last resort teardown for a failed test: the run and every service group."""
        for pgid in self.service_groups_safe():
            _killpg(pgid, signal.SIGKILL)
        _killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        """Kill if still running, then close the stdout pipe (after the reader drained it)."""
        if self.proc.poll() is None:
            self.kill()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def service_groups_safe(self) -> list[int]:
        try:
            return [os.getpgid(pid) for pid in children_of(self.proc.pid)]
        except ProcessLookupError:
            return []


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@pytest.fixture
def ports() -> dict[str, int]:
    return {"webhook": free_port(), "extender": free_port(), "provisioner": free_port()}


def run_args(ports: dict[str, int], tmp: Path, *extra: str) -> list[str]:
    return [
        "--webhook-port",
        str(ports["webhook"]),
        "--extender-port",
        str(ports["extender"]),
        "--provisioner-port",
        str(ports["provisioner"]),
        "--certs-dir",
        str(tmp / "certs"),
        "--workdir",
        str(tmp / "run"),
        *extra,
    ]


@pytest.fixture
def started(request: pytest.FixtureRequest) -> Iterator[list[RunProcess]]:
    """Processes a test starts; killed hard if the test left them running."""
    runs: list[RunProcess] = []
    yield runs
    for run in runs:
        run.close()


def post(port: int, path: str, body: bytes, ca_file: Path) -> dict:
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, data
        return json.loads(data)
    finally:
        conn.close()


def filter_body(names: list[str]) -> bytes:
    body = json.loads((EXAMPLES / "extender-filter.json").read_text())
    body["NodeNames"] = names
    return json.dumps(body).encode()


def stop_and_check(run: RunProcess, groups: list[int], signum: int = signal.SIGINT) -> int:
    run.proc.send_signal(signum)
    code = run.proc.wait(STOP_TIMEOUT)
    left = [g for g in groups if group_alive(g)]
    assert not left, f"process groups still alive after exit: {left}"
    return code


def test_embedded_cluster_serves_all_three_and_stops_on_ctrl_c(
    tmp_path: Path, ports: dict[str, int], started: list[RunProcess]
) -> None:
    run = RunProcess(run_args(ports, tmp_path), tmp_path)
    started.append(run)
    text = run.wait_ready()
    ca_file = tmp_path / "certs" / "ca.crt"
    kubeconfig = tmp_path / "run" / "kubeconfig"
    assert f"https://127.0.0.1:{ports['webhook']}/mutate" in text
    assert f"http://127.0.0.1:{ports['provisioner']}/claims" in text
    assert str(ca_file) in text and str(kubeconfig) in text
    groups = run.service_groups()
    assert len(groups) == 3

    # a Spark executor through the webhook over TLS: a patch that prefers spot
    review = (EXAMPLES / "admissionreview-spark-executor.json").read_bytes()
    response = post(ports["webhook"], "/mutate", review, ca_file)["response"]
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    assert "karpenter.sh/capacity-type" in json.dumps(patch)

    # the extender sees the seeded nodes: GPU nodes pass, a CPU node cannot take a GPU pod
    names = ["gpu-spot-a10g-1", "gpu-od-t4-1", "od-m5-1"]
    result = post(ports["extender"], "/filter", filter_body(names), ca_file)
    assert set(result["NodeNames"]) == {"gpu-spot-a10g-1", "gpu-od-t4-1"}, result
    assert "od-m5-1" in result["FailedAndUnresolvableNodes"]

    # the embedded API through the kubeconfig it wrote
    from kubernetes import client

    from spotpack.kube.config import load_api_client

    api = load_api_client(str(kubeconfig))
    try:
        nodes = {n.metadata.name for n in client.CoreV1Api(api).list_node().items}
    finally:
        api.close()
    assert {"od-m5-1", "spot-c5-1", "gpu-spot-a10g-4"} <= nodes

    # the provisioner answers on plain HTTP
    conn = http.client.HTTPConnection("127.0.0.1", ports["provisioner"], timeout=5)
    conn.request("GET", "/claims")
    assert conn.getresponse().status == 200
    conn.close()

    assert stop_and_check(run, groups) == 0, run.stderr
    assert "Traceback" not in run.stderr


def test_services_stop_when_spotpack_run_is_killed(
    tmp_path: Path, ports: dict[str, int], started: list[RunProcess]
) -> None:
    """SIGKILL gives ``spotpack run`` no chance to clean up: the kernel signals the
    services (parent-death signal), and they stop on their own."""
    run = RunProcess(run_args(ports, tmp_path, "--cloud", "none"), tmp_path)
    started.append(run)
    run.wait_ready()
    groups = run.service_groups()
    assert len(groups) == 2
    run.proc.kill()
    run.proc.wait(STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while [g for g in groups if group_alive(g)]:
        assert time.monotonic() < deadline, "services outlived a killed spotpack run"
        time.sleep(0.1)


def test_kubeconfig_mode_uses_that_cluster_and_reports_a_dead_service(
    tmp_path: Path, ports: dict[str, int], started: list[RunProcess]
) -> None:
    with DevCluster() as cluster:
        cluster.store.create("nodes", gpu_node("mine-gpu-7", cards=2))
        kubeconfig = cluster.write_kubeconfig(tmp_path / "theirs.kubeconfig")
        run = RunProcess(
            run_args(ports, tmp_path, "--kubeconfig", str(kubeconfig), "--cloud", "none"),
            tmp_path,
        )
        started.append(run)
        text = run.wait_ready()
        assert cluster.url in text
        assert not (tmp_path / "run" / "kubeconfig").exists(), "no embedded cluster"
        assert "not running (--cloud none)" in text
        groups = run.service_groups()
        assert len(groups) == 2

        ca_file = tmp_path / "certs" / "ca.crt"
        result = post(ports["extender"], "/filter", filter_body(["mine-gpu-7", "od-m5-1"]), ca_file)
        assert result["NodeNames"] == ["mine-gpu-7"], result
        assert "od-m5-1" not in json.dumps(result["NodeNames"])

        # a service that dies on its own: exit 1, named, its log pointed at, the rest stopped
        extender_pid = next(
            pid
            for pid in children_of(run.proc.pid)
            if "extender" in Path(f"/proc/{pid}/cmdline").read_text()
        )
        os.killpg(extender_pid, signal.SIGKILL)
        code = run.proc.wait(STOP_TIMEOUT)
        assert code == 1, run.stderr
        assert "extender exited unexpectedly" in run.stderr
        assert str(tmp_path / "run" / "logs" / "extender.log") in run.stderr
        assert not [g for g in groups if group_alive(g)]


def test_port_in_use_is_one_line_and_starts_nothing(
    tmp_path: Path, ports: dict[str, int], started: list[RunProcess]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["extender"]))
        busy.listen()
        run = RunProcess(run_args(ports, tmp_path), tmp_path)
        started.append(run)
        code = run.proc.wait(30)
    assert code != 0
    lines = run.stderr.strip().splitlines()
    assert lines == [
        f"spotpack run: port {ports['extender']} (extender, --extender-port) is in use; "
        "stop what uses it or pick another with --extender-port"
    ]
    assert not (tmp_path / "run").exists() and not (tmp_path / "certs").exists()


def test_a_service_that_never_gets_ready_stops_the_others(
    tmp_path: Path, ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[Child] = []
    real_spawn = Child.spawn

    def spy(*args, **kwargs) -> Child:
        child = real_spawn(*args, **kwargs)
        spawned.append(child)
        return child

    monkeypatch.setattr(Child, "spawn", spy)
    settings = StackSettings(
        webhook_port=ports["webhook"],
        extender_port=ports["extender"],
        provisioner_port=ports["provisioner"],
        certs_dir=tmp_path / "certs",
        workdir=tmp_path / "run",
        cloud="none",
        extra_env={"extender": {"SPOTPACK_EXTENDER_THREADS": "0"}},
        ready_timeout=40,
    )
    stack = Stack(settings, cwd=REPO)
    with pytest.raises(ServiceError) as failed:
        stack.start()
    assert failed.value.service == "extender"
    assert "SPOTPACK_EXTENDER_THREADS" in str(failed.value)
    assert stack.pids == {}
    assert [c.name for c in spawned] == ["webhook", "extender"]
    assert not [c.name for c in spawned if group_alive(c.pid)]
    assert all(c.exit_code() is not None for c in spawned)
