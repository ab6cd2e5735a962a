"""Webhook benchmark: the real gunicorn server over TLS keep-alive, realistic pods.

Measures, against ``spotpack webhook`` started as users start it:

* latency with one client on one keep-alive connection (p50, p99): what each
  pod creation waits for;
* throughput with several concurrent keep-alive connections: what a burst of
  pod creations (a Spark job scaling out) gets. With ``wrk`` installed
  (``apt-get install wrk``) the load comes from wrk, a C client that leaves the
  CPU to the server; without it, from Python client processes, which take a
  large share of the two cores and so measure a lower bound.
Ends with ``webhook: p99_ms=X rps=Y``.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.pods import review


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(certs: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPOTPACK_WEBHOOK_HOST": "127.0.0.1",
        "SPOTPACK_WEBHOOK_PORT": str(port),
        "SPOTPACK_WEBHOOK_CERT_FILE": str(certs / "tls.crt"),
        "SPOTPACK_WEBHOOK_KEY_FILE": str(certs / "tls.key"),
        "SPOTPACK_WEBHOOK_WORKERS": str(workers),
        "SPOTPACK_WEBHOOK_NAMESPACE_DEFAULTS": "false",
        "SPOTPACK_WEBHOOK_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "spotpack.cli", "webhook"], env=env)


def wait_ready(port: int, ca: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = _connect(port, ca)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"webhook did not become ready on port {port} within {timeout}s")


def _connect(port: int, ca: Path) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(ca))
    return http.client.HTTPSConnection("localhost", port, context=context, timeout=10)


def _bodies(n: int, offset: int) -> list[bytes]:
    return [orjson.dumps(review(offset + i)) for i in range(n)]


def run_client(port: int, ca: str, count: int, offset: int) -> list[float]:
    """One keep-alive connection sending ``count`` reviews; returns latencies in seconds."""
    bodies = _bodies(min(count, 64), offset)
    conn = _connect(port, Path(ca))
    headers = {"Content-Type": "application/json"}
    latencies = []
    for i in range(count):
        start = time.perf_counter()
        conn.request("POST", "/mutate", body=bodies[i % len(bodies)], headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200 or b'"allowed":true' not in payload:
            raise SystemExit(f"unexpected answer {response.status}: {payload[:200]!r}")
    conn.close()
    return latencies


def _client_entry(args: tuple[int, str, int, int]) -> list[float]:
    return run_client(*args)


def wrk_throughput(
    port: int, connections: int, seconds: int, workdir: Path
) -> tuple[float, str] | None:
    """Requests/s from wrk over ``connections`` keep-alive connections, or None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    bodies = [orjson.dumps(review(i)).decode() for i in range(16)]
    lines = ["local bodies = {"]
    lines += [f"[==[{body}]==]," for body in bodies]
    lines += [
        "}",
        "local i = 0",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        "request = function()",
        "  i = i + 1",
        '  return wrk.format(nil, "/mutate", nil, bodies[(i % #bodies) + 1])',
        "end",
    ]
    script = workdir / "mutate.lua"
    script.write_text("\n".join(lines))
    threads = min(2, connections)
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"https://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if match is None or "Non-2xx" in out:
        raise SystemExit(f"wrk run failed:\n{out}")
    p99 = re.search(r"99%\s+(\S+)", out)
    return float(match.group(1)), (p99.group(1) if p99 else "?")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="requests for the one-client run"
    )
    parser.add_argument("--clients", type=int, default=4, help="Python client processes")
    parser.add_argument("--per-client", type=int, default=1500)
    parser.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("SPOTPACK_WEBHOOK_WORKERS", "2"))
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        certs = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "spotpack.cli", "certs", "--out", str(certs)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        server = start_server(certs, port, args.workers)
        try:
            wait_ready(port, certs / "ca.crt")
            run_client(port, str(certs / "ca.crt"), 300, 0)  # warm-up
            single = run_client(port, str(certs / "ca.crt"), args.requests, 0)
            started = time.perf_counter()
            jobs = [
                (port, str(certs / "ca.crt"), args.per_client, k * 1000)
                for k in range(args.clients)
            ]
            with multiprocessing.Pool(args.clients) as pool:
                results = pool.map(_client_entry, jobs)
            elapsed = time.perf_counter() - started
            wrk = wrk_throughput(port, args.connections, args.seconds, certs)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    merged = [x for r in results for x in r]
    p50, p99 = percentile(single, 0.50) * 1000, percentile(single, 0.99) * 1000
    python_rps = len(merged) / elapsed
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, workers={args.workers}"
    )
    print(
        f"one client, keep-alive, {len(single)} reviews: p50 {p50:.2f} ms, p99 {p99:.2f} ms, mean {statistics.mean(single) * 1000:.2f} ms"
    )
    print(
        f"{args.clients} Python client processes, keep-alive, {len(merged)} reviews in {elapsed:.2f} s: "
        f"{python_rps:.0f} reviews/s, p99 {percentile(merged, 0.99) * 1000:.2f} ms"
    )
    rps = python_rps
    if wrk is None:
        print(
            "wrk not installed: throughput is from Python clients sharing the CPU (apt-get install wrk)"
        )
    else:
        rps = wrk[0]
        print(
            f"wrk, {args.connections} keep-alive connections, {args.seconds} s: {rps:.0f} reviews/s, p99 {wrk[1]}"
        )
    print(f"webhook: p99_ms={p99:.2f} rps={rps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
