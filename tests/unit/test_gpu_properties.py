"""Properties of inventory, usage and fit over random nodes, pods and annotations.

- any sequence of successful fits added to usage (with pods removed in
  between) never over-commits a card: slots, memory and cores stay within
  capacity; each container's vGPUs are on distinct healthy cards of an
  allowed model;
- ``unresolvable`` failures do not fit the empty node either, and resolvable
  ones do (preemption would help);
- ``could_fit`` False implies the fit fails; memoized answers equal fresh ones;
- ``remove(add(x))`` restores usage exactly;
- our annotation and HAMi's round-trip;
- garbage annotations raise nothing but ``InvalidInput``.
"""

from __future__ import annotations

import contextlib
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.errors import InvalidInput
from spotpack.gpu.assignment import Assignment, ContainerKind, DeviceGrant
from spotpack.gpu.fit import _verdict, could_fit, fit_prepared, prepare
from spotpack.gpu.hami import (
    ALLOCATED,
    TO_ALLOCATE,
    assignment_from_hami,
    decode_hami_devices,
    hami_annotations,
)
from spotpack.gpu.inventory import (
    HAMI_REGISTER,
    Card,
    InventorySource,
    NodeGPUs,
    inventory_from_node,
)
from spotpack.gpu.usage import (
    GPU_ASSIGNMENT,
    NodeUsage,
    assignment_of_pod,
    decode_assignment,
    encode_assignment,
)
from spotpack.policy import GPUPolicy
from spotpack.vgpu import ContainerVGPU, PodGPUDemand, VGPURequest

MODELS = ["NVIDIA A10G", "NVIDIA-Tesla T4", "NVIDIA L4"]
PATTERNS = ["a10g", "T4", "l4", "nvidia", "H100"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def node_gpus(draw: st.DrawFn) -> NodeGPUs:
    n = draw(st.integers(1, 6))
    cards = tuple(
        Card(
            uuid=f"GPU-{i}",
            index=i,
            mem_mib=draw(st.sampled_from([1000, 16384, 24576, 81920])),
            cores=draw(st.sampled_from([100, 100, 100, 200, 50])),
            slots=draw(st.integers(1, 6) | st.integers(0, 2)),
            model=draw(st.sampled_from(MODELS)),
            healthy=draw(st.booleans() | st.just(True)),
        )
        for i in range(n)
    )
    return NodeGPUs(cards, InventorySource.HAMI)


@st.composite
def requests(draw: st.DrawFn) -> VGPURequest:
    memory = draw(st.sampled_from(["mib", "mib", "mib", "percent", "whole"]))
    return VGPURequest(
        count=draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4])),
        mem_mib=draw(st.integers(1, 12_000) | st.integers(1, 90_000)) if memory == "mib" else None,
        mem_percent=draw(st.integers(1, 100)) if memory == "percent" else None,
        cores=draw(st.sampled_from([None, 0, 10, 30, 50, 100]) | st.integers(0, 100)),
    )


@st.composite
def demands(draw: st.DrawFn) -> PodGPUDemand:
    inits = draw(st.lists(st.tuples(requests(), st.booleans()), max_size=2) | st.just([]))
    apps = draw(st.lists(requests(), min_size=0 if inits else 1, max_size=2))
    containers = [
        ContainerVGPU(f"init{i}", r, init=True, sidecar=sidecar)
        for i, (r, sidecar) in enumerate(inits)
    ]
    containers += [ContainerVGPU(f"app{i}", r) for i, r in enumerate(apps)]
    return PodGPUDemand(tuple(containers))


def kinds_of(demand: PodGPUDemand) -> tuple[ContainerKind, ...]:
    return tuple(
        ContainerKind.SIDECAR if c.sidecar else ContainerKind.INIT if c.init else ContainerKind.APP
        for c in demand.containers
    )


def assert_within_capacity(usage: NodeUsage) -> None:
    gpus = usage.gpus
    for i in range(len(gpus.cards)):
        assert usage.used_slots[i] <= gpus.slots[i]
        assert usage.used_mem[i] <= gpus.mem[i]
        assert usage.used_cores[i] <= gpus.cores[i]


FILTERS = st.tuples(
    st.sampled_from(list(GPUPolicy)),
    st.lists(st.sampled_from(PATTERNS), max_size=2).map(tuple) | st.just(()),
    st.lists(st.sampled_from(PATTERNS), max_size=1).map(tuple) | st.just(()),
)


@SETTINGS
@given(node_gpus(), st.lists(st.tuples(demands(), FILTERS, st.booleans()), max_size=20))
def test_successive_fits_never_overcommit(
    gpus: NodeGPUs,
    pods: list[tuple[PodGPUDemand, tuple[GPUPolicy, tuple[str, ...], tuple[str, ...]], bool]],
) -> None:
    usage = NodeUsage(gpus)
    placed: list[Assignment] = []
    empty = NodeUsage(gpus)
    for demand, (policy, include, exclude), evict_first in pods:
        if evict_first and placed:
            assert usage.remove(placed.pop(0)) == ()
        prepared = prepare(demand, policy=policy, include=include, exclude=exclude)
        result = fit_prepared(prepared, gpus, usage)
        assert result == _verdict(prepared, gpus, usage.copy())  # memo == fresh
        if not could_fit(prepared, gpus, usage):
            assert not result.ok
        if not result.ok:
            assert result.reason
            assert result.assignment_devices is None
            assert _verdict(prepared, gpus, empty).ok is not result.unresolvable
            continue
        devices = result.assignment_devices
        assert devices is not None
        assert len(devices) == len(demand.containers)
        for container, grants in zip(demand.containers, devices, strict=True):
            uuids = [g.uuid for g in grants]
            assert len(uuids) == container.request.count
            assert len(set(uuids)) == len(uuids)
            for g in grants:
                card = gpus.cards[gpus.positions[g.uuid]]
                assert card.healthy
                model = card.model.lower()
                assert not include or any(p.lower() in model for p in include)
                assert not any(p.lower() in model for p in exclude)
                assert g.mem_mib == container.request.memory_on(card.mem_mib)
        assignment = Assignment("n", devices, kinds=kinds_of(demand))
        before = usage.sum_slots, usage.sum_mem, usage.sum_cores
        assert usage.add(assignment) == ()
        after = usage.sum_slots, usage.sum_mem, usage.sum_cores
        assert tuple(a - b for a, b in zip(after, before, strict=True)) == result.added
        placed.append(assignment)
        assert_within_capacity(usage)
    assert usage.drift == 0


