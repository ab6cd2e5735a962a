"""Child service processes: start in their own process group, wait for ready, stop for sure.

Each service runs in a new session (its own process group), so a Ctrl-C at the
terminal reaches only ``spotpack run``, which then stops the children in order,
and a gunicorn master and its workers are signalled together: SIGTERM to the
group, SIGKILL to whatever is left after the timeout. Output goes to a log
file per service; its tail is what a failure message shows. On Linux the
kernel also sends each child SIGTERM if ``spotpack run`` itself dies (even
killed with SIGKILL), so no service is left running without its supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from spotpack.serving import get_status
from spotpack.stack.plan import ServiceSpec

log = logging.getLogger(__name__)

TAIL_LINES = 15
_POLL = 0.1
_PR_SET_PDEATHSIG = 1


def _terminate_with(parent: int) -> Callable[[], None] | None:
    """Linux: ask the kernel to send SIGTERM to the child when ``parent`` dies (even by
    SIGKILL), so no service outlives a killed ``spotpack run``. Elsewhere: nothing.

    Runs in the forked child before exec; it only calls ``prctl`` (already loaded)
    and checks the parent did not die before the request took effect. The kernel
    watches the *thread* that forked: start a stack from a thread that outlives it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


class Child:
    """One running service: its process, its log file, how to reach its ``/readyz``."""

    def __init__(self, spec: ServiceSpec, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.spec = spec
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def spawn(
        cls,
        spec: ServiceSpec,
        *,
        python: str,
        log_dir: Path,
        base_env: Mapping[str, str],
        cwd: Path,
    ) -> Child:
        """Start ``python -m spotpack.cli <args>`` with stdout and stderr in ``<name>.log``."""
        log_path = log_dir / f"{spec.name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [python, "-m", "spotpack.cli", *spec.args],
                cwd=cwd,
                env={**base_env, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_terminate_with(os.getpid()),  # noqa: PLW1509 - prctl only
            )
        log.info("service started", extra={"service": spec.name, "pid": proc.pid})
        return cls(spec, proc, log_path)

    @property
    def name(self) -> str:
        """The service's name (``webhook``, ``extender``, ``provisioner``)."""
        return self.spec.name

    @property
    def pid(self) -> int:
        """The service's main process, also the id of its process group."""
        return self.proc.pid

    def exit_code(self) -> int | None:
        """None while the master runs."""
        return self.proc.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the log: usually the one-line error the service printed."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc.strerror or exc})"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def signal_group(self, signum: int) -> bool:
        """Signal every process of the group; False when none is left."""
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):  # gone, or the pgid is someone else's now
            return False
        return True

    def group_alive(self) -> bool:
        """Whether any process of the group remains (workers can outlive their master)."""
        return self.signal_group(0)


def wait_ready(child: Child, ca_file: Path | None, deadline: float) -> str | None:
    """Poll ``/readyz`` until 200; return None when ready, else why not (exit or timeout)."""
    last = "no answer yet"
    while True:
        code = child.exit_code()
        if code is not None:
            return f"exited with code {code}"
        if time.monotonic() >= deadline:
            return f"did not answer 200 on {child.spec.ready_url} in time ({last})"
        try:
            status = get_status(child.spec.ready_url, ca_file, timeout=2.0)
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc) or type(exc).__name__
            if isinstance(exc, ssl.SSLCertVerificationError):
                return f"its certificate is not trusted by {ca_file} ({exc.verify_message})"
        else:
            if status == 200:
                return None
            last = f"HTTP {status}"
        time.sleep(_POLL)


def stop_all(children: Sequence[Child], timeout: float) -> None:
    """SIGTERM every group at once, wait up to ``timeout``, SIGKILL what is left.

    Signalled together, not one by one: shutdowns overlap, so stopping takes
    as long as the slowest service, not the sum.
    """
    for child in children:
        if child.signal_group(signal.SIGTERM):
            log.info("stopping service", extra={"service": child.name, "pid": child.pid})
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            child.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            log.warning("service did not stop; killing it", extra={"service": child.name})
    for child in children:
        _reap_group(child, deadline)


def _reap_group(child: Child, deadline: float) -> None:
    """Wait out the group's stragglers (gunicorn workers), then SIGKILL them."""
    while child.group_alive() and time.monotonic() < deadline:
        time.sleep(_POLL)
    if child.signal_group(signal.SIGKILL):
        log.warning("killed the rest of the group", extra={"service": child.name})
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.proc.wait(5.0)
