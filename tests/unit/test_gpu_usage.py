"""Assignments (ours and HAMi's annotations) and per-card usage rebuilt from them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spotpack.errors import InvalidInput
from spotpack.gpu.assignment import pod_layout
from spotpack.gpu.hami import (
    ALLOCATED,
    BIND_PHASE,
    BIND_TIME,
    TO_ALLOCATE,
    VGPU_NODE,
    VGPU_TIME,
    decode_hami_devices,
    encode_hami_devices,
)
from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs
from spotpack.gpu.usage import (
    GPU_ASSIGNMENT,
    Assignment,
    ContainerKind,
    DeviceGrant,
    InvalidAssignment,
    NodeUsage,
    assignment_from_hami,
    assignment_of_pod,
    card_loads,
    decode_assignment,
    encode_assignment,
    hami_annotations,
    is_terminated,
)

APP, INIT, SIDECAR = ContainerKind.APP, ContainerKind.INIT, ContainerKind.SIDECAR


def grant(uuid: str, mem: int = 1000, cores: int = 0, model: str = "NVIDIA A10G") -> DeviceGrant:
    return DeviceGrant(uuid, model, mem, cores)


def gpus(n: int = 4, mem: int = 10_000, slots: int = 4, cores: int = 100) -> NodeGPUs:
    cards = tuple(Card(f"GPU-{i}", i, mem, cores, slots, "NVIDIA A10G") for i in range(n))
    return NodeGPUs(cards, InventorySource.HAMI)


def pod(
    annotations: dict[str, str] | None = None,
    *,
    init: tuple[str, ...] = (),
    sidecars: tuple[str, ...] = (),
    app: tuple[str, ...] = ("main",),
    node: str | None = "gpu-1",
    phase: str = "Running",
) -> dict[str, Any]:
    inits = [{"name": n} for n in init] + [{"name": n, "restartPolicy": "Always"} for n in sidecars]
    spec: dict[str, Any] = {"initContainers": inits, "containers": [{"name": n} for n in app]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": "p", "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


# --- our annotation --------------------------------------------------------------------------


def test_encode_is_the_documented_json() -> None:
    a = Assignment(
        "gpu-1",
        ((), (grant("GPU-a", 6000, 30),)),
        names=("setup", "main"),
        kinds=(INIT, APP),
    )
    assert json.loads(encode_assignment(a)) == {
        "v": 1,
        "node": "gpu-1",
        "containers": [
            {"name": "setup", "init": True, "devices": []},
            {
                "name": "main",
                "init": False,
                "devices": [{"uuid": "GPU-a", "model": "NVIDIA A10G", "mem": 6000, "cores": 30}],
            },
        ],
    }
    assert decode_assignment(encode_assignment(a)) == a


def test_sidecar_round_trips() -> None:
    a = Assignment("n", ((grant("GPU-a"),), ()), names=("proxy", "main"), kinds=(SIDECAR, APP))
    text = encode_assignment(a)
    assert '"sidecar":true' in text
    assert decode_assignment(text) == a


def test_defaults_fill_names_and_kinds() -> None:
    a = Assignment("n", ((grant("GPU-a"),), ()))
    assert a.names == ("", "")
    assert a.kinds == (APP, APP)
    assert list(a.grants()) == [grant("GPU-a")]
    assert not a.is_empty
    assert Assignment("n", ((), ())).is_empty
    with pytest.raises(ValueError, match="one entry per container"):
        Assignment("n", ((),), names=("a", "b"))


def test_decode_ignores_unknown_keys() -> None:
    text = json.dumps(
        {
            "v": 1,
            "node": "n",
            "future": 1,
            "containers": [{"name": "c", "init": False, "devices": [], "x": 2}],
        }
    )
    assert decode_assignment(text) == Assignment("n", ((),), names=("c",), kinds=(APP,))


def _body(**changes: Any) -> str:
    device = {"uuid": "GPU-a", "model": "m", "mem": 1, "cores": 0}
    device.update(changes.pop("device", {}))
    container: dict[str, Any] = {"name": "c", "init": False, "devices": [device]}
    container.update(changes.pop("container", {}))
    body: dict[str, Any] = {"v": 1, "node": "n", "containers": [container]}
    body.update(changes)
    return json.dumps(body)


BAD_OURS: list[tuple[object, str]] = [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ("null", "not a JSON object"),
    (5, "not a string"),
    (None, "not a string"),
    ('{"node": "n", "containers": []}', "version None"),
    (_body(v=2), "version 2 is not supported"),
    (_body(v="1"), "version '1'"),
    (_body(v=True), "version True"),
    (_body(v=1.0), "version 1.0"),
    (_body(node=3), "node=3"),
    (_body(containers={}), "containers is not a list"),
    (_body(containers=[1]), "container 0 is not an object"),
    (_body(container={"name": None}), "name=None"),
    (_body(container={"init": "no"}), "init and sidecar must be booleans"),
    (_body(container={"devices": {}}), "devices is not a list"),
    (_body(container={"devices": ["x"]}), "device 0 is not an object"),
    (_body(device={"uuid": ""}), "uuid=''"),
    (_body(device={"mem": -1}), "mem=-1"),
    (_body(device={"mem": 1.5}), "mem=1.5"),
    (_body(device={"mem": True}), "mem=True"),
    (_body(device={"cores": 101}), "cores=101"),
    (_body(device={"model": None}), "model=None"),
    (_body(container={"devices": [{"uuid": "a", "model": "", "mem": 1, "cores": 0}] * 2}), "twice"),
    ("x" * 300_000, "longer than"),
]


@pytest.mark.parametrize(("value", "message"), BAD_OURS)
def test_decode_rejects_garbage_clearly(value: object, message: str) -> None:
    with pytest.raises(InvalidAssignment, match=GPU_ASSIGNMENT) as info:
        decode_assignment(value)
    assert message in str(info.value)
    assert isinstance(info.value, InvalidInput)


# --- HAMi annotations ------------------------------------------------------------------------

HAMI_ROWS: list[tuple[tuple[tuple[DeviceGrant, ...], ...], str]] = [
    (((grant("GPU-a", 3000, 0, "NVIDIA"),),), "GPU-a,NVIDIA,3000,0:;"),
    (
        ((grant("GPU-a", 1000, 30, "NVIDIA"), grant("GPU-b", 1000, 30, "NVIDIA")), ()),
        "GPU-a,NVIDIA,1000,30:GPU-b,NVIDIA,1000,30:;;",
    ),
    (((), (), (grant("GPU-m", 2000, 50, "NVIDIA"),)), ";;GPU-m,NVIDIA,2000,50:;"),
    (((), ()), ";;"),
    ((), ""),
]


@pytest.mark.parametrize(("containers", "text"), HAMI_ROWS)
def test_hami_device_encoding(containers: tuple[tuple[DeviceGrant, ...], ...], text: str) -> None:
    assert encode_hami_devices(containers) == text
    assert decode_hami_devices(text) == containers


def test_hami_encoding_writes_the_device_family_not_the_model() -> None:
    assert encode_hami_devices(((grant("GPU-a", 5, 0, "NVIDIA A10G"),),)) == "GPU-a,NVIDIA,5,0:;"


def test_hami_decode_tolerates_a_missing_final_separator_and_extra_fields() -> None:
    assert decode_hami_devices("GPU-a,NVIDIA,1,2") == ((grant("GPU-a", 1, 2, "NVIDIA"),),)
    assert decode_hami_devices("GPU-a,NVIDIA,1,2,extra:;") == ((grant("GPU-a", 1, 2, "NVIDIA"),),)
    assert decode_hami_devices("GPU-a,NVIDIA,1,250:;") == ((grant("GPU-a", 1, 100, "NVIDIA"),),)


BAD_HAMI = [
    "GPU-a,NVIDIA,1:;",
    ",NVIDIA,1,2:;",
    "GPU-a,,1,2:;",
    "GPU-a,NVIDIA,-1,2:;",
    "GPU-a,NVIDIA,1,x:;",
    "GPU-a,NVIDIA,1,²:;",
    "GPU-a,NVIDIA,99999999999,0:;",
    "garbage",
]


@pytest.mark.parametrize("text", BAD_HAMI)
def test_hami_decode_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidAssignment):
        decode_hami_devices(text)
    with pytest.raises(InvalidAssignment):
        assignment_from_hami({ALLOCATED: text})


def test_hami_encode_rejects_uuid_with_separators() -> None:
    with pytest.raises(InvalidAssignment):
        encode_hami_devices(((grant("GPU:a"),),))
    with pytest.raises(InvalidAssignment):
        encode_hami_devices(((grant("GPU-a"),),), device_type="NV,IDIA")


def test_hami_annotations_as_hami_writes_them_at_bind() -> None:
    a = Assignment("gpu-1", ((), (grant("GPU-a", 3000, 30),)), kinds=(INIT, APP))
    assert hami_annotations(a, 1716199325.7) == {
        TO_ALLOCATE: ";GPU-a,NVIDIA,3000,30:;",
        ALLOCATED: ";GPU-a,NVIDIA,3000,30:;",
        VGPU_NODE: "gpu-1",
        VGPU_TIME: "1716199325",
        BIND_PHASE: "allocating",
        BIND_TIME: "1716199325",
    }


LAYOUT_ROWS: list[tuple[str, dict[str, Any], list[tuple[str, ContainerKind, tuple[str, ...]]]]] = [
    # HAMi's own examples: one segment per container, init containers first
    ("GPU-abc123,NVIDIA,1000,30:;", {}, [("main", APP, ("GPU-abc123",))]),
    (
        "GPU-init1,NVIDIA,500,10:;;",
        {"init": ("setup",)},
        [("setup", INIT, ("GPU-init1",)), ("main", APP, ())],
    ),
    (
        ";;GPU-main1,NVIDIA,2000,50:;",
        {"init": ("a", "b")},
        [("a", INIT, ()), ("b", INIT, ()), ("main", APP, ("GPU-main1",))],
    ),
    # older HAMi: app containers only
    (
        "GPU-x,NVIDIA,1,0:;",
        {"init": ("setup",)},
        [("setup", INIT, ()), ("main", APP, ("GPU-x",))],
    ),
    (
        "GPU-s,NVIDIA,1,0:;GPU-m,NVIDIA,1,0:;",
        {"sidecars": ("proxy",)},
        [("proxy", SIDECAR, ("GPU-s",)), ("main", APP, ("GPU-m",))],
    ),
    # unknown layout: app containers, no names
    ("GPU-x,NVIDIA,1,0:;;;", {}, [("", APP, ("GPU-x",)), ("", APP, ()), ("", APP, ())]),
]


@pytest.mark.parametrize(("text", "shape", "expected"), LAYOUT_ROWS)
def test_hami_segments_align_with_the_pod(
    text: str, shape: dict[str, Any], expected: list[tuple[str, ContainerKind, tuple[str, ...]]]
) -> None:
    p = pod({ALLOCATED: text, VGPU_NODE: "gpu-1"}, **shape)
    found = assignment_of_pod(p)
    assert found is not None
    assert found.source == "hami"
    assert found.node == "gpu-1"
    got = [
        (n, k, tuple(g.uuid for g in d))
        for n, k, d in zip(found.names, found.kinds, found.containers, strict=True)
    ]
    assert got == expected


def test_hami_allocated_first_then_to_allocate() -> None:
    both = {ALLOCATED: "GPU-a,NVIDIA,1,0:;", TO_ALLOCATE: "GPU-b,NVIDIA,1,0:;"}
    assert [g.uuid for g in assignment_from_hami(both).grants()] == ["GPU-a"]  # type: ignore[union-attr]
    pending = {ALLOCATED: ";", TO_ALLOCATE: "GPU-b,NVIDIA,1,0:;"}
    assert [g.uuid for g in assignment_from_hami(pending).grants()] == ["GPU-b"]  # type: ignore[union-attr]
    assert assignment_from_hami({ALLOCATED: ";", TO_ALLOCATE: ";;"}) is None
    assert assignment_from_hami({}) is None


def test_hami_round_trip_with_layout() -> None:
    layout = (("setup", INIT), ("main", APP))
    a = Assignment(
        "gpu-1",
        ((grant("GPU-a", 10, 0, "NVIDIA"),), (grant("GPU-b", 20, 30, "NVIDIA"),)),
        names=("setup", "main"),
        kinds=(INIT, APP),
        source="hami",
    )
    assert assignment_from_hami(hami_annotations(a, 0), layout) == a


# --- assignment_of_pod -----------------------------------------------------------------------


def test_ours_wins_over_hami() -> None:
    ours = Assignment("gpu-1", ((grant("GPU-ours"),),), names=("main",), kinds=(APP,))
    annotations = {GPU_ASSIGNMENT: encode_assignment(ours), ALLOCATED: "GPU-hami,NVIDIA,1,0:;"}
    assert assignment_of_pod(pod(annotations)) == ours


def test_hami_without_node_takes_spec_node_name() -> None:
    found = assignment_of_pod(pod({ALLOCATED: "GPU-a,NVIDIA,1,0:;"}, node="gpu-7"))
    assert found is not None
    assert found.node == "gpu-7"
    unbound = assignment_of_pod(pod({ALLOCATED: "GPU-a,NVIDIA,1,0:;"}, node=None))
    assert unbound is not None
    assert unbound.node == ""


def test_pod_without_annotations_has_no_assignment() -> None:
    assert assignment_of_pod(pod()) is None
    assert assignment_of_pod({}) is None


def test_garbage_ours_raises_invalid_assignment() -> None:
    with pytest.raises(InvalidAssignment):
        assignment_of_pod(pod({GPU_ASSIGNMENT: "{", ALLOCATED: "GPU-a,NVIDIA,1,0:;"}))


def test_pod_layout() -> None:
    p = pod(init=("a",), sidecars=("s",), app=("m", "n"))
    assert pod_layout(p) == (("a", INIT), ("s", SIDECAR), ("m", APP), ("n", APP))


@pytest.mark.parametrize(
    ("phase", "terminated"),
    [("Running", False), ("Pending", False), ("Succeeded", True), ("Failed", True)],
)
def test_is_terminated(phase: str, terminated: bool) -> None:
    assert is_terminated(pod(phase=phase)) is terminated


# --- NodeUsage -------------------------------------------------------------------------------


def test_add_and_remove_count_slots_memory_cores() -> None:
    g = gpus()
    usage = NodeUsage(g)
    a = Assignment("n", ((grant("GPU-1", 3000, 30), grant("GPU-2", 3000, 30)),))
    b = Assignment("n", ((grant("GPU-1", 1000, 10),),))
    assert usage.add(a) == ()
    assert usage.add(b) == ()
    assert usage.used_slots == [0, 2, 1, 0]
    assert usage.used_mem == [0, 4000, 3000, 0]
    assert usage.used_cores == [0, 40, 30, 0]
    assert (usage.sum_slots, usage.sum_mem, usage.sum_cores) == (3, 7000, 70)
    assert usage.free_mem(1) == 6000
    assert usage.open_cards == 4
    assert usage.idle_cards == 2
    assert (usage.max_free_mem, usage.max_free_pos) == (10_000, 0)
    assert usage.remove(a) == ()
    assert usage.used_slots == [0, 1, 0, 0]
    assert usage.remove(b) == ()
    assert usage.used_slots == [0, 0, 0, 0]
    assert usage.drift == 0


def test_exclusive_grant_takes_all_of_its_card_cores() -> None:
    g = gpus(n=1, cores=200)  # core scaling: the card reports 200
    usage = NodeUsage(g)
    usage.add(Assignment("n", ((grant("GPU-0", 10_000, 100),),)))
    assert usage.used_cores == [200]
    assert usage.open_cards == 0


def test_init_containers_are_counted_once_at_their_peak() -> None:
    """init 8000 MiB then app 3000 MiB on the same card: the card holds 8000 at most."""
    g = gpus(n=2)
    a = Assignment(
        "n",
        ((grant("GPU-0", 8000, 50),), (grant("GPU-0", 3000, 20), grant("GPU-1", 3000, 20))),
        kinds=(INIT, APP),
    )
    loads, problems = card_loads(g, a.containers, a.kinds)
    assert problems == ()
    assert loads == {0: (1, 8000, 50), 1: (1, 3000, 20)}


def test_sidecars_add_to_app_and_to_later_init_containers() -> None:
    g = gpus(n=1)
    a = Assignment(
        "n",
        (
            (grant("GPU-0", 1000, 10),),  # init before the sidecar
            (grant("GPU-0", 2000, 20),),  # sidecar
            (grant("GPU-0", 5000, 10),),  # init after the sidecar: 5000 + 2000
            (grant("GPU-0", 3000, 30),),  # app: 3000 + 2000
        ),
        kinds=(INIT, SIDECAR, INIT, APP),
    )
    loads, _ = card_loads(g, a.containers, a.kinds)
    assert loads == {0: (2, 7000, 50)}


def test_unknown_cards_are_reported_not_counted() -> None:
    usage = NodeUsage(gpus(n=1))
    problems = usage.add(Assignment("n", ((grant("GPU-0"), grant("GPU-9")),)))
    assert problems == ("card GPU-9 is not on the node",)
    assert usage.used_slots == [1]


def test_remove_clamps_and_reports_drift() -> None:
    usage = NodeUsage(gpus(n=1))
    usage.add(Assignment("n", ((grant("GPU-0", 1000),),)))
    problems = usage.remove(Assignment("n", ((grant("GPU-0", 5000),),)))
    assert usage.used_mem == [0]
    assert usage.used_slots == [0]
    assert usage.drift == 1
    assert problems == ("card 0: removed more than was used",)
    usage.remove(Assignment("n", ((grant("GPU-0", 1),),)))
    assert usage.used_slots == [0]
    assert usage.drift == 3


def test_build_rebase_copy_and_cards() -> None:
    g = gpus(n=2)
    usage, problems = NodeUsage.build(g, [Assignment("n", ((grant("GPU-1", 700, 5),),))])
    assert problems == ()
    copied = usage.copy()
    copied.add(Assignment("n", ((grant("GPU-0", 100),),)))
    assert usage.used_slots == [0, 1]
    assert copied.used_slots == [1, 1]
    cordoned = NodeGPUs(
        (Card("GPU-1", 1, 10_000, 100, 4, "NVIDIA A10G", healthy=False),), InventorySource.HAMI
    )
    moved = usage.rebase(cordoned)
    assert moved.used_mem == [700]
    assert moved.open_cards == 0
    states = usage.cards()
    assert [(s.card.uuid, s.used_slots, s.used_mem_mib, s.used_cores) for s in states] == [
        ("GPU-0", 0, 0, 0),
        ("GPU-1", 1, 700, 5),
    ]


def test_version_bumps_and_memo_clears_on_change() -> None:
    usage = NodeUsage(gpus(n=1))
    before = usage.version
    usage.memo[1] = (object(), before, object())
    usage.add(Assignment("n", ((grant("GPU-0"),),)))
    assert usage.version > before
    assert usage.memo == {}
