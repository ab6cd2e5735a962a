"""The real gunicorn server started by ``spotpack.serving.serve``, over TLS on loopback.

Each server runs in its own process group (``tls_app.py`` in this directory)
and is stopped in teardown, killed if it does not stop in time. Clients
connect to ``127.0.0.1``, so they send no SNI, like the API server calling a
webhook through a service IP.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from spotpack.errors import ConfigError
from spotpack.serving import ServeSettings, serve, wait_until_serving
from spotpack.tls import certs
from tests.integration.servers import Service, free_port

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
REPO = HERE.parent.parent
RELOAD_MS = 100
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 5.0


@dataclass
class Server(Service):
    """A ``tls_app.py`` server; stopped by a signal to the master alone (as a user would)."""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Ask politely, then kill the whole process group (master and workers)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(STOP_TIMEOUT)


def launch(tmp_path: Path, out: Path | None, **settings: Any) -> Server:
    port = free_port()
    config: dict[str, Any] = {"port": port, "reload_interval_ms": RELOAD_MS, **settings}
    if out is not None:
        config |= {"certfile": str(out / "tls.crt"), "keyfile": str(out / "tls.key")}
    log_path = tmp_path / f"server-{port}.log"
    # The checkout first on the path: the server must run this tree's spotpack.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "tls_app.py"), json.dumps(config)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(proc, port, log_path, out / "ca.crt" if out else None)


def wait_ready(server: Server) -> None:
    scheme = "https" if server.ca_file else "http"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited with {server.proc.returncode}:\n{server.log}")
        try:
            wait_until_serving(f"{scheme}://127.0.0.1:{server.port}/healthz", server.ca_file, 0.5)
        except TimeoutError:
            continue
        return
    pytest.fail(f"server not ready after {START_TIMEOUT}s:\n{server.log}")


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for one test; every one is stopped (or killed) in teardown."""
    started: list[Server] = []

    def _start(out: Path | None, **settings: Any) -> Server:
        server = launch(tmp_path, out, **settings)
        started.append(server)
        wait_ready(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    certs.generate(tmp_path / "certs")
    return tmp_path / "certs"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One TLS server for the read-only tests; rotation tests start their own."""
    tmp = tmp_path_factory.mktemp("shared")
    certs.generate(tmp / "certs")
    server = launch(tmp, tmp / "certs")
    try:
        wait_ready(server)
        yield server
    finally:
        server.stop()


def verified_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def get(conn: http.client.HTTPConnection, path: str = "/") -> dict[str, Any]:
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    data: dict[str, Any] = json.loads(body)
    return data


def peer_serial(port: int, ca_file: Path) -> int:
    """A new connection and handshake; the serial of the certificate the server sent."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw,
        verified_context(ca_file).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def worker_pid(server: Server) -> int:
    assert server.ca_file is not None
    conn = http.client.HTTPSConnection(
        "127.0.0.1", server.port, timeout=IO_TIMEOUT, context=verified_context(server.ca_file)
    )
    try:
        pid: int = get(conn)["pid"]
        return pid
    finally:
        conn.close()


def wait_for_serial(server: Server, expected: int, within: float) -> float:
    """Poll with fresh connections until the server presents ``expected``; return the delay."""
    assert server.ca_file is not None
    began = time.monotonic()
    seen = None
    while time.monotonic() - began < within:
        seen = peer_serial(server.port, server.ca_file)
        if seen == expected:
            return time.monotonic() - began
        time.sleep(0.02)
    pytest.fail(f"still serving serial {seen:x}, not {expected:x}, after {within}s")


def test_client_that_trusts_the_ca_succeeds(shared: Server) -> None:
    assert shared.ca_file is not None
    conn = http.client.HTTPSConnection(
        "127.0.0.1", shared.port, timeout=IO_TIMEOUT, context=verified_context(shared.ca_file)
    )
    try:
        assert get(conn)["scheme"] == "https"
        assert isinstance(conn.sock, ssl.SSLSocket)
        assert conn.sock.selected_alpn_protocol() in (None, "http/1.1")
    finally:
        conn.close()


def test_client_without_the_ca_fails_verification(shared: Server) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", shared.port, timeout=IO_TIMEOUT, context=ssl.create_default_context()
    )
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            conn.request("GET", "/")
    finally:
        conn.close()


def legacy_client(max_version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client willing to speak TLS 1.0/1.1, so any refusal comes from the server."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        client.set_ciphers("DEFAULT:@SECLEVEL=0")
        client.minimum_version = ssl.TLSVersion.TLSv1
        client.maximum_version = max_version
    return client


def handshake_version(port: int, client: ssl.SSLContext) -> str | None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw,
        client.wrap_socket(raw) as tls,
    ):
        return tls.version()


