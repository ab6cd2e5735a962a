"""Start the project's own services as real processes on loopback, and stop them.

Each service runs as users run it (``python -m spotpack.cli <service>``) in its
own process group, so teardown can kill master and workers even when a test
fails half-way.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ca_file: Path | None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connection(self, timeout: float = 5.0) -> http.client.HTTPConnection:
        if self.ca_file is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(STOP_TIMEOUT)


def start(command: list[str], env: dict[str, str], port: int, log_path: Path, ca_file: Path | None) -> Service:
    """Run ``spotpack <command>`` and wait until ``/healthz`` answers 200."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spotpack.cli", *command],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(proc, port, log_path, ca_file)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {proc.returncode}:\n{service.log}")
        conn = service.connection(timeout=1.0)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return service
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    service.stop()
    raise RuntimeError(f"{command[0]} did not answer /healthz within {START_TIMEOUT}s:\n{service.log}")
