"""Which physical cards a pod got: the value, and our versioned annotation for it.

The extender writes ``spotpack.io/gpu-assignment`` on the pod at bind; GPU usage
is rebuilt from these annotations alone after a restart (no other state). The
format is versioned JSON so that a newer extender can read what an older one
wrote, and refuse (clearly) what it does not understand::

    {"v": 1, "node": "gpu-1",
     "containers": [{"name": "main", "init": false,
                     "devices": [{"uuid": "GPU-...", "model": "NVIDIA A10G",
                                  "mem": 6000, "cores": 30}]}]}

One entry per container of the pod, init containers first then app containers
(the order HAMi uses too), containers without GPUs included with no devices.
A sidecar (an init container with ``restartPolicy: Always``) also carries
``"sidecar": true``; readers of version 1 ignore keys they do not know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from spotpack.errors import InvalidInput
from spotpack.vgpu.model import PodGPUDemand, container_name, iter_containers

GPU_ASSIGNMENT = "spotpack.io/gpu-assignment"
VERSION = 1
MAX_ANNOTATION = 256 * 1024
MAX_INT32 = 2**31 - 1


class InvalidAssignment(InvalidInput):
    """A GPU assignment annotation (ours or HAMi's) that cannot be read."""


class ContainerKind(StrEnum):
    """When a container holds its GPUs: with the app, before it (init), or both (sidecar)."""

    APP = "app"
    INIT = "init"
    SIDECAR = "sidecar"


class DeviceGrant(NamedTuple):
    """A share of one card given to one container: ``mem_mib`` MiB and ``cores`` percent.

    An immutable record; a NamedTuple rather than a frozen dataclass because the
    fit creates one per placed vGPU per node and a tuple is built 2x faster.
    """

    uuid: str
    model: str
    mem_mib: int
    cores: int


Layout = tuple[tuple[str, ContainerKind], ...]
"""(name, kind) of every container of a pod, init containers first."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """The cards of every container of a pod on ``node``, in pod container order.

    ``containers[i]`` are the grants of the i-th container (init containers
    first, then app containers), ``names[i]`` its name and ``kinds[i]`` its
    kind. ``names`` and ``kinds`` default to unknown names and app containers
    (the conservative reading: app containers hold their cards together).
    ``source`` says who wrote it: ``spotpack`` or ``hami``.
    """

    node: str
    containers: tuple[tuple[DeviceGrant, ...], ...]
    names: tuple[str, ...] = ()
    kinds: tuple[ContainerKind, ...] = ()
    version: int = VERSION
    source: str = "spotpack"

    def __post_init__(self) -> None:
        n = len(self.containers)
        if not self.names and n:
            object.__setattr__(self, "names", ("",) * n)
        if not self.kinds and n:
            object.__setattr__(self, "kinds", (ContainerKind.APP,) * n)
        if len(self.names) != n or len(self.kinds) != n:
            raise ValueError("names and kinds must have one entry per container")

    def grants(self) -> Iterator[DeviceGrant]:
        for devices in self.containers:
            yield from devices

    @property
    def is_empty(self) -> bool:
        return not any(self.containers)


def pod_layout(pod: Mapping[str, Any]) -> Layout:
    """(name, kind) of the pod's containers, init containers first, as the API lists them."""
    layout = []
    for init, index, container in iter_containers(pod):
        kind = ContainerKind.APP
        if init:
            sidecar = container.get("restartPolicy") == "Always"
            kind = ContainerKind.SIDECAR if sidecar else ContainerKind.INIT
        layout.append((container_name(container, init, index), kind))
    return tuple(layout)


def build_assignment(
    node: str,
    layout: Layout,
    demand: PodGPUDemand,
    devices: tuple[tuple[DeviceGrant, ...], ...],
) -> Assignment:
    """The assignment of a fit: ``devices[i]`` belong to ``demand.containers[i]``.

    Containers of ``layout`` without a GPU request get no devices; the result
    has one entry per container of the pod, as HAMi's device plugin expects.
    """
    if len(devices) != len(demand.containers):
        raise ValueError("one device tuple per demand container expected")
    by_name = {c.name: d for c, d in zip(demand.containers, devices, strict=True)}
    return Assignment(
        node=node,
        containers=tuple(by_name.get(name, ()) for name, _ in layout),
        names=tuple(name for name, _ in layout),
        kinds=tuple(kind for _, kind in layout),
    )


# --- our annotation --------------------------------------------------------------------------


def encode_assignment(assignment: Assignment) -> str:
    """The ``spotpack.io/gpu-assignment`` value (compact JSON, keys in a fixed order)."""
    containers = []
    for name, kind, devices in zip(
        assignment.names, assignment.kinds, assignment.containers, strict=True
    ):
        entry: dict[str, Any] = {"name": name, "init": kind is not ContainerKind.APP}
        if kind is ContainerKind.SIDECAR:
            entry["sidecar"] = True
        entry["devices"] = [
            {"uuid": d.uuid, "model": d.model, "mem": d.mem_mib, "cores": d.cores} for d in devices
        ]
        containers.append(entry)
    body = {"v": VERSION, "node": assignment.node, "containers": containers}
    return orjson.dumps(body).decode()


def _fail(message: str) -> InvalidAssignment:
    return InvalidAssignment(f"annotation {GPU_ASSIGNMENT}: {message}")


def _whole(entry: Mapping[str, Any], key: str, where: str, maximum: int) -> int:
    value = entry.get(key)
    if type(value) is not int or not 0 <= value <= maximum:
        raise _fail(f"{where}: {key}={value!r} is not a whole number from 0 to {maximum}")
    return value


def _text(entry: Mapping[str, Any], key: str, where: str, *, empty: bool = True) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(f"{where}: {key}={value!r} is not a{'' if empty else ' non-empty'} string")
    return value


def _grant(entry: object, where: str) -> DeviceGrant:
    if not isinstance(entry, Mapping):
        raise _fail(f"{where} is not an object")
    return DeviceGrant(
        uuid=_text(entry, "uuid", where, empty=False),
        model=_text(entry, "model", where),
        mem_mib=_whole(entry, "mem", where, MAX_INT32),
        cores=_whole(entry, "cores", where, 100),
    )


def _container(entry: object, where: str) -> tuple[str, ContainerKind, tuple[DeviceGrant, ...]]:
    if not isinstance(entry, Mapping):
        raise _fail(f"{where} is not an object")
    name = _text(entry, "name", where)
    init, sidecar = entry.get("init", False), entry.get("sidecar", False)
    if not isinstance(init, bool) or not isinstance(sidecar, bool):
        raise _fail(f"{where}: init and sidecar must be booleans")
    kind = ContainerKind.APP
    if init:
        kind = ContainerKind.SIDECAR if sidecar else ContainerKind.INIT
    devices = entry.get("devices", [])
    if not isinstance(devices, list):
        raise _fail(f"{where}: devices is not a list")
    grants = tuple(_grant(d, f"{where} device {j}") for j, d in enumerate(devices))
    if len({g.uuid for g in grants}) != len(grants):
        raise _fail(f"{where}: the same card twice (each vGPU is on a different card)")
    return name, kind, grants


def decode_assignment(value: object) -> Assignment:
    """Read ``spotpack.io/gpu-assignment``; :class:`InvalidAssignment` on anything else."""
    if not isinstance(value, str | bytes):
        raise _fail("not a string")
    if len(value) > MAX_ANNOTATION:
        raise _fail(f"longer than {MAX_ANNOTATION} characters")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _fail(f"not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise _fail("not a JSON object")
    version = body.get("v")
    if version != VERSION or type(version) is not int:
        raise _fail(f"version {version!r} is not supported (this extender reads v{VERSION})")
    node = _text(body, "node", "assignment")
    items = body.get("containers")
    if not isinstance(items, list):
        raise _fail("containers is not a list")
    parsed = [_container(c, f"container {i}") for i, c in enumerate(items)]
    return Assignment(
        node=node,
        containers=tuple(g for _, _, g in parsed),
        names=tuple(n for n, _, _ in parsed),
        kinds=tuple(k for _, k, _ in parsed),
        version=version,
    )


__all__ = [
    "GPU_ASSIGNMENT",
    "VERSION",
    "Assignment",
    "ContainerKind",
    "DeviceGrant",
    "InvalidAssignment",
    "Layout",
    "build_assignment",
    "decode_assignment",
    "encode_assignment",
    "pod_layout",
]
