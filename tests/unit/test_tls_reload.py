"""``ReloadingContext`` against real handshakes on loopback, in-process.

Clients connect to ``127.0.0.1`` with ``server_hostname=None``: no SNI is
sent, which is how the API server reaches a webhook by IP. The certificate
switch must still happen, because the SNI callback runs for every ClientHello.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from spotpack.errors import CertificateError
from spotpack.tls import certs
from spotpack.tls.reload import ReloadingContext, build_server_context

TIMEOUT = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class HandshakeServer:
    """Accepts connections and completes a TLS handshake on each, one thread per client."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.server_names: list[str | None] = []
        self._spy_on_sni(context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _spy_on_sni(self, context: ssl.SSLContext) -> None:
        """Record what the SNI callback is called with, then let it do its job."""
        callback = context.sni_callback
        assert callback is not None

        def spy(conn: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
            self.server_names.append(name)
            # typeshed says str, but OpenSSL passes None when the client sent no SNI
            return callback(conn, name, ctx)  # type: ignore[arg-type]

        context.sni_callback = spy

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handshake, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # wait for the client to hang up
        except (OSError, ssl.SSLError):
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self.listener.close()


def peer_serial(port: int, ca_file: Path, sni: str | None = None) -> int:
    """Handshake from scratch (no session reuse) and return the server certificate serial."""
    client = ssl.create_default_context(cafile=str(ca_file))
    client.check_hostname = sni is not None
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        client.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def out(tmp_path: Path) -> Path:
    certs.generate(tmp_path)
    return tmp_path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reloading(out: Path, clock: FakeClock) -> ReloadingContext:
    return ReloadingContext(out / "tls.crt", out / "tls.key", interval_ms=500, clock=clock)


@pytest.fixture
def server(reloading: ReloadingContext) -> Iterator[HandshakeServer]:
    srv = HandshakeServer(reloading.context)
    yield srv
    srv.close()


def serial_of(out: Path) -> int:
    return certs.load_certificate(out / "tls.crt").serial_number


def test_policy_is_tls12_minimum_with_http11_alpn(out: Path) -> None:
    context = build_server_context(out / "tls.crt", out / "tls.key")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert all(c["protocol"] in ("TLSv1.2", "TLSv1.3") for c in context.get_ciphers())


def test_rotation_is_served_without_sni_after_the_interval(
    out: Path, clock: FakeClock, reloading: ReloadingContext, server: HandshakeServer
) -> None:
    old = serial_of(out)
    assert peer_serial(server.port, out / "ca.crt") == old

    new = certs.generate(out).serial
    clock.now += 0.1  # inside the interval: the files are not even stat'ed yet
    assert peer_serial(server.port, out / "ca.crt") == old
    clock.now += 0.5
    assert peer_serial(server.port, out / "ca.crt") == new

    assert server.server_names == [None, None, None]
    assert reloading.reloads == 1


def test_rotation_is_served_with_sni_too(
    out: Path, clock: FakeClock, server: HandshakeServer
) -> None:
    new = certs.generate(out).serial
    clock.now += 1
    assert peer_serial(server.port, out / "ca.crt", sni="localhost") == new
    assert server.server_names == ["localhost"]


@pytest.mark.parametrize(
    "corrupt",
    ["garbage_cert", "foreign_key", "missing_cert", "empty_key"],
)
def test_broken_files_keep_the_previous_certificate(
    out: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
    reloading: ReloadingContext,
    server: HandshakeServer,
    caplog: pytest.LogCaptureFixture,
    corrupt: str,
) -> None:
    old = serial_of(out)
    other = tmp_path_factory.mktemp("other")
    certs.generate(other)
    if corrupt == "garbage_cert":
        certs.write_atomic(out / "tls.crt", b"-----BEGIN CERTIFICATE-----\nxx\n", 0o644)
    elif corrupt == "foreign_key":
        certs.write_atomic(out / "tls.key", (other / "tls.key").read_bytes(), 0o600)
    elif corrupt == "missing_cert":
        (out / "tls.crt").unlink()
    else:
        certs.write_atomic(out / "tls.key", b"", 0o600)

    with caplog.at_level(logging.ERROR, logger="spotpack.tls.reload"):
        for _ in range(3):
            clock.now += 1
            assert peer_serial(server.port, out / "ca.crt") == old
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "one error per broken state, not one per check"
    assert "still serving the previous certificate" in errors[0].getMessage()
    assert reloading.reloads == 0

    new = certs.generate(out).serial  # fixing the files recovers without a restart
    clock.now += 1
    assert peer_serial(server.port, out / "ca.crt") == new


def test_reload_now_skips_the_interval(out: Path, reloading: ReloadingContext) -> None:
    assert reloading.reload_now() is False
    certs.generate(out)
    assert reloading.reload_now() is True
    assert reloading.reload_now() is False


def test_concurrent_handshakes_during_rotation_all_succeed(out: Path) -> None:
    reloading = ReloadingContext(out / "tls.crt", out / "tls.key", interval_ms=0)
    server = HandshakeServer(reloading.context)
    serials: list[int] = []
    failures: list[BaseException] = []

    def client() -> None:
        for _ in range(10):
            try:
                serials.append(peer_serial(server.port, out / "ca.crt"))
            except BaseException as exc:  # collected, asserted below
                failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        issued = [certs.generate(out).serial for _ in range(3)]
        for thread in threads:
            thread.join(TIMEOUT * 4)
    finally:
        server.close()
    assert failures == []
    assert len(serials) == 60
    assert peer_serial_after(reloading, out) == issued[-1]


def peer_serial_after(reloading: ReloadingContext, out: Path) -> int:
    server = HandshakeServer(reloading.context)
    try:
        return peer_serial(server.port, out / "ca.crt")
    finally:
        server.close()


def test_missing_files_at_start_are_a_certificate_error(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=f"{tmp_path / 'tls.crt'} does not exist"):
        ReloadingContext(tmp_path / "tls.crt", tmp_path / "tls.key")


def test_negative_interval_is_refused(out: Path) -> None:
    with pytest.raises(ValueError, match="interval_ms"):
        ReloadingContext(out / "tls.crt", out / "tls.key", interval_ms=-1)
