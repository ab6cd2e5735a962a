"""HAMi's pod annotations: write them for HAMi's device plugin, read them to rebuild usage.

Checked against HAMi's ``pkg/device/devices.go`` (``EncodeContainerDevices``,
``EncodePodSingleDevice``, ``DecodePodDevices``), its device-plugin tests and
its "Protocol design" page:

- ``hami.io/vgpu-devices-to-allocate`` and ``hami.io/vgpu-devices-allocated``:
  every device is ``UUID,Type,usedmem,usedcores`` **followed by** ``:``; every
  container's device list is **followed by** ``;``, containers without devices
  included (an empty segment), init containers first, then app containers::

      GPU-a,NVIDIA,3000,30:GPU-b,NVIDIA,3000,30:;;     (2 containers, 2 cards in the first)

  ``Type`` is the device family (``NVIDIA``), not the card model. HAMi's device
  plugin empties ``to-allocate`` container by container as kubelet allocates
  (``;;`` once done), so ``allocated`` is the stable record. Older HAMi
  releases wrote segments for app containers only.
- ``hami.io/vgpu-node``: the node; ``hami.io/vgpu-time`` and
  ``hami.io/bind-time``: Unix seconds; ``hami.io/bind-phase``: ``allocating``
  at bind, then ``success`` or ``failed`` from the device plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from spotpack.gpu.assignment import (
    MAX_ANNOTATION,
    MAX_INT32,
    Assignment,
    ContainerKind,
    DeviceGrant,
    InvalidAssignment,
    Layout,
)

TO_ALLOCATE = "hami.io/vgpu-devices-to-allocate"
ALLOCATED = "hami.io/vgpu-devices-allocated"
VGPU_NODE = "hami.io/vgpu-node"
VGPU_TIME = "hami.io/vgpu-time"
BIND_PHASE = "hami.io/bind-phase"
BIND_TIME = "hami.io/bind-time"
DEVICE_TYPE = "NVIDIA"
DEVICE_SEP = ":"
CONTAINER_SEP = ";"
_FORBIDDEN = frozenset(",:;")


class BindPhase(StrEnum):
    ALLOCATING = "allocating"
    SUCCESS = "success"
    FAILED = "failed"


def encode_hami_devices(
    containers: tuple[tuple[DeviceGrant, ...], ...], device_type: str = DEVICE_TYPE
) -> str:
    """HAMi's encoding of a pod's devices (see the module docstring)."""
    if _FORBIDDEN & set(device_type) or not device_type:
        raise InvalidAssignment(f"HAMi device type {device_type!r} is empty or has , : or ;")
    parts = []
    for devices in containers:
        for d in devices:
            if not d.uuid or _FORBIDDEN & set(d.uuid):
                raise InvalidAssignment(f"card UUID {d.uuid!r} cannot be written for HAMi")
            parts.append(f"{d.uuid},{device_type},{d.mem_mib},{d.cores}{DEVICE_SEP}")
        parts.append(CONTAINER_SEP)
    return "".join(parts)


def _number(text: str, what: str, segment: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_INT32:
        raise InvalidAssignment(f"HAMi device {segment!r}: {what} {text!r} is not a whole number")
    return int(text)


def _hami_device(segment: str) -> DeviceGrant:
    fields = segment.split(",")
    if len(fields) < 4 or not fields[0] or not fields[1]:
        raise InvalidAssignment(f"HAMi device {segment!r} is not 'UUID,Type,usedmem,usedcores'")
    mem = _number(fields[2], "usedmem", segment)
    cores = _number(fields[3], "usedcores", segment)
    # HAMi caps cores at 100 when it fits; a larger value written by hand means the same.
    return DeviceGrant(uuid=fields[0], model=fields[1], mem_mib=mem, cores=min(cores, 100))


def decode_hami_devices(value: object) -> tuple[tuple[DeviceGrant, ...], ...]:
    """One tuple of grants per container segment; :class:`InvalidAssignment` when malformed.

    The container separator ends every segment, so one trailing empty piece is
    dropped; a value without it (hand-written) is read the same way.
    """
    if not isinstance(value, str):
        raise InvalidAssignment("HAMi device annotation is not a string")
    if len(value) > MAX_ANNOTATION:
        raise InvalidAssignment(f"HAMi device annotation is longer than {MAX_ANNOTATION}")
    if not value:
        return ()
    segments = value.split(CONTAINER_SEP)
    if value.endswith(CONTAINER_SEP):
        segments.pop()
    return tuple(
        tuple(_hami_device(d) for d in segment.split(DEVICE_SEP) if d) for segment in segments
    )


def hami_annotations(
    assignment: Assignment, now: float, *, device_type: str = DEVICE_TYPE
) -> dict[str, str]:
    """The annotations HAMi's scheduler writes at bind, so HAMi's device plugin can allocate.

    ``now`` is Unix seconds. The phase is ``allocating``: the device plugin
    moves it on. Raises :class:`InvalidAssignment` for a UUID HAMi cannot carry.
    """
    devices = encode_hami_devices(assignment.containers, device_type)
    stamp = str(int(now))
    return {
        TO_ALLOCATE: devices,
        ALLOCATED: devices,
        VGPU_NODE: assignment.node,
        VGPU_TIME: stamp,
        BIND_PHASE: BindPhase.ALLOCATING.value,
        BIND_TIME: stamp,
    }


def _aligned(
    containers: tuple[tuple[DeviceGrant, ...], ...], layout: Layout | None
) -> tuple[tuple[tuple[DeviceGrant, ...], ...], tuple[str, ...], tuple[ContainerKind, ...]]:
    """Match segments to the pod's containers: all of them, or app ones only (old HAMi)."""
    if layout:
        if len(containers) == len(layout):
            return containers, tuple(n for n, _ in layout), tuple(k for _, k in layout)
        apps = [i for i, (_, kind) in enumerate(layout) if kind is ContainerKind.APP]
        if len(containers) == len(apps):
            full: list[tuple[DeviceGrant, ...]] = [()] * len(layout)
            for position, devices in zip(apps, containers, strict=True):
                full[position] = devices
            return tuple(full), tuple(n for n, _ in layout), tuple(k for _, k in layout)
    # Unknown layout: every container an app container, the reading that never undercounts.
    return containers, (), ()


