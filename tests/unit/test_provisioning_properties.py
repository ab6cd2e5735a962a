"""Properties of the planner over random pods, existing nodes, offerings and limits.

- every pending pod is placed exactly once or unplaceable with a reason;
- every new node holds its pods: CPU, memory and pod slots within the
  offering's allocatable, and the GPU pods, replayed in the planned order
  through :func:`spotpack.gpu.fit.fit_prepared`, fit the node's cards (vGPU
  slots, memory and cores per card);
- the same on existing nodes, against their free room and a copy of their usage;
- capacity type, arch and zone of every node are allowed for its pods; CPU
  pods never get GPU nodes; limits hold; the plan's cost is its nodes' prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.catalog import load_catalog
from spotpack.gpu.assignment import Assignment, DeviceGrant
from spotpack.gpu.demand import prepare
from spotpack.gpu.fit import fit_prepared
from spotpack.gpu.inventory import Card, InventorySource, NodeGPUs
from spotpack.gpu.usage import NodeUsage
from spotpack.provisioning import (
    CapacityNeed,
    Limits,
    NodeCapacity,
    Offering,
    Plan,
    PodDemand,
    Resources,
    offerings_from_catalog,
    plan,
)
from spotpack.provisioning.offerings import arch_refusal, offering_gpus
from spotpack.vgpu.model import ContainerVGPU, PodGPUDemand, VGPURequest

ZONES = ("us-east-1a", "us-east-1b")
TYPES = (
    "m5.large",
    "m5.xlarge",
    "m5.4xlarge",
    "c5.2xlarge",
    "r5.xlarge",
    "m6g.large",
    "m6g.2xlarge",
    "g4dn.xlarge",
    "g4dn.12xlarge",
    "g5.2xlarge",
    "g6e.xlarge",
)
GIB = 1024
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def offerings() -> tuple[Offering, ...]:
    return tuple(
        offerings_from_catalog(
            load_catalog(), "us-east-1", ZONES, types=TYPES, overhead=Resources(100, 200, 2)
        )
    )


@cache
def offering_index() -> dict[tuple[str, str, str], Offering]:
    return {(o.instance_type, o.zone, o.capacity): o for o in offerings()}


vgpu_requests = st.one_of(
    st.builds(
        VGPURequest,
        count=st.integers(1, 2),
        mem_mib=st.sampled_from([1024, 2048, 4096, 6144, 8192, 12288, 20000]),
    ),
    st.builds(VGPURequest, count=st.just(1)),  # a whole card
    st.builds(VGPURequest, count=st.integers(1, 2), mem_percent=st.sampled_from([10, 25, 50])),
    st.builds(
        VGPURequest, count=st.just(1), mem_mib=st.just(4096), cores=st.sampled_from([20, 50, 100])
    ),
)
gpu_demands = st.one_of(
    st.just(PodGPUDemand()),
    st.just(PodGPUDemand()),
    vgpu_requests.map(lambda r: PodGPUDemand((ContainerVGPU("main", r),))),
    st.tuples(vgpu_requests, vgpu_requests).map(
        lambda rs: PodGPUDemand(
            (ContainerVGPU("init", rs[0], init=True), ContainerVGPU("main", rs[1]))
        )
    ),
)
zone_sets = st.sampled_from(
    [None, frozenset({"us-east-1a"}), frozenset({"us-east-1b"}), frozenset(ZONES)]
)
arch_sets = st.sampled_from([None, None, frozenset({"amd64"}), frozenset({"arm64"})])


@st.composite
def pods(draw: st.DrawFn) -> list[PodDemand]:
    n = draw(st.integers(1, 24))
    out = []
    for i in range(n):
        out.append(
            PodDemand(
                key=f"ns/p{i:02d}",
                uid=f"u{i}",
                group=f"g{draw(st.integers(0, 3))}",
                resources=Resources(draw(st.integers(0, 7000)), draw(st.integers(0, 40 * GIB)), 1),
                gpu=draw(gpu_demands),
                capacity=draw(st.sampled_from(list(CapacityNeed))),
                arch=draw(arch_sets),
                zones=draw(zone_sets),
                rerun_cost=draw(st.sampled_from([0.0, 0.3, 12.0])),
            )
        )
    return out


@st.composite
def existing(draw: st.DrawFn) -> list[NodeCapacity]:
    nodes = []
    for i in range(draw(st.integers(0, 3))):
        gpus = usage = None
        if draw(st.booleans()):
            cards = draw(st.integers(1, 4))
            gpus = NodeGPUs(
                tuple(
                    Card(
                        uuid=f"n{i}-g{c}",
                        index=c,
                        mem_mib=16384,
                        slots=draw(st.integers(1, 10)),
                        model="T4",
                    )
                    for c in range(cards)
                ),
                InventorySource.HAMI,
            )
            usage = NodeUsage(gpus)
            for c in range(cards):
                used = draw(st.integers(0, 12000))
                if used:
                    usage.add(Assignment(f"n{i}", ((DeviceGrant(f"n{i}-g{c}", "T4", used, 0),),)))
        nodes.append(
            NodeCapacity(
                name=f"node-{i}",
                instance_type="m5.4xlarge",
                zone=draw(st.sampled_from(ZONES)),
                capacity=draw(st.sampled_from(["spot", "on-demand"])),
                arch=draw(st.sampled_from(["amd64", "arm64"])),
                free=Resources(
                    draw(st.integers(0, 16000)),
                    draw(st.integers(0, 64 * GIB)),
                    draw(st.integers(0, 20)),
                ),
                gpus=gpus,
                usage=usage,
                in_flight=draw(st.booleans()),
            )
        )
    return nodes


limit_sets = st.one_of(
    st.just(Limits()),
    st.builds(
        Limits,
        max_nodes=st.one_of(st.none(), st.integers(0, 4)),
        max_gpus=st.one_of(st.none(), st.integers(0, 6)),
        max_cost_per_hour=st.one_of(st.none(), st.floats(0.0, 3.0)),
    ),
)


def allowed(p: PodDemand, capacity: str, zone: str, arch: str) -> bool:
    return (
        p.capacity.allows(capacity)  # type: ignore[arg-type]
        and (p.zones is None or zone in p.zones)
        and (p.arch is None or arch in p.arch)
    )


def replay_gpu(pods: Sequence[PodDemand], gpus: NodeGPUs, usage: NodeUsage, node: str) -> None:
    """Every GPU pod, in order, fits the cards left by those before it."""
    for p in pods:
        if not p.is_gpu:
            continue
        prepared = prepare(p.gpu, include=p.gpu_include, exclude=p.gpu_exclude)
        result = fit_prepared(prepared, gpus, usage)
        assert result.ok, f"{p.key} does not fit the cards of {node}: {result.reason}"
        assert result.assignment_devices is not None
        usage.add(
            Assignment(node, result.assignment_devices, kinds=tuple(s.kind for s in prepared.steps))
        )


def check_new_nodes(result: Plan, by_key: dict[str, PodDemand]) -> None:
    for node in result.new_nodes:
        offering = offering_index()[(node.instance_type, node.zone, node.capacity)]
        members = [by_key[k] for k in node.pods]
        total = Resources()
        for p in members:
            total = total + p.resources
            assert allowed(p, node.capacity, node.zone, offering.arch), (p, node)
            assert p.is_gpu == (offering.gpu is not None), (p.key, node.instance_type)
        assert total.fits(offering.allocatable), (node, total)
        gpus = offering_gpus(offering, node.claim_id)
        if gpus is not None:
            replay_gpu(members, gpus, NodeUsage(gpus), node.claim_id)
        assert node.price_per_hour == offering.price_per_hour
        assert node.risk_cost_per_hour >= 0


def check_existing(
    result: Plan, nodes: Sequence[NodeCapacity], by_key: dict[str, PodDemand]
) -> None:
    named = {n.name: n for n in nodes}
    members: dict[str, list[PodDemand]] = {}
    for key, name in result.onto_existing.items():
        members.setdefault(name, []).append(by_key[key])
    for name, on_node in members.items():
        node = named[name]
        total = Resources()
        for p in on_node:
            total = total + p.resources
            assert allowed(p, node.capacity, node.zone, node.arch)
            assert p.is_gpu == (node.gpus is not None)
        assert total.fits(node.free)
        if node.gpus is not None:
            base = node.usage.copy() if node.usage is not None else NodeUsage(node.gpus)
            replay_gpu(on_node, node.gpus, base, name)


@SETTINGS
@given(pods(), existing(), limit_sets)
def test_plan_properties(
    pending: list[PodDemand], nodes: list[NodeCapacity], limits: Limits
) -> None:
    before = [n.usage.sum_slots if n.usage is not None else 0 for n in nodes]
    result = plan(pending, nodes, offerings(), limits)
    by_key = {p.key: p for p in pending}
    placed = list(result.onto_existing) + [k for n in result.new_nodes for k in n.pods]
    assert len(placed) == len(set(placed))
    assert set(placed).isdisjoint(result.unplaceable)
    assert set(placed) | set(result.unplaceable) == set(by_key)
    assert all(reason for reason in result.unplaceable.values())
    check_new_nodes(result, by_key)
    check_existing(result, nodes, by_key)
    if limits.max_nodes is not None:
        assert len(result.new_nodes) <= limits.max_nodes
    if limits.max_gpus is not None:
        cards = sum(
            offering_index()[(n.instance_type, n.zone, n.capacity)].cards for n in result.new_nodes
        )
        assert cards <= limits.max_gpus
    if limits.max_cost_per_hour is not None:
        assert result.cost_per_hour <= limits.max_cost_per_hour + 1e-9
    assert abs(result.cost_per_hour - sum(n.price_per_hour for n in result.new_nodes)) < 1e-6
    assert [n.usage.sum_slots if n.usage is not None else 0 for n in nodes] == before
    assert plan(pending, nodes, offerings(), limits) == result


@cache
def offerings_of(arches: frozenset[str]) -> tuple[Offering, ...]:
    return tuple(
        offerings_from_catalog(
            load_catalog(),
            "us-east-1",
            ZONES,
            types=TYPES,
            overhead=Resources(100, 200, 2),
            arches=arches,
        )
    )


ALLOWED = st.sampled_from(
    [frozenset({"amd64"}), frozenset({"arm64"}), frozenset({"amd64", "arm64"})]
)


@SETTINGS
@given(pods(), ALLOWED)
def test_new_nodes_only_have_allowed_architectures(
    pending: list[PodDemand], allowed: frozenset[str]
) -> None:
    """The SPOTPACK_PROVISIONER_ARCHITECTURES rule: offerings of other arches are never bought."""
    arch_of = {t.name: t.arch for t in load_catalog().all()}
    result = plan(pending, (), offerings_of(allowed))
    by_key = {p.key: p for p in pending}
    for node in result.new_nodes:
        assert node.arch in allowed
        assert {arch_of[t] for t in node.instance_types} == {node.arch}  # fallbacks too
        for key in node.pods:
            asked = by_key[key].arch
            assert asked is None or node.arch in asked
            assert arch_refusal(asked, allowed) is None
    for p in pending:
        if arch_refusal(p.arch, allowed) is not None:
            assert p.key in result.unplaceable
