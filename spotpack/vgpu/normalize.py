"""Normalize every container's vGPU request to the canonical (HAMi) form.

``normalize_pod`` takes the raw Pod dict of an AdmissionReview and returns a
:class:`Normalization` value: new ``resources`` for the containers that change,
the dialects seen, warnings, and annotations to add. Patch operations are built
from that value by :func:`resource_ops` / :func:`to_json_patch`. Pure: the input
is never mutated.

Rules, per container (init containers included):

1. Only containers with a GPU key (or the container KAI annotations target)
   are looked at; a pod without any costs a few dictionary look-ups.
2. One dialect per container; mixing is rejected. The translator of that
   dialect (:mod:`spotpack.vgpu.dialects`) gives the canonical request.
3. The output: the canonical keys in both ``limits`` and ``requests`` with the
   same value, as integer strings; the dialect's resource keys dropped (no
   device plugin advertises them); every other key kept as written, in place.
4. Idempotent: values are compared by number, so a canonical ``"6k"`` is left
   as written and a normalized pod normalizes to no change. KAI annotations
   stay on the pod; a KAI target that already carries exactly the translated
   canonical request is recognised as done.
5. Defaults are visible: a count assumed from memory alone, a bare
   ``nvidia.com/gpu: N`` (N whole cards), a fraction rounded up each get a
   warning.
6. Typos are visible, never guessed at: a GPU-like resource name we do not
   know (``nvidia.com/gpumemory``, see :mod:`spotpack.vgpu.unknown`) gets a
   warning naming the nearest known name and is kept as written. In a
   container we rewrite, it and the real GPU names we do not translate (MIG,
   ``nvidia.com/priority``) are copied as written to the side that lacks them,
   as the canonical keys are, so requests still equal limits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from spotpack.errors import InvalidGPURequest, InvalidQuantity
from spotpack.jsonpointer import path as pointer
from spotpack.vgpu import dialects, rules
from spotpack.vgpu.dialects import HAMI, KAI, ContainerInput, Translation
from spotpack.vgpu.model import (
    ContainerVGPU,
    PodGPUDemand,
    ResourceNames,
    VGPURequest,
    as_mapping,
    container_name,
    iter_containers,
    resource_maps,
)
from spotpack.vgpu.options import SOURCE_ANNOTATION, NormalizeOptions
from spotpack.vgpu.unknown import Unknown, passed_through

DEFAULT_OPTIONS = NormalizeOptions()


@dataclass(frozen=True, slots=True)
class ContainerChange:
    """New ``resources`` for one container, which replaces the old map whole."""

    index: int
    init: bool
    name: str
    resources: Mapping[str, Any]

    @property
    def path(self) -> str:
        """``/spec/containers/{i}/resources`` or ``/spec/initContainers/{i}/resources``."""
        return pointer(
            "spec", "initContainers" if self.init else "containers", self.index, "resources"
        )


@dataclass(frozen=True, slots=True)
class Normalization:
    """What normalizing a pod decided. Empty for a pod without GPU requests."""

    changes: tuple[ContainerChange, ...] = ()
    dialects: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    demand: PodGPUDemand = field(default_factory=PodGPUDemand)
    has_metadata: bool = True
    has_annotations: bool = True

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.annotations)

    @property
    def is_gpu_pod(self) -> bool:
        return self.demand.is_gpu_pod


def _owners_of(
    limits: Mapping[str, Any], requests: Mapping[str, Any], owners: Mapping[str, str]
) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for side in (limits, requests):
        for key in side:
            dialect = owners.get(key)
            if dialect is not None and key not in found.setdefault(dialect, []):
                found[dialect].append(key)
    return {d: keys for d, keys in found.items() if keys}


def _unknown_of(
    limits: Mapping[str, Any], requests: Mapping[str, Any], options: NormalizeOptions
) -> tuple[Unknown, ...]:
    """The unknown GPU-like keys of a container, limits first, each once."""
    found: dict[str, Unknown] = {}
    for side in (limits, requests):
        for key in side:
            if isinstance(key, str) and key not in found and (hit := options.unknown(key)):
                found[key] = hit
    return tuple(found.values())


def _mirrored(
    limits: Mapping[str, Any], requests: Mapping[str, Any], unknown: tuple[Unknown, ...]
) -> tuple[str, ...]:
    """GPU names we keep but do not translate: unknown ones and real ones (MIG, priority)."""
    keys = dict.fromkeys(u.key for u in unknown)
    for side in (limits, requests):
        keys.update((k, None) for k in side if isinstance(k, str) and passed_through(k))
    return tuple(keys)


def _kai_target(pod: Mapping[str, Any], annotations: Mapping[str, Any]) -> tuple[bool, int]:
    """``(is_init, index)`` of the container KAI annotations apply to."""
    wanted = annotations.get(dialects.KAI_CONTAINER)
    first: tuple[bool, int] | None = None
    for init, index, container in iter_containers(pod):
        if first is None and not init:
            first = (init, index)
        if wanted and container.get("name") == wanted:
            return init, index
    if wanted:
        raise InvalidGPURequest(
            str(wanted),
            f"pod annotation {dialects.KAI_CONTAINER}={wanted!r} names a container the pod does "
            "not have; allowed: the name of one of its containers or init containers",
        )
    if first is None:
        raise InvalidGPURequest(
            "", "KAI GPU annotations on a pod without containers; allowed: a pod with a container"
        )
    return first


_EMPTY = Normalization()
"""The answer for a pod without GPU requests (immutable, shared)."""


def _any_gpu_key(pod: Mapping[str, Any], options: NormalizeOptions) -> bool:
    """Whether any container has a key we read or an unknown GPU-like key: the fast
    path for the common pod (``cpu``/``memory`` have no ``/`` and cost one look-up).

    Plain dicts (what JSON decoding gives) are walked directly; anything else
    answers True and takes the general path, which copes with odd shapes.
    """
    owners, unknown = options.key_owners, options.unknown
    spec = pod.get("spec")
    if type(spec) is not dict:
        return spec is not None
    for key in ("containers", "initContainers"):
        items = spec.get(key)
        if not items:
            continue
        if type(items) is not list:
            return True
        for container in items:
            if type(container) is not dict:
                return True
            resources = container.get("resources")
            if not resources:
                continue
            if type(resources) is not dict:
                return True
            for side in (resources.get("limits"), resources.get("requests")):
                if side and (
                    type(side) is not dict
                    or any(k in owners or ("/" in k and unknown(k)) for k in side)
                ):
                    return True
    return False


def normalize_pod(
    pod: Mapping[str, Any], options: NormalizeOptions = DEFAULT_OPTIONS
) -> Normalization:
    """Normalize the vGPU requests of ``pod`` (see the module docstring for the rules).

    Raises :class:`~spotpack.errors.InvalidGPURequest` for a request that cannot
    be read one way only; the message names the container, field, value and
    what is allowed.
    """
    annotations = as_mapping(as_mapping(pod.get("metadata")).get("annotations"))
    owners = options.key_owners
    kai = dialects.kai_requested(annotations) if annotations else False
    if not kai and not _any_gpu_key(pod, options):
        return _EMPTY
    kai_target = _kai_target(pod, annotations) if kai else None
    work: _Work | None = None
    for init, index, container in iter_containers(pod):
        limits, requests = resource_maps(container)
        is_kai = kai_target == (init, index)
        if not is_kai and not (limits or requests):
            continue
        found = _owners_of(limits, requests, owners)
        unknown = _unknown_of(limits, requests, options)
        if found or is_kai or unknown:
            if work is None:
                work = _Work(pod, options, annotations)
            work.container(
                (init, index), container, (limits, requests), found, unknown, is_kai=is_kai
            )
    return _EMPTY if work is None else work.result()


class _Work:
    """The state of one ``normalize_pod`` call; only built for pods that may have GPUs."""

    def __init__(
        self, pod: Mapping[str, Any], options: NormalizeOptions, annotations: Mapping[str, Any]
    ) -> None:
        self.pod = pod
        self.options = options
        self.annotations = annotations
        self.labels = as_mapping(as_mapping(pod.get("metadata")).get("labels"))
        self.changes: list[ContainerChange] = []
        self.seen: set[str] = set()
        self.translated: set[str] = set()
        self.warnings: list[str] = []
        self.demand: list[ContainerVGPU] = []

    def container(
        self,
        where: tuple[bool, int],
        container: Mapping[str, Any],
        sides: tuple[Mapping[str, Any], Mapping[str, Any]],
        found: dict[str, list[str]],
        unknown: tuple[Unknown, ...],
        *,
        is_kai: bool,
    ) -> None:
        """Translate one container that has GPU keys (or is KAI's target); warn of typos."""
        init, index = where
        limits, requests = sides
        name = container_name(container, init, index)
        self.warnings.extend(u.describe(name) for u in unknown)
        if not found and not is_kai:
            return
        source = ContainerInput(name, limits, requests, self.annotations, self.labels)
        dialect = self._dialect(source, found, is_kai=is_kai)
        translation = dialects.DIALECTS[dialect].translate(source, self.options)
        self.seen.add(dialect)
        self.warnings.extend(translation.warnings)
        request = translation.request
        if request is None:
            shown = ", ".join(translation.read)
            self.warnings.append(f"container {name!r}: {shown} asks for no GPU; left as written")
            return
        names = self.options.names
        if dialect != HAMI:
            self.translated.add(dialect)
            self.warnings.append(
                f"container {name!r}: translated {dialect} ({', '.join(translation.read)}) "
                f"to {request.describe(names)}"
            )
        self.warnings.extend(_default_notes(name, request, names))
        sidecar = init and container.get("restartPolicy") == "Always"
        self.demand.append(ContainerVGPU(name, request, init=init, sidecar=sidecar))
        drop = frozenset(dialects.DIALECTS[dialect].resource_keys) | frozenset(names.keys)
        mirror = _mirrored(limits, requests, unknown)
        resources = _new_resources(
            container, limits, requests, request.to_resources(names), drop, mirror=mirror
        )
        if resources is not None:
            self.changes.append(ContainerChange(index, init, name, resources))

    def _dialect(self, source: ContainerInput, found: dict[str, list[str]], *, is_kai: bool) -> str:
        """The one dialect of a container; mixing is an error.

        A KAI target that already carries the canonical keys is fine when they
        equal what the KAI annotations ask (the pod was normalized before and
        the annotations stayed): it is then read as canonical.
        """
        seen = dict(found)
        if is_kai:
            seen[KAI] = [f"pod annotation {k}" for k in _kai_keys(self.annotations)]
        if len(seen) == 1:
            return next(iter(seen))
        if is_kai and set(seen) == {KAI, HAMI}:
            kai = dialects.translate_kai(source, self.options)
            hami = dialects.translate_hami(source, self.options)
            if kai.request == hami.request:
                return HAMI
        parts = "; ".join(f"{d} ({', '.join(keys)})" for d, keys in sorted(seen.items()))
        raise InvalidGPURequest(
            source.name,
            f"mixes vGPU dialects: {parts}; allowed: one dialect per container "
            f"(canonical: {', '.join(self.options.names.keys)})",
        )

    def result(self) -> Normalization:
        if not self.seen and not self.warnings:
            return _EMPTY
        metadata = self.pod.get("metadata")
        add: dict[str, str] = {}
        if self.translated:
            key = self.options.source_annotation or SOURCE_ANNOTATION
            value = ",".join(sorted(self.translated))
            if self.annotations.get(key) != value:
                add[key] = value
        return Normalization(
            changes=tuple(self.changes),
            dialects=tuple(sorted(self.seen)),
            warnings=tuple(self.warnings),
            annotations=add,
            demand=PodGPUDemand(tuple(self.demand)),
            has_metadata=isinstance(metadata, Mapping),
            has_annotations=isinstance(metadata, Mapping)
            and isinstance(metadata.get("annotations"), Mapping),
        )


def _kai_keys(annotations: Mapping[str, Any]) -> list[str]:
    keys = (dialects.KAI_FRACTION, dialects.KAI_MEMORY, dialects.KAI_NUM_DEVICES)
    return [k for k in keys if k in annotations]


def _default_notes(name: str, request: VGPURequest, names: ResourceNames) -> list[str]:
    """Warnings that make the defaults of a canonical request visible."""
    count = request.count
    cards = f"{count} whole card{'s' if count != 1 else ''}"
    if request.is_bare:
        return [f"container {name!r}: {names.count}: {count} with no memory or cores means {cards}"]
    if request.mem_mib is None and request.mem_percent is None:
        return [
            f"container {name!r}: {names.count}: {count} with no memory request means each vGPU "
            f"takes its card's whole memory ({cards})"
        ]
    return []


def _same(value: object, canonical: str) -> bool:
    try:
        return rules.parse(value) == int(canonical)
    except InvalidQuantity:
        return False


def _side(
    side: Mapping[str, Any],
    other: Mapping[str, Any],
    target: Mapping[str, str],
    drop: frozenset[str],
    mirror: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One of limits/requests rebuilt: other keys in place, GPU keys set to ``target``.

    A value already equal by number is kept as written; a missing one is copied
    from the other side when that is equal by number, else written canonical.
    A ``mirror`` key (an unknown GPU-like name) missing here is copied as
    written from the other side, so requests equal limits for it too.
    """
    out: dict[str, Any] = {}
    for key, value in side.items():
        if key in target:
            out[key] = value if _same(value, target[key]) else target[key]
        elif key not in drop:
            out[key] = value
    for key, wanted in target.items():
        if key not in out:
            theirs = other.get(key)
            keep = isinstance(theirs, str) and _same(theirs, wanted)
            out[key] = theirs if keep else wanted
    for key in mirror:
        if key not in out and key in other:
            out[key] = copy.deepcopy(other[key])
    return out


def _new_resources(
    container: Mapping[str, Any],
    limits: Mapping[str, Any],
    requests: Mapping[str, Any],
    target: Mapping[str, str],
    drop: frozenset[str],
    *,
    mirror: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """The container's new ``resources``, or None when nothing changes."""
    new_limits = _side(limits, requests, target, drop, mirror)
    new_requests = _side(requests, limits, target, drop, mirror)
    if new_limits == dict(limits) and new_requests == dict(requests):
        return None
    old = as_mapping(container.get("resources"))
    resources = {k: copy.deepcopy(v) for k, v in old.items() if k not in ("limits", "requests")}
    if new_limits or "limits" in old:
        resources["limits"] = new_limits
    if new_requests or "requests" in old:
        resources["requests"] = new_requests
    return resources


def resource_ops(normalization: Normalization) -> list[dict[str, Any]]:
    """RFC 6902 ``add`` operations that put each changed container's ``resources`` in place.

    ``add`` on an existing member replaces it (RFC 6902 section 4.1), so one
    operation serves containers with and without a ``resources`` map.
    """
    return [
        {"op": "add", "path": change.path, "value": copy.deepcopy(dict(change.resources))}
        for change in normalization.changes
    ]


def annotation_ops(normalization: Normalization) -> list[dict[str, Any]]:
    """``add`` operations for the annotations; the whole map when the pod has none.

    An ``add`` into a missing parent fails the whole patch, so a pod without
    ``metadata.annotations`` gets the map in one operation (and one without
    ``metadata``, the metadata).
    """
    notes = dict(normalization.annotations)
    if not notes:
        return []
    if not normalization.has_metadata:
        return [{"op": "add", "path": pointer("metadata"), "value": {"annotations": notes}}]
    if not normalization.has_annotations:
        return [{"op": "add", "path": pointer("metadata", "annotations"), "value": notes}]
    return [
        {"op": "add", "path": pointer("metadata", "annotations", key), "value": value}
        for key, value in notes.items()
    ]


def to_json_patch(normalization: Normalization) -> list[dict[str, Any]]:
    """All operations: container resources, then annotations."""
    return [*resource_ops(normalization), *annotation_ops(normalization)]


__all__ = [
    "DEFAULT_OPTIONS",
    "ContainerChange",
    "Normalization",
    "NormalizeOptions",
    "Translation",
    "annotation_ops",
    "normalize_pod",
    "resource_ops",
    "to_json_patch",
]