def test_tls_1_1_and_lower_are_refused(shared: Server) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls11 = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError, match="TLSV1_ALERT_PROTOCOL_VERSION"):
        handshake_version(shared.port, legacy_client(tls11))
    # The same permissive client gets TLS 1.2, so the refusal above was the server's.
    assert handshake_version(shared.port, legacy_client(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


def test_keep_alive_reuses_one_connection(shared: Server) -> None:
    assert shared.ca_file is not None
    conn = http.client.HTTPSConnection(
        "127.0.0.1", shared.port, timeout=IO_TIMEOUT, context=verified_context(shared.ca_file)
    )
    try:
        first = get(conn)
        sock = conn.sock
        answers = [get(conn) for _ in range(25)]
        assert conn.sock is sock, "http.client reconnected: the server closed the connection"
    finally:
        conn.close()
    assert {a["remote_port"] for a in answers} == {first["remote_port"]}
    assert {a["pid"] for a in answers} == {first["pid"]}


def test_rotation_is_served_without_a_restart(start: Callable[..., Server], out: Path) -> None:
    server = start(out)
    old_serial = certs.load_certificate(out / "tls.crt").serial_number
    assert peer_serial(server.port, out / "ca.crt") == old_serial
    pid_before = worker_pid(server)

    new_serial = certs.generate(out).serial
    delay = wait_for_serial(server, new_serial, within=RELOAD_MS / 1000 + 3)

    assert delay < RELOAD_MS / 1000 + 1
    assert worker_pid(server) == pid_before
    assert server.proc.poll() is None
    assert "reloaded certificate" in server.log


def test_corrupt_files_during_rotation_keep_the_old_certificate(
    start: Callable[..., Server], out: Path
) -> None:
    server = start(out)
    old_serial = certs.load_certificate(out / "tls.crt").serial_number
    pid_before = worker_pid(server)

    certs.write_atomic(out / "tls.crt", b"-----BEGIN CERTIFICATE-----\ntruncated", 0o644)
    deadline = time.monotonic() + 5 * RELOAD_MS / 1000
    while time.monotonic() < deadline:
        assert peer_serial(server.port, out / "ca.crt") == old_serial
        time.sleep(0.02)
    assert "still serving the previous certificate" in server.log

    new_serial = certs.generate(out).serial  # repaired files are picked up again
    wait_for_serial(server, new_serial, within=RELOAD_MS / 1000 + 3)
    assert worker_pid(server) == pid_before


def test_plain_http_mode(start: Callable[..., Server]) -> None:
    server = start(None)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=IO_TIMEOUT)
    try:
        assert get(conn)["scheme"] == "http"
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_give_a_clean_exit(start: Callable[..., Server], out: Path, sig: int) -> None:
    server = start(out)
    assert server.stop(sig) == 0
    assert "Shutting down" in server.log


def test_port_in_use_is_a_one_line_config_error(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        settings = ServeSettings(
            port=port,
            certfile=out / "tls.crt",
            keyfile=out / "tls.key",
            env_prefix="SPOTPACK_WEBHOOK_",
        )
        with pytest.raises(ConfigError) as err:
            serve("tls_app:create_app()", settings)
    assert str(err.value) == f"port {port} on 127.0.0.1 is in use; set SPOTPACK_WEBHOOK_PORT"


def test_unreadable_certificate_is_a_config_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    missing = tmp_path / "nope.crt"
    settings = ServeSettings(port=free_port(), certfile=missing, keyfile=tmp_path / "nope.key")
    with pytest.raises(ConfigError, match=f"{missing} does not exist.*SPOTPACK_CERT_FILE"):
        serve("tls_app:create_app()", settings)


def test_unknown_app_module_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="app module 'no_such_module_xyz'"):
        serve("no_such_module_xyz:create_app()", ServeSettings(port=free_port()))


def test_half_a_tls_configuration_is_refused(out: Path) -> None:
    with pytest.raises(ValueError, match="SPOTPACK_CERT_FILE and SPOTPACK_KEY_FILE"):
        ServeSettings(certfile=out / "tls.crt")


def test_wait_until_serving_times_out_with_the_last_error() -> None:
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not answer within 0\.3s"):
        wait_until_serving(f"http://127.0.0.1:{free_port()}/healthz", None, 0.3)
    assert time.monotonic() - began < 2