def assignment_from_hami(
    annotations: Mapping[str, Any], layout: Layout | None = None
) -> Assignment | None:
    """The assignment HAMi recorded on a pod; None when it records no device.

    ``allocated`` is read first (the stable record), ``to-allocate`` when it
    has nothing. With the pod's ``layout`` (see
    :func:`~spotpack.gpu.assignment.pod_layout`) containers get their names and
    kinds; without, all are taken for app containers. The device ``model`` is
    HAMi's type (``NVIDIA``). Raises :class:`InvalidAssignment` when malformed.
    """
    containers: tuple[tuple[DeviceGrant, ...], ...] = ()
    for key in (ALLOCATED, TO_ALLOCATE):
        raw = annotations.get(key)
        if raw is None:
            continue
        decoded = decode_hami_devices(raw)
        if any(decoded):
            containers = decoded
            break
    if not containers:
        return None
    node = annotations.get(VGPU_NODE)
    aligned, names, kinds = _aligned(containers, layout)
    return Assignment(
        node=node if isinstance(node, str) else "",
        containers=aligned,
        names=names,
        kinds=kinds,
        source="hami",
    )


__all__ = [
    "ALLOCATED",
    "BIND_PHASE",
    "BIND_TIME",
    "DEVICE_TYPE",
    "TO_ALLOCATE",
    "VGPU_NODE",
    "VGPU_TIME",
    "BindPhase",
    "assignment_from_hami",
    "decode_hami_devices",
    "encode_hami_devices",
    "hami_annotations",
]