@SETTINGS
@given(node_gpus(), st.lists(st.tuples(demands(), FILTERS), max_size=6), st.data())
def test_remove_of_add_restores_usage(
    gpus: NodeGPUs,
    pods: list[tuple[PodGPUDemand, Any]],
    data: st.DataObject,
) -> None:
    usage = NodeUsage(gpus)
    for demand, (policy, include, exclude) in pods:
        result = fit_prepared(
            prepare(demand, policy=policy, include=include, exclude=exclude), gpus, usage
        )
        if result.ok and result.assignment_devices is not None:
            usage.add(Assignment("n", result.assignment_devices, kinds=kinds_of(demand)))
    snapshot = (list(usage.used_slots), list(usage.used_mem), list(usage.used_cores))
    summary = (usage.open_cards, usage.idle_cards, usage.max_free_mem, usage.max_free_pos)
    extra = data.draw(grants_for(gpus))
    usage.add(extra)
    usage.remove(extra)
    assert (usage.used_slots, usage.used_mem, usage.used_cores) == snapshot
    assert (usage.open_cards, usage.idle_cards, usage.max_free_mem, usage.max_free_pos) == summary
    assert usage.drift == 0


UUIDS = st.text(string.ascii_letters + string.digits + "-_./", min_size=1, max_size=12)


def grants_for(gpus: NodeGPUs | None = None) -> st.SearchStrategy[Assignment]:
    uuid = st.sampled_from([c.uuid for c in gpus.cards]) if gpus else UUIDS
    grant = st.builds(
        DeviceGrant,
        uuid,
        st.sampled_from(["NVIDIA", "NVIDIA A10G"]),
        st.integers(0, 100_000),
        st.integers(0, 100),
    )
    container = st.lists(grant, max_size=3, unique_by=lambda g: g.uuid).map(tuple)
    return st.lists(
        st.tuples(container, st.sampled_from(list(ContainerKind)), st.text(max_size=8)),
        max_size=4,
    ).map(
        lambda cs: Assignment(
            "node-1",
            tuple(c for c, _, _ in cs),
            names=tuple(n for _, _, n in cs),
            kinds=tuple(k for _, k, _ in cs),
        )
    )


@SETTINGS
@given(grants_for())
def test_our_annotation_round_trips(assignment: Assignment) -> None:
    assert decode_assignment(encode_assignment(assignment)) == assignment


@SETTINGS
@given(grants_for(), st.integers(0, 2**33))
def test_hami_annotations_round_trip(assignment: Assignment, now: int) -> None:
    annotations = hami_annotations(assignment, now)
    assert annotations["hami.io/bind-time"] == str(now)
    layout = tuple(zip(assignment.names, assignment.kinds, strict=True))
    back = assignment_from_hami(annotations, layout)
    if assignment.is_empty:
        assert back is None
        return
    assert back is not None
    assert back.node == assignment.node
    assert back.names == assignment.names
    assert back.kinds == assignment.kinds
    assert back.containers == tuple(
        tuple(g._replace(model="NVIDIA") for g in c) for c in assignment.containers
    )


GARBAGE = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=",:;0123456789GPU-NVIDIA ", max_size=60),
    st.sampled_from(
        [
            '{"v":1}',
            '{"v":1,"node":"n","containers":[{"devices":[{}]}]}',
            '{"v":1,"node":"n","containers":[{"name":"c","devices":[{"uuid":"a","model":"m","mem":1e400,"cores":0}]}]}',
            "[" * 10_000,
            '{"v":1,"node":"n","containers":' + "[" * 5000 + "]" * 5000 + "}",
            "\udcff",
            "GPU-a,NVIDIA,1,2:;;GPU-b,NVIDIA,x,2:;",
        ]
    ),
    st.binary(max_size=40),
    st.integers(),
    st.none(),
)


@SETTINGS
@given(GARBAGE, GARBAGE, GARBAGE)
def test_garbage_annotations_raise_only_invalid_input(ours: Any, hami: Any, pending: Any) -> None:
    for call in (
        lambda: decode_assignment(ours),
        lambda: decode_hami_devices(hami),
        lambda: assignment_from_hami({ALLOCATED: hami, TO_ALLOCATE: pending}),
        lambda: assignment_of_pod({"metadata": {"annotations": {GPU_ASSIGNMENT: ours}}}),
        lambda: assignment_of_pod({"metadata": {"annotations": {ALLOCATED: hami}}}),
    ):
        with contextlib.suppress(InvalidInput):
            call()


@SETTINGS
@given(GARBAGE, st.dictionaries(st.text(max_size=30), st.text(max_size=10), max_size=4))
def test_garbage_nodes_never_raise(register: Any, labels: dict[str, str]) -> None:
    node = {"metadata": {"name": "n", "annotations": {HAMI_REGISTER: register}, "labels": labels}}
    result = inventory_from_node(node, lambda _: None)
    assert result.gpus is None or result.gpus.cards
