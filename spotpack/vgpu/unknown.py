"""GPU resource names spotpack does not know: typos to warn about, never to guess at.

``nvidia.com/gpumemory: 8192`` is not HAMi's ``nvidia.com/gpumem``: no device
plugin advertises it, so the pod would stay Pending, and spotpack would read
the container as asking for a whole card. Rewriting it to the name the user
probably meant would be a guess about their request; refusing the pod would
break a cluster whose device plugin does advertise an unusual name. So the
name is kept as written and the webhook warns, naming the nearest known name.

A container resource key is *unknown* when spotpack does not read it and it
looks like a GPU resource:

- any ``nvidia.com/`` name other than the known ones, MIG's
  ``nvidia.com/mig-*`` and the NVIDIA device plugin's time-slicing
  ``nvidia.com/gpu.shared``;
- a name under a GPU prefix of a dialect spotpack reads (``volcano.sh/vgpu``,
  ``koordinator.sh/gpu``, ``aliyun.com/gpu``);
- any other name with a ``/`` whose similarity to a known name is at least
  :data:`CLOSE` (``nvidia.con/gpu``), measured as difflib's ratio
  ``2 * matched characters / (len(a) + len(b))``. Other vendors' resources
  (``amd.com/gpu`` 0.72, ``intel.com/gpu`` 0.67) stay below it.

Pure; the answer for a key is cached, because pods repeat the same few names.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import NamedTuple

HAMI_PRIORITY = "nvidia.com/priority"
"""HAMi's task-priority resource (0 high, 1 low): HAMi's, passed through untouched."""
NVIDIA_SHARED = "nvidia.com/gpu.shared"
"""The NVIDIA device plugin's time-sliced GPUs (``renameByDefault: true``)."""
ALSO_KNOWN = frozenset({HAMI_PRIORITY, NVIDIA_SHARED})
"""Names spotpack does not read but knows to be real: never flagged."""
MIG_PREFIX = "nvidia.com/mig-"
GPU_PREFIXES = ("nvidia.com/", "volcano.sh/vgpu", "koordinator.sh/gpu", "aliyun.com/gpu")
CLOSE = 0.8
SUGGEST = 0.6


class Unknown(NamedTuple):
    """An unknown GPU resource key and the known name nearest to it, if any is near."""

    key: str
    nearest: str | None

    def describe(self, container: str) -> str:
        hint = f" (did you mean {self.nearest}?)" if self.nearest else ""
        return (
            f"container {container!r}: unknown GPU resource {self.key}{hint}; kept as written, "
            "not read by spotpack; the pod stays Pending unless a node offers it"
        )


def _nearest(key: str, known: frozenset[str], cutoff: float) -> str | None:
    found = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
    return found[0] if found else None


def _suggest(key: str, known: frozenset[str]) -> str | None:
    """The known name nearest to ``key``: by the name after ``/`` among those of the same
    domain (a shared domain would make every name look near), else by the whole name."""
    domain, _, name = key.partition("/")
    same = {k.partition("/")[2]: k for k in known if k.partition("/")[0] == domain}
    if same:
        found = difflib.get_close_matches(name, sorted(same), n=1, cutoff=SUGGEST)
        return same[found[0]] if found else None
    return _nearest(key, known, CLOSE)


def passed_through(key: str) -> bool:
    """A real GPU name spotpack does not translate (MIG, time-slicing, HAMi's priority)."""
    return key in ALSO_KNOWN or key.startswith(MIG_PREFIX)


@lru_cache(maxsize=4096)
def classify(key: str, known: frozenset[str]) -> Unknown | None:
    """``key`` as an :class:`Unknown`, or None when it is known or not GPU-like.

    ``known`` is every name spotpack reads (see ``NormalizeOptions.known_resources``).
    """
    if key in known or "/" not in key or key.startswith(MIG_PREFIX):
        return None
    if key.startswith(GPU_PREFIXES):
        return Unknown(key, _suggest(key, known))
    nearest = _nearest(key, known, CLOSE)
    return Unknown(key, nearest) if nearest else None


__all__ = [
    "ALSO_KNOWN",
    "CLOSE",
    "GPU_PREFIXES",
    "MIG_PREFIX",
    "Unknown",
    "classify",
    "passed_through",
]
