"""Live catalog refresh against moto's EC2 server mode, over real HTTP on loopback.

moto answers DescribeInstanceTypes from its dump of EC2 and returns a
placeholder spot price (0.00001, timestamp 2006-01-02) for every type and zone
it knows; that is fine: what matters is that what was read is tagged ``live``
and what was not (p3, absent from moto's dump) keeps its ``estimate`` tag.
moto never throttles, so a thin fault layer in this test (a botocore
``before-send`` hook) answers DescribeSpotPriceHistory with EC2's throttling
error, to show it surfaces as one CloudError with a clear message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from spotpack.catalog import load_catalog
from spotpack.catalog.model import SOURCES
from spotpack.catalog.refresh import refresh_from
from spotpack.cli import main
from spotpack.cloud.aws_catalog import AwsCatalogSource, read_advisor
from spotpack.errors import CloudError
from tests.integration.moto_server import FAKE_ENV, Moto, running_moto
from tests.integration.servers import free_port

pytestmark = pytest.mark.integration

REGION = "us-east-1"
STOP_TIMEOUT = 10.0
THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>fault-layer</RequestID></Response>"
)
ADVISOR = {
    "global_rate": "<10%",
    "instance_types": {"g4dn.xlarge": {"emr": True, "cores": 4, "ram_gb": 16.0}},
    "ranges": [
        {"index": 0, "label": "<5%", "dots": 0, "max": 5},
        {"index": 1, "label": "5-10%", "dots": 1, "max": 11},
        {"index": 2, "label": "10-15%", "dots": 2, "max": 16},
        {"index": 3, "label": "15-20%", "dots": 3, "max": 22},
        {"index": 4, "label": ">20%", "dots": 4, "max": 100},
    ],
    "spot_advisor": {
        REGION: {"Linux": {"g4dn.xlarge": {"s": 71, "r": 0}, "m5.large": {"s": 60, "r": 3}}}
    },
}


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only: no profile or config file of the machine can leak in."""
    for key in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def advisor_file(tmp_path: Path) -> Path:
    path = tmp_path / "spot-advisor-data.json"
    path.write_text(json.dumps(ADVISOR))
    return path


@pytest.mark.usefixtures("aws_env")
def test_refresh_over_http_tags_live_figures_and_keeps_the_rest(
    moto: Moto, tmp_path: Path, advisor_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "catalog.json"
    argv = ["catalog", "refresh", "--region", REGION, "--out", str(out)]
    argv += ["--endpoint-url", moto.url, "--advisor", str(advisor_file)]
    assert main(argv) == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().out

    before = load_catalog()
    after = load_catalog(out)
    assert after.names == before.names

    # Specs came back from DescribeInstanceTypes (moto's dump of EC2).
    assert after.gpu_spec("g4dn.xlarge") == before.gpu_spec("g4dn.xlarge")
    g4 = after.instance("g4dn.xlarge")
    assert g4 is not None and (g4.vcpu, g4.memory_mib, g4.arch) == (4, 16384, "amd64")
    c6g = after.instance("c6g.large")
    assert c6g is not None and c6g.arch == "arm64"

    # Spot prices: moto's placeholder, tagged live, per zone, with its timestamp.
    zone = after.spot_offer("g4dn.xlarge", "us-east-1a")
    assert zone is not None
    assert (zone.price, zone.source, zone.as_of) == (0.00001, "live", "2006-01-02T15:04:05Z")
    # The bucket came from the advisor file, so it is live too.
    assert (zone.bucket, zone.risk_source) == (0, "live")
    region = after.spot_offer("g4dn.xlarge", REGION)
    assert region is not None and region.source == "live"

    # Not in the advisor: the price is live, the bucket keeps its estimate tag.
    g5 = after.spot_offer("g5.xlarge", "us-east-1b")
    assert g5 is not None and (g5.source, g5.risk_source) == ("live", "estimate")

    # p3 is absent from moto's dump: its figures and specs are untouched and still say estimate.
    assert after.instance("p3.2xlarge") == before.instance("p3.2xlarge")
    p3 = after.spot_offer("p3.2xlarge", "us-east-1a")
    assert p3 is not None and p3.source == "estimate"

    offers = [o for t in after.all() for o in t.spot.values()]
    assert all(o.source in SOURCES and o.risk_source in SOURCES for o in offers)
    assert {o.source for o in offers} == {"live", "estimate"}
    assert "us-east-1a" in after.regions[REGION]
    assert after.provenance[:-1] == before.provenance
    assert f"in {REGION}" in after.provenance[-1] and str(advisor_file) in after.provenance[-1]


class _AdvisorHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(ADVISOR).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_advisor_feed_can_come_from_a_url(advisor_file: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AdvisorHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/spot-advisor-data.json"
        assert read_advisor(url, timeout=5.0) == read_advisor(str(advisor_file)) == ADVISOR
    finally:
        server.shutdown()
        server.server_close()
        thread.join(STOP_TIMEOUT)


class _Raw:
    """Just enough of a urllib3 response for botocore to read a canned body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.mark.usefixtures("aws_env")
def test_throttling_surfaces_as_one_cloud_error(moto: Moto, tmp_path: Path) -> None:
    calls: list[str] = []

    def throttle(request: Any, **_: Any) -> AWSResponse:
        calls.append(request.url)
        return AWSResponse(request.url, 503, {}, _Raw(THROTTLED))

    out = tmp_path / "catalog.json"
    with AwsCatalogSource(REGION, endpoint_url=moto.url, max_attempts=2) as source:
        source.client.meta.events.register("before-send.ec2.DescribeSpotPriceHistory", throttle)
        assert source.instance_specs(["g4dn.xlarge"])  # only the one operation is faulted
        with pytest.raises(CloudError) as info:
            refresh_from(load_catalog(), source, now=datetime.now(UTC))
    error = info.value
    assert (error.code, error.retryable) == ("RequestLimitExceeded", True)
    message = str(error)
    assert message.startswith(
        "EC2 DescribeSpotPriceHistory failed after 1 retries: RequestLimitExceeded"
    )
    assert "fix: EC2 is throttling" in message
    assert len(calls) == 2  # botocore retried once, as configured, then gave up
    assert error.__cause__ is not None  # chained, not swallowed
    assert not out.exists()


@pytest.mark.usefixtures("aws_env")
def test_unreachable_endpoint_is_a_retryable_cloud_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    source = AwsCatalogSource(REGION, endpoint_url=url, max_attempts=1, connect_timeout=2.0)
    with source, pytest.raises(CloudError, match="cannot reach the endpoint") as info:
        source.instance_specs(["g4dn.xlarge"])
    assert info.value.retryable


def test_missing_credentials_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: Moto
) -> None:
    for key in [
        *FAKE_ENV,
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    source = AwsCatalogSource(REGION, endpoint_url=moto.url, max_attempts=1)
    with source, pytest.raises(CloudError, match="no usable AWS credentials") as info:
        source.instance_specs(["g4dn.xlarge"])
    assert info.value.code == "NoCredentials"
