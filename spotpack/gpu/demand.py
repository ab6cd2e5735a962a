"""A pod's vGPU demand resolved once per pod for the per-node fit, and the fit's verdict.

:func:`prepare` turns a :class:`~spotpack.vgpu.PodGPUDemand` and the pod's GPU
policy into plain per-container steps (absolute or relative memory, cores with
HAMi's defaults applied, exclusivity), so the loop over ~500 nodes reads ints
and never re-derives them. :class:`FitResult` is what the fit answers per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spotpack.gpu.assignment import ContainerKind, DeviceGrant
from spotpack.gpu.inventory import FULL_CORES, NodeGPUs
from spotpack.gpu.usage import Load
from spotpack.policy import GPUPolicy
from spotpack.vgpu.model import PodGPUDemand

Devices = tuple[tuple[DeviceGrant, ...], ...]


class FitResult:
    """The verdict for one node (immutable).

    ``assignment_devices[i]`` are the grants of ``demand.containers[i]`` (see
    :func:`spotpack.gpu.assignment.build_assignment`); ``added`` is the
    (slots, MiB, cores) the pod adds to the node, for the binpack score.

    A hand-written immutable class rather than a frozen dataclass: one is made
    per node per filter call, and the dataclass' ``__init__`` costs twice as much.
    """

    __slots__ = ("added", "assignment_devices", "ok", "reason", "unresolvable")

    ok: bool
    reason: str
    assignment_devices: Devices | None
    unresolvable: bool
    added: Load

    def __init__(
        self,
        ok: bool,
        reason: str = "",
        assignment_devices: Devices | None = None,
        unresolvable: bool = False,
        added: Load = (0, 0, 0),
    ) -> None:
        put = object.__setattr__
        put(self, "ok", ok)
        put(self, "reason", reason)
        put(self, "assignment_devices", assignment_devices)
        put(self, "unresolvable", unresolvable)
        put(self, "added", added)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"FitResult is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"FitResult is immutable: cannot delete {name}")

    def _key(self) -> tuple[bool, str, Devices | None, bool, Load]:
        return (self.ok, self.reason, self.assignment_devices, self.unresolvable, self.added)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FitResult):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        ok, reason, devices, unresolvable, added = self._key()
        return (
            f"FitResult(ok={ok!r}, reason={reason!r}, assignment_devices={devices!r}, "
            f"unresolvable={unresolvable!r}, added={added!r})"
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One GPU container, resolved for the loop: ``mem_mib < 0`` means ``percent`` of a card."""

    name: str
    kind: ContainerKind
    count: int
    mem_mib: int
    percent: int
    cores: int

    @property
    def exclusive(self) -> bool:
        return self.cores >= FULL_CORES

    def floor_need(self, gpus: NodeGPUs) -> int:
        """MiB one vGPU needs at least on any card of the node (exact when all cards are alike)."""
        if self.mem_mib >= 0:
            return self.mem_mib
        uniform = gpus.uniform_mem
        return uniform * self.percent // 100 if uniform is not None else 0

    def need_on(self, card_mib: int) -> int:
        return self.mem_mib if self.mem_mib >= 0 else card_mib * self.percent // 100

    def describe_need(self) -> str:
        if self.mem_mib >= 0:
            return f"{self.mem_mib} MiB"
        if self.percent >= 100:
            return "all of its memory"
        return f"{self.percent}% of its memory"


@dataclass(frozen=True, slots=True)
class PreparedDemand:
    """A pod's demand resolved once per filter request (see :func:`prepare`)."""

    steps: tuple[Step, ...]
    binpack: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    filtered: bool
    """The pod restricts card models (include or exclude given)."""
    _model_ok: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def model_ok(self, model_lower: str) -> bool:
        """HAMi's ``CheckType``: some include is a substring, no exclude is (memoized)."""
        ok = self._model_ok.get(model_lower)
        if ok is None:
            ok = (not self.include or any(t in model_lower for t in self.include)) and not any(
                t in model_lower for t in self.exclude
            )
            self._model_ok[model_lower] = ok
        return ok


def _patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in values if v.strip())


def prepare(
    demand: PodGPUDemand,
    *,
    policy: GPUPolicy = GPUPolicy.BINPACK,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    default_cores: int = 0,
) -> PreparedDemand:
    """Resolve a demand for :func:`fit_prepared`; ``default_cores`` is HAMi's ``defaultCores``."""
    steps = []
    for c in demand.containers:
        r = c.request
        kind = ContainerKind.APP
        if c.init:
            kind = ContainerKind.SIDECAR if c.sidecar else ContainerKind.INIT
        percent = 100 if r.mem_percent is None else r.mem_percent
        mem = -1 if r.mem_mib is None else r.mem_mib
        steps.append(Step(c.name, kind, r.count, mem, percent, r.cores_or_default(default_cores)))
    included, excluded = _patterns(include), _patterns(exclude)
    return PreparedDemand(
        steps=tuple(steps),
        binpack=policy != GPUPolicy.SPREAD,
        include=included,
        exclude=excluded,
        filtered=bool(included or excluded),
    )


__all__ = ["Devices", "FitResult", "PreparedDemand", "Step", "prepare"]
