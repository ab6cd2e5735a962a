"""moto's server mode for integration tests: a real HTTP EC2/SQS endpoint on loopback.

The same approach as ``test_catalog_refresh.py`` (which keeps its own copy):
``python -m moto.server`` on a free 127.0.0.1 port, in its own process group,
with fake credentials, killed in teardown even when a test fails. Test
modules wrap :func:`running_moto` in a module-scoped fixture and use
:func:`isolate_aws_env` so no profile or config file of the machine leaks in.

Also the thin fault layer: :func:`canned_response` answers one operation with
a body of our choosing (a botocore ``before-send`` hook), because moto never
returns capacity or throttling errors by itself.
"""

from __future__ import annotations

import functools
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.servers import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REGION = "us-east-1"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_LEAKY = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


@dataclass
class Moto:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def reset(self) -> None:
        """Forget every resource (moto's own reset endpoint)."""
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5.0)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()


def _wait_until_serving(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"moto_server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
            conn.request("GET", "/moto-api/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer within {START_TIMEOUT}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT)


@contextmanager
def running_moto(log_dir: Path) -> Iterator[Moto]:
    """Start ``moto.server`` on a free port; stop it (and its group) on exit."""
    port = free_port()
    log = log_dir / "moto.log"
    env = {**os.environ, **FAKE_ENV}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_until_serving(port, proc, log)
        yield Moto(proc, f"http://127.0.0.1:{port}", log)
    finally:
        _stop(proc)


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only: no profile or config file of the machine can leak in."""
    for key in _LEAKY:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)


# --- the fault layer -------------------------------------------------------------------------


class _Raw:
    """Just enough of a urllib3 response for botocore to read a canned body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def answer(request: Any, status: int, body: bytes) -> AWSResponse:
    """A response botocore will parse as if the server had sent it (for ``before-send``)."""
    return AWSResponse(request.url, status, {}, _Raw(body))


def ec2_error(code: str, message: str) -> bytes:
    """An EC2 query-protocol error body."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message>"
        "</Error></Errors><RequestID>fault-layer</RequestID></Response>"
    ).encode()


def canned_response(
    client: Any, operation: str, status: int, body: bytes, *, times: int | None = None
) -> list[str]:
    """Answer ``operation`` on ``client`` with ``body`` (``times`` times, None: always).

    Returns the list the hook appends each faked request's URL to, so a test
    can count how often botocore tried.
    """
    calls: list[str] = []

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        if times is not None and len(calls) >= times:
            return None
        calls.append(request.url)
        return answer(request, status, body)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"before-send.{service}.{operation}", hook)
    return calls


def rewrite_parsed(client: Any, operation: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit ``operation``'s parsed answer after the real call (botocore ``after-call``)."""

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        edit(parsed)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"after-call.{service}.{operation}", hook)


@dataclass
class Network:
    """A VPC with one subnet per zone and an image, as CreateFleet needs."""

    subnets: dict[str, str]
    image_id: str


@functools.cache
def fake_session() -> Any:
    """One boto3 session per test process: botocore loads EC2's large model once per session."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


def make_network(url: str, zones: tuple[str, ...], octet: int) -> Network:
    """Create ``10.<octet>.0.0/16`` with a /24 per zone in the moto server at ``url``."""
    ec2 = fake_session().client("ec2", endpoint_url=url)
    try:
        vpc = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
        subnets = {
            zone: ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.{octet}.{i}.0/24", AvailabilityZone=zone
            )["Subnet"]["SubnetId"]
            for i, zone in enumerate(zones, start=1)
        }
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    finally:
        ec2.close()
    return Network(subnets, image)
