"""The whole product on one machine: ``spotpack run`` and the base of ``spotpack simulate``.

An embedded in-memory cluster (or the one a kubeconfig names) with the
webhook, the extender and the provisioner started as child processes on
loopback, exactly as users run them::

    from spotpack.stack import Stack, StackSettings

    with Stack(StackSettings(workdir=tmp / "run")) as stack:
        endpoints = stack.endpoints  # URLs, kubeconfig, CA file, logs directory

| module | what |
|---|---|
| ``settings`` | :class:`StackSettings`: ports, kubeconfig, seed, certificates, extra env |
| ``preflight`` | every check that must pass before anything starts, one-line errors |
| ``plan`` | each service's command line and environment (pure) |
| ``children`` | process groups, ``/readyz`` waits, SIGTERM then SIGKILL |
| ``stack`` | :class:`Stack` and :class:`Endpoints`: start in order, undo on failure |
| ``banner``, ``cli`` | ``spotpack run`` |

The core must not import the services; this package starts them by module
name in subprocesses, so the import boundaries hold.
"""

from spotpack.stack.errors import ServiceError
from spotpack.stack.settings import StackSettings
from spotpack.stack.stack import Endpoints, Stack

__all__ = ["Endpoints", "ServiceError", "Stack", "StackSettings"]
