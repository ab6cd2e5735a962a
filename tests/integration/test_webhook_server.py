"""The webhook as users run it: ``spotpack webhook``, gunicorn over TLS on loopback.

A client that verifies the generated CA sends golden AdmissionReviews; the
serving certificate is rotated while the server runs.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import jsonpatch
import pytest
from cryptography import x509

from spotpack.tls import certs
from tests.integration.servers import Service, free_port, start
from tests.pods import golden, golden_bytes

pytestmark = pytest.mark.integration
HEADERS = {"Content-Type": "application/json"}
CAP = 64 * 1024


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    certs.generate(out)
    return out


@pytest.fixture(scope="module")
def webhook(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    env = {
        "SPOTPACK_WEBHOOK_HOST": "127.0.0.1",
        "SPOTPACK_WEBHOOK_PORT": str(port),
        "SPOTPACK_WEBHOOK_CERT_FILE": str(tls_dir / "tls.crt"),
        "SPOTPACK_WEBHOOK_KEY_FILE": str(tls_dir / "tls.key"),
        "SPOTPACK_WEBHOOK_NAMESPACE_DEFAULTS": "false",
        "SPOTPACK_WEBHOOK_WORKERS": "1",
        "SPOTPACK_WEBHOOK_MAX_BODY_BYTES": str(CAP),
    }
    log = tmp_path_factory.mktemp("logs") / "webhook.log"
    service = start(["webhook"], env, port, log, tls_dir / "ca.crt")
    yield service
    assert service.stop() == 0


@pytest.fixture
def connect(webhook: Service) -> Iterator:
    """Connections to the webhook, all closed after the test."""
    opened: list[http.client.HTTPConnection] = []

    def make() -> http.client.HTTPConnection:
        opened.append(webhook.connection())
        return opened[-1]

    yield make
    for conn in opened:
        conn.close()


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    conn.request("POST", "/mutate", body=body, headers=HEADERS)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def test_golden_review_over_verified_tls(connect) -> None:
    status, body = post(connect(), golden_bytes("admissionreview-spark-driver.json"))
    assert status == 200
    request = golden("admissionreview-spark-driver.json")["request"]
    assert body["response"]["uid"] == request["uid"]
    pod = jsonpatch.apply_patch(
        request["object"], json.loads(base64.b64decode(body["response"]["patch"]))
    )
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
            ]
        }
    ]


def test_client_without_the_ca_is_refused(webhook: Service) -> None:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", webhook.port, context=ssl.create_default_context(), timeout=5
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/healthz")
    conn.close()


def test_keep_alive_serves_many_reviews_on_one_connection(connect) -> None:
    conn = connect()
    conn.connect()
    local = conn.sock.getsockname()
    for name in (
        "admissionreview-spark-driver.json",
        "admissionreview-spark-executor.json",
        "admissionreview-gpu-pod.json",
    ) * 5:
        status, body = post(conn, golden_bytes(name))
        assert status == 200 and body["response"]["allowed"] is True
    assert conn.sock.getsockname() == local, "the connection was not reused"


def test_bad_bodies_over_the_wire(connect) -> None:
    conn = connect()
    assert post(conn, b"{not json")[0] == 400
    status, body = post(conn, b"x" * (CAP + 1))
    assert status == 413 and f"exceeds {CAP} bytes" in body["message"]
    conn = connect()
    conn.putrequest("POST", "/mutate")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"y" * (CAP // 2)
    for _ in range(3):
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 413


def test_metrics_and_readiness(connect) -> None:
    conn = connect()
    conn.request("GET", "/readyz")
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read()) == {"status": "ready"}
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    assert 'spotpack_webhook_admissions_total{result="patched",role="spark/driver"}' in text


def _served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    conn.connect()
    try:
        der = conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()
    return x509.load_der_x509_certificate(der).serial_number


def test_certificate_rotation_without_restart(webhook: Service, tls_dir: Path, connect) -> None:
    before = _served_serial(webhook.port, tls_dir / "ca.crt")
    issued = certs.generate(tls_dir)
    assert issued.ca_reused and issued.serial != before
    deadline = time.monotonic() + 10
    while _served_serial(webhook.port, tls_dir / "ca.crt") != issued.serial:
        assert time.monotonic() < deadline, "the new certificate was not served"
        time.sleep(0.2)
    assert webhook.proc.poll() is None
    status, _ = post(connect(), golden_bytes("admissionreview-spark-executor.json"))
    assert status == 200


def admissions_total(conn: http.client.HTTPConnection) -> float:
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    assert response.status == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("spotpack_webhook_admissions_total{")
    )


def test_two_workers_report_the_whole_servers_figures(tls_dir: Path, tmp_path: Path) -> None:
    """Reviews answered by either worker show in every scrape, whichever worker answers it,
    and the workers' metric files go away with the server."""
    port = free_port()
    env = {
        "SPOTPACK_WEBHOOK_HOST": "127.0.0.1",
        "SPOTPACK_WEBHOOK_PORT": str(port),
        "SPOTPACK_WEBHOOK_CERT_FILE": str(tls_dir / "tls.crt"),
        "SPOTPACK_WEBHOOK_KEY_FILE": str(tls_dir / "tls.key"),
        "SPOTPACK_WEBHOOK_NAMESPACE_DEFAULTS": "false",
        "SPOTPACK_WEBHOOK_WORKERS": "2",
        "TMPDIR": str(tmp_path),
    }
    service = start(["webhook"], env, port, tmp_path / "webhook.log", tls_dir / "ca.crt")
    try:
        review = golden_bytes("admissionreview-spark-driver.json")
        for _ in range(24):  # a new connection each: both workers take some
            conn = service.connection()
            assert post(conn, review)[0] == 200
            conn.close()
        totals = []
        for _ in range(6):
            conn = service.connection()
            totals.append(admissions_total(conn))
            conn.close()
        assert totals == [24.0] * 6
        assert list(tmp_path.glob("spotpack-webhook-metrics-*"))
    finally:
        assert service.stop() == 0
    assert not list(tmp_path.glob("spotpack-webhook-metrics-*"))
