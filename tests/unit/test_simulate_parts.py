"""The simulator's pure parts: kube-scheduler's checks, the controllers, sampling, the report."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from spotpack.catalog import load_catalog
from spotpack.cloud.local import NodeSpec, node_manifest
from spotpack.errors import InvalidInput
from spotpack.simulate.engine import busiest, interruption_probability, service_env
from spotpack.simulate.metrics import Figures, Interruption, RunRecord, figures
from spotpack.simulate.observe import (
    WORKLOAD_LABEL,
    NodeSample,
    PodSample,
    Sample,
    node_sample,
    pod_sample,
)
from spotpack.simulate.progress import ProgressBar, bar
from spotpack.simulate.report import (
    html_report,
    json_document,
    price_note,
    svg_chart,
    terminal_table,
    time_label,
    time_step,
    value_axis,
)
from spotpack.simulate.scenario import Workload, parse_scenario
from spotpack.simulate.scheduler import (
    Candidate,
    Room,
    best_node,
    feasible,
    managed_by_extender,
    pod_request,
    term_matches,
    tolerates,
)
from spotpack.simulate.workloads import LivePod, pod_manifest, reconcile, seq_of

CATALOG = load_catalog()


def node(
    name: str,
    *,
    cpu: str = "4",
    mem: str = "16Gi",
    gpus: int = 0,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": mem, "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {
            "name": name,
            "labels": {"karpenter.sh/capacity-type": "spot", **(labels or {})},
        },
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str = "p",
    *,
    cpu: str = "1",
    mem: str = "1Gi",
    gpu: int = 0,
    node_name: str | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if gpu:
        limits = {"nvidia.com/gpu": str(gpu), "nvidia.com/gpumem": "4000"}
    body: dict[str, Any] = {
        "containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": limits}}
        ],
        **(spec or {}),
    }
    if node_name:
        body["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": body}


# --- scheduler -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "want"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        (
            {"key": "k", "operator": "Exists"},
            {"key": "k", "value": "v", "effect": "NoExecute"},
            True,
        ),
        (
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
        ),
        ({"operator": "Exists"}, {"key": "any", "effect": "NoSchedule"}, True),
        ({"key": "j", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_tolerates(toleration: dict[str, str], taint: dict[str, str], want: bool) -> None:
    assert tolerates([toleration], taint) is want


@pytest.mark.parametrize(
    ("term", "want"),
    [
        (
            {
                "matchExpressions": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
                ]
            },
            True,
        ),
        (
            {
                "matchExpressions": [
                    {"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}
                ]
            },
            False,
        ),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}, True),
        ({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}, False),
        ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}, True),
        ({}, False),  # an empty term matches nothing
    ],
)
def test_term_matches(term: dict[str, Any], want: bool) -> None:
    assert term_matches(term, node("n1", labels={"cores": "8"})) is want


def test_feasible_applies_kube_schedulers_own_filters() -> None:
    not_spot = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "karpenter.sh/capacity-type",
                                    "operator": "NotIn",
                                    "values": ["spot"],
                                }
                            ]
                        }
                    ]
                }
            }
        }
    }
    nodes = [
        node("full", cpu="2"),
        node("free", cpu="8"),
        node(
            "tainted",
            taints=[{"key": "spotpack.io/interruption", "value": "x", "effect": "NoSchedule"}],
        ),
        node("down", ready=False),
        node("od", labels={"karpenter.sh/capacity-type": "on-demand"}),
    ]
    used = {"full": Room(1500, 0, 1, 0)}
    names = [c.name for c in feasible(pod(cpu="1"), nodes, used)]
    assert names == ["free", "od"]
    assert [c.name for c in feasible(pod(spec=not_spot), nodes, used)] == ["od"]
    gpu_nodes = [node("g1", gpus=2), node("g2", gpus=4)]
    assert [c.name for c in feasible(pod(gpu=1), gpu_nodes, {"g1": Room(0, 0, 2, 2)})] == ["g2"]


def test_pod_request_counts_vgpu_slots() -> None:
    assert pod_request(pod(cpu="500m", mem="2Gi", gpu=2)) == Room(500, 2048, 1, 2)
    assert managed_by_extender(pod(gpu=1)) and not managed_by_extender(pod())


@pytest.mark.parametrize(
    ("extender", "want"),
    [
        (None, "b"),  # affinity 100 * 2 beats a little more free room
        ({"a": 10, "b": 0}, "a"),  # 3 * 10 * 10 = 300 points outweigh 200
        ({"a": 5, "b": 0}, "b"),  # 150 < 200
        ({"a": 0}, "a"),  # only names the extender kept
        ({}, None),
    ],
)
def test_best_node_mixes_scores(extender: dict[str, int] | None, want: str | None) -> None:
    candidates = [Candidate("a", 0.0, 60.0), Candidate("b", 100.0, 50.0)]
    assert best_node(candidates, extender) == want


# --- controllers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "live", "create", "delete"),
    [
        (3, [], 3, ()),
        (3, [LivePod("w-0", 0, True)], 2, ()),
        (
            1,
            [LivePod("w-0", 0, True), LivePod("w-1", 1, True), LivePod("w-2", 2, False)],
            0,
            ("w-2", "w-1"),
        ),
        (0, [LivePod("w-0", 0, True)], 0, ("w-0",)),
        (2, [LivePod("w-0", 0, True), LivePod("w-1", 1, False)], 0, ()),
    ],
)
def test_reconcile(desired: int, live: list[LivePod], create: int, delete: tuple[str, ...]) -> None:
    decision = reconcile(desired, live)
    assert (decision.create, decision.delete) == (create, delete)


def test_pod_manifest_carries_the_template_and_an_owner() -> None:
    w = Workload.model_validate(
        {
            "name": "etl-exec",
            "namespace": "analytics",
            "kind": "job",
            "template": {
                "labels": {"spark-role": "executor"},
                "annotations": {"a": "b"},
                "containers": [
                    {"name": "c", "resources": {"limits": {"volcano.sh/vgpu-number": 1}}}
                ],
                "tolerations": [{"key": "x", "operator": "Exists"}],
            },
        }
    )
    manifest = pod_manifest(w, 7, "s")
    meta = manifest["metadata"]
    assert meta["name"] == "etl-exec-7" and seq_of(meta["name"], w) == 7
    assert meta["labels"] == {"spark-role": "executor", WORKLOAD_LABEL: "etl-exec"}
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert manifest["spec"]["containers"][0]["resources"] == {
        "limits": {"volcano.sh/vgpu-number": "1"}
    }
    assert manifest["spec"]["tolerations"] == [{"key": "x", "operator": "Exists"}]
    assert seq_of("other-1", w) == -1


# --- sampling --------------------------------------------------------------------------------


def test_node_sample_reads_a_local_cloud_node() -> None:
    itype = CATALOG.instance("g4dn.12xlarge")
    assert itype is not None and itype.gpu is not None
    manifest = node_manifest(
        NodeSpec(
            "local-c1",
            "c1",
            itype,
            "us-east-1a",
            "us-east-1",
            "spot",
            {},
            (),
            datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    sample = node_sample(manifest)
    assert (sample.instance_type, sample.zone, sample.capacity, sample.cards) == (
        "g4dn.12xlarge",
        "us-east-1a",
        "spot",
        4,
    )
    assert sample.gpu_mem_mib == 4 * itype.gpu.mem_mib and sample.gpu_cores == 400
    assert not sample.interrupted


def test_pod_sample_prefers_the_assignment_of_a_bound_pod() -> None:
    raw = pod("p", gpu=1, node_name="g1")
    raw["metadata"]["labels"] = {WORKLOAD_LABEL: "llm"}
    assignment = {
        "v": 1,
        "node": "g1",
        "containers": [
            {
                "name": "c",
                "init": False,
                "devices": [{"uuid": "GPU-1", "model": "T4", "mem": 4000, "cores": 25}],
            }
        ],
    }
    raw["metadata"]["annotations"] = {
        "spotpack.io/gpu-assignment": orjson.dumps(assignment).decode()
    }
    got = pod_sample(raw)
    assert got == PodSample("ns/p", "llm", "g1", 1000, 1024, 1, 4000, 25, False)
    pending = pod("q", gpu=1)
    pending["metadata"]["labels"] = {WORKLOAD_LABEL: "llm"}
    assert pod_sample(pending) == PodSample("ns/q", "llm", None, 1000, 1024, 1, 4000, 0, False)
    assert pod_sample(pod("r")) is None  # not ours


# --- report and progress ---------------------------------------------------------------------


def small_figures(*, gpu: bool = False, empty_node_event: bool = False) -> Figures:
    pod_a = PodSample("n/a", "w", "a", 1000, 1024)
    pod_b = PodSample("n/a", "w", "b", 1000, 1024)
    nodes_b: tuple[NodeSample, ...] = (NodeSample("b", "m5.large", "us-east-1a", "spot"),)
    if gpu:
        pod_b = PodSample("n/a", "w", "b", 1000, 1024, 1, 4000, 30)
        nodes_b = (NodeSample("b", "g4dn.xlarge", "us-east-1a", "spot", 1, 16384, 100),)
    samples = (
        Sample(0.0, (NodeSample("a", "m5.large", "us-east-1a", "on-demand"),), (pod_a,), {"w": 1}),
        Sample(60.0, nodes_b, (pod_b,), {"w": 1}),
        Sample(90.0, (), (PodSample("n/a", "w", None, 1000, 1024),), {"w": 1}),
    )
    events = [Interruption(30.0, "a", "m5.large", "scheduled", ("w",), 60.0)]
    if empty_node_event:
        events.append(Interruption(40.0, "e", "m5.large", "poisson", ()))
    from spotpack.simulate.baseline import baseline_point, chooser

    choose = chooser(CATALOG, "us-east-1")
    record = RunRecord(
        "demo",
        120.0,
        samples,
        tuple(baseline_point(s, choose) for s in samples),
        {"n/a": 0.0},
        {"n/a": 0.0},
        tuple(events),
        60.0,
        ("a <note> & more",),
    )
    return figures(record, CATALOG, "us-east-1")


def test_html_report_is_self_contained_and_has_the_charts() -> None:
    text = html_report(small_figures(gpu=True), "desc <b>")
    assert not re.search(r"https?://", text)
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    assert text.count("<svg") == 6
    for title in (
        "cost per hour",
        "spot share",
        "GPU memory allocated",
        "GPU cores allocated",
        "pods pending",
    ):
        assert title in text
    assert "desc &lt;b&gt;" in text and "a &lt;note&gt; &amp; more" in text
    assert "<polyline" in text
    assert "spot prices: the catalog&#x27;s estimates" in text


def test_a_run_without_gpu_pods_shows_no_gpu_figures_or_charts() -> None:
    f = small_figures()
    assert not f.gpu_requested and f.gpu_mem_util is None
    text = html_report(f)
    assert text.count("<svg") == 4 and "GPU memory allocated</text>" not in text
    rows = {line.split("  ")[0]: line for line in terminal_table(f).splitlines()}
    assert rows["GPU memory allocated"].split()[-2:] == ["-", "-"]
    assert rows["GPU cores allocated"].split()[-2:] == ["-", "-"]
    assert json_document(f)["gpu_mem_util"] is None


def test_terminal_table_and_json() -> None:
    f = small_figures(empty_node_event=True)
    table = terminal_table(f)
    assert "total cost" in table and "saved" in table
    assert "2 (1 hit workloads, 1 survived; 1 on empty nodes)" in table
    assert "spot prices: the catalog's estimates, not market prices" in table
    doc = json_document(f)
    assert (doc["interruptions_hit"], doc["interruptions_survived"]) == (1, 1)
    assert doc["interruptions_on_empty_nodes"] == 1
    assert doc["spot_price_sources"] == {"m5.large": "estimate"}
    assert orjson.loads(orjson.dumps(doc))["series"]["t"] == [0.0, 60.0, 90.0]
    assert doc["series"]["spot_share"] == (0.0, 1.0, None)  # no nodes: no share
    assert "- (no workload pods)" in html_report(f)


@pytest.mark.parametrize(
    ("sources", "want"),
    [
        ({}, None),
        (
            {"m5.large": "estimate", "g4dn.xlarge": "estimate"},
            "spot prices: the catalog's estimates, not market prices "
            "('spotpack catalog refresh' fetches live ones)",
        ),
        ({"m5.large": "live"}, "spot prices: live for m5.large"),
        (
            {"m5.large": "estimate", "c5.large": "live", "r5.large": "snapshot"},
            "spot prices: live for c5.large; snapshot for r5.large; estimate for m5.large "
            "(estimates are the catalog's, not market prices "
            "('spotpack catalog refresh' fetches live ones))",
        ),
    ],
)
def test_price_note_says_where_spot_prices_came_from(
    sources: dict[str, str], want: str | None
) -> None:
    assert price_note(sources) == want


def test_progress_bar() -> None:
    assert bar(0.5, 10) == "[#####.....]" and bar(2.0, 4) == "[####]"
    plain = io.StringIO()
    p = ProgressBar(plain, live=False, label="x")
    for t in range(0, 101, 5):
        p.update(float(t), 100.0, "")
    p.close()
    assert len(plain.getvalue().splitlines()) == 11  # one line per 10%
    live = io.StringIO()
    q = ProgressBar(live, live=True)
    q.update(50.0, 100.0, "ok")
    q.close()
    assert live.getvalue().startswith("\r") and live.getvalue().endswith("\n")


def test_service_env_scales_timings_by_the_compression() -> None:
    sc = parse_scenario(
        {
            "name": "s",
            "duration": 600,
            "compression": 60,
            "node_startup_seconds": 90,
            "scale_down_delay_seconds": 120,
            "interruptions": {"warning_seconds": 120},
            "zones": ["us-east-1a"],
            "workloads": [{"name": "w", "template": {"containers": [{"name": "c"}]}}],
        }
    )
    env = service_env(sc)["provisioner"]
    assert env["SPOTPACK_PROVISIONER_LOCAL_REGISTRATION_DELAY_SECONDS"] == "1.500"
    assert env["SPOTPACK_PROVISIONER_EMPTY_NODE_DELAY_SECONDS"] == "2.000"
    assert env["SPOTPACK_PROVISIONER_NOTICE_WINDOW_SECONDS"] == "2.000"
    assert env["SPOTPACK_PROVISIONER_ZONES"] == '["us-east-1a"]'
    assert service_env(sc)["webhook"] == {"SPOTPACK_WEBHOOK_SCHEDULER_NAME": "spotpack-scheduler"}


@pytest.mark.parametrize(
    ("rate", "step", "want"),
    [
        (0.0, 60.0, 0.0),
        (1.0, 3600.0, 1 - 2.718281828459045**-1),  # one expected per hour: 63.2% in an hour
        (2.0, 15.0, 1 - 2.718281828459045 ** (-2 * 15 / 3600)),
        (3600.0, 1.0, 1 - 2.718281828459045**-1),
    ],
)
def test_interruption_probability_per_step(rate: float, step: float, want: float) -> None:
    assert interruption_probability(rate, step) == pytest.approx(want)


def _pods(*nodes: str) -> tuple[PodSample, ...]:
    return tuple(PodSample(f"sim/p{i}", "w", node) for i, node in enumerate(nodes))


@pytest.mark.parametrize(
    ("pods_on", "placed", "want"),
    [
        (("a", "b", "b"), {}, "b"),  # most sampled pods
        (("a", "b", "b"), {"a": ["w", "w"]}, "a"),  # pods bound this step count too
        (("a", "b"), {}, "b"),  # a tie goes to the greatest name
        ((), {}, "b"),  # no pods at all: still the greatest name
    ],
)
def test_busiest_node_is_the_scheduled_interruptions_target(
    pods_on: tuple[str, ...], placed: dict[str, list[str]], want: str
) -> None:
    nodes = [NodeSample(n, "m5.large", "us-east-1a", "spot") for n in ("a", "b")]
    sample = Sample(0.0, tuple(nodes), _pods(*pods_on))
    assert busiest(nodes, sample, placed).name == want


@pytest.mark.parametrize(
    ("peak", "integer", "top", "step"),
    [
        (3.47, False, 4.0, 1.0),
        (2.0, False, 2.0, 0.5),
        (2.01, False, 2.5, 0.5),
        (0.868, False, 1.0, 0.2),
        (23.1, False, 25.0, 5.0),
        (0.0031, False, 0.004, 0.001),
        (7.0, False, 8.0, 2.0),
        (0.0, False, 1.0, 0.2),
        # counts: whole-number ticks only
        (0.0, True, 1.0, 1.0),
        (1.0, True, 1.0, 1.0),
        (3.0, True, 3.0, 1.0),
        (5.0, True, 5.0, 1.0),
        (6.0, True, 6.0, 2.0),
        (7.0, True, 8.0, 2.0),
        (20.0, True, 20.0, 5.0),
        (23.0, True, 25.0, 5.0),
        (130.0, True, 150.0, 50.0),
    ],
)
def test_value_axis_ticks_are_round(peak: float, integer: bool, top: float, step: float) -> None:
    assert value_axis(peak, integer=integer) == (pytest.approx(top), pytest.approx(step))


@pytest.mark.parametrize(
    ("span", "step", "last"),
    [
        (60.0, 10.0, "60 s"),
        (120.0, 15.0, "120 s"),
        (600.0, 120.0, "10 min"),
        (1800.0, 300.0, "30 min"),  # spark-etl: every 5 min
        (2700.0, 300.0, "45 min"),  # gpu-training: every 5 min
        (3600.0, 600.0, "60 min"),  # llm-inference: every 10 min
        (5400.0, 600.0, "90 min"),
        (4 * 3600.0, 1800.0, "240 min"),
        (8 * 3600.0, 3600.0, "8 h"),
        (24 * 3600.0, 10800.0, "24 h"),
        (7 * 86400.0, 86400.0, "7 d"),
        (30 * 86400.0, 604800.0, ""),  # weeks (ticks 0, 7 d, ... 28 d)
    ],
)
def test_time_ticks_fall_on_round_steps(span: float, step: float, last: str) -> None:
    assert time_step(span) == step
    assert span / step <= 9
    if span % step == 0:
        assert time_label(span, step) == last


def test_time_labels_use_the_steps_unit() -> None:
    assert [time_label(k * 300.0, 300.0) for k in range(3)] == ["0", "5 min", "10 min"]
    assert time_label(5400.0, 1800.0) == "90 min" and time_label(7200.0, 3600.0) == "2 h"
    assert time_label(45.0, 15.0) == "45 s" and time_label(2 * 86400.0, 86400.0) == "2 d"


def _texts(svg: str, css_class: str) -> list[str]:
    return re.findall(rf'class="{css_class}"[^>]*>([^<]*)<', svg)


def test_chart_ticks_legend_gaps_and_marks() -> None:
    svg = svg_chart(
        "nodes",
        [0.0, 600.0, 1200.0, 1800.0],
        [("spotpack", [3.0, None, 7.0, 6.0]), ("baseline", [1.0, 2.0, 2.0, 1.0])],
        t_end=1800.0,
        integer=True,
        marks=[900.0],
    )
    ticks = _texts(svg, "tick")
    assert ticks[:5] == ["0", "2", "4", "6", "8"]  # counts in whole numbers
    assert ticks[5:] == ["0", "5 min", "10 min", "15 min", "20 min", "25 min", "30 min"]
    assert _texts(svg, "legend") == ["interruption", "baseline", "spotpack"]
    legend_ys = {float(y) for y in re.findall(r'y="([\d.]+)"[^>]*class="legend"', svg)}
    plot_top = min(float(y) for y in re.findall(r'y1="([\d.]+)"[^>]*class="grid"', svg))
    assert max(legend_ys) < plot_top  # the legend sits above the plot, not on its lines
    assert svg.count("<polyline") == 2  # spotpack: a gap leaves [3] and [7, 6]
    assert svg.count("<circle") == 1
    assert svg.count('class="mark"') == 1


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        ({"requests": {"cpu": "4 cores"}}, "'4 cores' is not a Kubernetes quantity"),
        ({"requests": {"memory": "lots"}}, "'lots' is not a Kubernetes quantity"),
        ({"limits": {"nvidia.com/gpu": "0.5"}}, "nvidia.com/gpu"),
    ],
)
def test_unreadable_requests_are_an_error_naming_the_pod_never_zero(
    resources: dict[str, Any], words: str
) -> None:
    raw = pod("p")
    raw["spec"]["containers"][0]["resources"] = resources
    raw["metadata"]["labels"] = {WORKLOAD_LABEL: "w"}
    with pytest.raises(InvalidInput, match=r"pod ns/p: cannot read its requests") as info:
        pod_request(raw)
    assert words in str(info.value)
    with pytest.raises(InvalidInput, match=r"pod ns/p: cannot read its requests"):
        pod_sample(raw)


def test_pod_manifest_writes_tolerations_as_kubernetes_does() -> None:
    w = Workload.model_validate(
        {
            "name": "w",
            "template": {
                "containers": [{"name": "c"}],
                "tolerations": [
                    {
                        "key": "node.kubernetes.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 30,
                    }
                ],
            },
        }
    )
    assert pod_manifest(w, 0, "s")["spec"]["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        }
    ]
