"""``spotpack provisioner --local`` as users run it: a process, its endpoints, a clean SIGTERM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.servers import free_port, start

pytestmark = pytest.mark.integration


def test_local_mode_serves_probes_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "SPOTPACK_PROVISIONER_HOST": "127.0.0.1",
        "SPOTPACK_PROVISIONER_LEASE_DURATION_SECONDS": "3",
        "SPOTPACK_PROVISIONER_RENEW_DEADLINE_SECONDS": "2",
        "SPOTPACK_PROVISIONER_RETRY_PERIOD_SECONDS": "0.5",
    }
    service = start(
        ["provisioner", "--local", "--port", str(port)], env, port, tmp_path / "log", None
    )
    try:
        conn = service.connection()
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        assert "spotpack_provisioner_claims" in body
        conn.request("GET", "/claims")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        os.killpg(service.proc.pid, signal.SIGTERM)
        code = service.proc.wait(15)
    assert code == 0, service.log
    assert "released the lease" in service.log and "provisioner stopped" in service.log
    assert "Traceback" not in service.log
