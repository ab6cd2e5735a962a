"""Karpenter ``NodeOverlay`` objects that tell Karpenter the vGPU capacity HAMi will advertise.

Karpenter sizes nodes from the cloud's instance data: a g4dn.xlarge has one
``nvidia.com/gpu``. Under HAMi the same node offers ten vGPUs, 16384 MiB of
``nvidia.com/gpumem`` and 100 ``nvidia.com/gpucores``, and pods ask for those.
Without an overlay Karpenter thinks the pods cannot fit any instance type, or
launches one node per pod. This module renders one overlay per distinct
capacity (GPU model x card count), from the catalog.

API facts, checked against kubernetes-sigs/karpenter (``pkg/apis/v1alpha1/nodeoverlay.go``,
``pkg/apis/crds/karpenter.sh_nodeoverlays.yaml``, ``pkg/cloudprovider/types.go``)
and the NodeOverlays concept page of the Karpenter docs:

- ``apiVersion: karpenter.sh/v1alpha1``, ``kind: NodeOverlay``, cluster-scoped;
  alpha, behind the ``NodeOverlay`` feature gate (off by default).
- ``spec.requirements`` (required, at most 100): node selector requirements
  such as ``node.kubernetes.io/instance-type In [...]``.
- ``spec.capacity``: extended resources only (``cpu``, ``memory``,
  ``ephemeral-storage`` and ``pods`` are rejected). Karpenter assigns it over
  the instance type's capacity (``lo.Assign``), so a value for
  ``nvidia.com/gpu`` replaces the card count Karpenter derived.
- ``spec.price`` (absolute, ``^\\d+(\\.\\d+)?$``) and ``spec.priceAdjustment``
  (``+10%``, ``-0.5``) are mutually exclusive; not rendered here, since spot
  prices belong in the provisioner's own scoring.
- ``spec.weight`` 1..10000, optional; capacity from overlays of different
  weights is merged, a conflict at equal weight marks the overlay not Ready.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from spotpack.catalog.model import Catalog, InstanceType
from spotpack.catalog.vgpu import DEFAULT_SPLIT, VGPUCapacity, vgpu_capacity
from spotpack.errors import InvalidInput
from spotpack.vgpu.model import DEFAULT_NAMES, ResourceNames

API_VERSION = "karpenter.sh/v1alpha1"
KIND = "NodeOverlay"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
MANAGED_BY = {"app.kubernetes.io/managed-by": "spotpack"}
ANNOTATION_PREFIX = "spotpack.io/"
MAX_WEIGHT = 10_000


def render_overlays(
    catalog: Catalog,
    *,
    split: int = DEFAULT_SPLIT,
    memory_scaling: float = 1.0,
    types: Iterable[str] | None = None,
    weight: int | None = None,
    names: ResourceNames = DEFAULT_NAMES,
    prefix: str = "spotpack-vgpu",
) -> list[dict[str, Any]]:
    """One NodeOverlay per distinct vGPU capacity among ``types`` (default: every GPU type).

    Types sharing a capacity (same GPU model and card count) share an overlay,
    named ``<prefix>-<model>-x<cards>``; the order is by name, so output is stable.
    """
    if weight is not None and not 1 <= weight <= MAX_WEIGHT:
        raise InvalidInput(f"weight must be 1..{MAX_WEIGHT}, got {weight}")
    chosen = _choose(catalog, types)
    groups: dict[tuple[tuple[str, str], ...], list[VGPUCapacity]] = {}
    for itype in chosen:
        try:
            cap = vgpu_capacity(itype, split, memory_scaling)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        if cap is not None:
            groups.setdefault(tuple(cap.resources(names).items()), []).append(cap)
    overlays = [
        _overlay(
            f"{prefix}-{_dns(caps[0].model)}-x{caps[0].cards}",
            caps,
            dict(key),
            memory_scaling=memory_scaling,
            weight=weight,
        )
        for key, caps in groups.items()
    ]
    _unique_names(overlays)
    return sorted(overlays, key=lambda o: str(o["metadata"]["name"]))


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream, ready for ``kubectl apply -f -``."""
    return yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True)


def _choose(catalog: Catalog, types: Iterable[str] | None) -> list[InstanceType]:
    if types is None:
        return [t for t in catalog.all() if t.gpu is not None]
    chosen = []
    for name in types:
        itype = catalog.instance(name)
        if itype is None:
            raise InvalidInput(f"instance type {name!r} is not in the catalog")
        if itype.gpu is None:
            raise InvalidInput(f"instance type {name!r} has no GPUs; a vGPU overlay needs one")
        chosen.append(itype)
    return chosen


def _overlay(
    name: str,
    caps: list[VGPUCapacity],
    capacity: dict[str, str],
    *,
    memory_scaling: float,
    weight: int | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if weight is not None:
        spec["weight"] = weight
    spec["requirements"] = [
        {
            "key": INSTANCE_TYPE_LABEL,
            "operator": "In",
            "values": sorted({c.instance_type for c in caps}),
        }
    ]
    spec["capacity"] = capacity
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": dict(MANAGED_BY),
            "annotations": {
                f"{ANNOTATION_PREFIX}vgpu-split": str(caps[0].split),
                f"{ANNOTATION_PREFIX}vgpu-memory-scaling": f"{memory_scaling:g}",
                f"{ANNOTATION_PREFIX}gpu": f"{caps[0].cards}x {caps[0].model} "
                f"{caps[0].mem_mib_per_card} MiB",
            },
        },
        "spec": spec,
    }


def _dns(text: str) -> str:
    """A DNS-label-safe form of a GPU model name (``A10G`` -> ``a10g``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def _unique_names(overlays: list[dict[str, Any]]) -> None:
    """Same model and count but different capacity (a memory override): suffix the MiB."""
    counts: dict[str, int] = {}
    for o in overlays:
        counts[o["metadata"]["name"]] = counts.get(o["metadata"]["name"], 0) + 1
    for o in overlays:
        name = o["metadata"]["name"]
        if counts[name] > 1:
            mem = o["spec"]["capacity"]
            o["metadata"]["name"] = f"{name}-{'-'.join(v for v in mem.values())}"
