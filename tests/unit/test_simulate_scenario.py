"""The scenario schema and loader: strict, and every error one line naming file, place and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotpack.simulate.scenario import (
    Scenario,
    ScenarioError,
    Workload,
    load_scenario,
    parse_scenario,
    parse_text,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "scenarios").glob("*.yaml"))


def minimal(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "tiny",
        "duration": 600,
        "workloads": [
            {
                "name": "web",
                "template": {
                    "containers": [{"name": "app", "resources": {"requests": {"cpu": 1}}}]
                },
            }
        ],
    }
    doc.update(over)
    return doc


def workload(**over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {"name": "web", "template": {"containers": [{"name": "app"}]}}
    w.update(over)
    return w


def test_shipped_scenarios_load_and_are_short() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"spark-etl", "llm-inference", "gpu-training"} <= names
    for path in SHIPPED:
        scenario = load_scenario(path)
        assert scenario.name == path.stem
        assert 15 <= scenario.real_seconds(scenario.duration) <= 60


def test_spark_scenario_has_one_driver_and_twenty_executors() -> None:
    spark = load_scenario(REPO / "scenarios" / "spark-etl.yaml")
    roles = {w.template.labels.get("spark-role"): w.peak() for w in spark.workloads}
    assert roles == {"driver": 1, "executor": 20}


def test_defaults_and_quantities() -> None:
    s = parse_scenario(minimal())
    assert (s.compression, s.tick, s.seed, s.region) == (60.0, 10.0, 0, "us-east-1")
    assert s.workloads[0].template.containers[0].resources.requests == {"cpu": "1"}
    assert s.real_seconds(600) == 10.0


@pytest.mark.parametrize(
    ("replicas", "t", "want"),
    [
        (3, 0, 3),
        (3, 599, 3),
        ([{"at": 0, "replicas": 2}, {"at": 100, "replicas": 6}], 99.9, 2),
        ([{"at": 0, "replicas": 2}, {"at": 100, "replicas": 6}], 100, 6),
        ([{"at": 50, "replicas": 2}], 10, 0),
    ],
)
def test_desired_replicas_over_time(replicas: Any, t: float, want: int) -> None:
    w = Workload.model_validate(workload(replicas=replicas))
    assert w.desired(t) == want


@pytest.mark.parametrize(("t", "want"), [(9.9, 0), (10, 4), (19.9, 4), (20, 0)])
def test_desired_is_zero_outside_start_and_end(t: float, want: int) -> None:
    assert Workload.model_validate(workload(start=10, end=20, replicas=4)).desired(t) == want


def resources(res: dict[str, Any], name: str = "executors") -> dict[str, Any]:
    """A scenario whose second workload's container has these resources."""
    return minimal(
        workloads=[
            workload(name="driver"),
            workload(name=name, template={"containers": [{"name": "c", "resources": res}]}),
        ]
    )


CPU = "workloads[1] (executors).template.containers[0].resources.requests.cpu"
QUANTITY_FIX = "fix: write a Kubernetes quantity such as 500m, 2, 4Gi"


@pytest.mark.parametrize(
    ("doc", "place", "fix"),
    [
        (resources({"requests": {"cpu": "4 cores"}}), CPU, QUANTITY_FIX),
        (resources({"requests": {"cpu": "four"}}), CPU, QUANTITY_FIX),
        (resources({"requests": {"cpu": ""}}), CPU, QUANTITY_FIX),
        (resources({"requests": {"cpu": -1}}), CPU + ": quantity -1 is negative", QUANTITY_FIX),
        (resources({"requests": {"cpu": float("inf")}}), CPU, QUANTITY_FIX),
        (resources({"requests": {"cpu": [4]}}), CPU, QUANTITY_FIX),
        (
            resources({"limits": {"memory": "8 GB"}}),
            "workloads[1] (executors).template.containers[0].resources.limits.memory",
            QUANTITY_FIX,
        ),
        (
            resources({"requests": {"memory": "16Gi"}, "limits": {"memory": "8Gi"}}),
            "workloads[1] (executors).template.containers[0].resources.requests.memory: "
            "request 16Gi is above its limit 8Gi",
            "lower the request or raise the limit",
        ),
        (
            minimal(workloads=[workload(name="driver"), workload(name="x" * 41)]),
            "workloads[1] (" + "x" * 41 + ").name: String should have at most 40 characters",
            "fix: use a shorter value",
        ),
        (
            minimal(workloads=[workload(name="driver"), workload(name=7)]),
            "workloads[1].name: Input should be a valid string",  # not a name to show
            "fix: write a string",
        ),
    ],
)
def test_bad_quantities_are_refused_naming_the_workload(
    doc: dict[str, Any], place: str, fix: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, "my.yaml")
    message = str(info.value)
    assert message.startswith(f"my.yaml: {place}"), message
    assert fix in message and "\n" not in message, message


@pytest.mark.parametrize(
    ("value", "text"),
    [("500m", "500m"), (2, "2"), (0.5, "0.5"), ("4Gi", "4Gi"), ("1e3", "1e3"), (" 1 ", "1")],
)
def test_good_quantities_are_kept_as_written(value: Any, text: str) -> None:
    s = parse_scenario(resources({"requests": {"cpu": value}}))
    assert s.workloads[1].template.containers[0].resources.requests == {"cpu": text}


@pytest.mark.parametrize(
    ("toleration", "problem"),
    [
        ({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}, None),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, None),
        ({"operator": "Exists"}, None),
        ({"key": "k", "operator": "Exists", "tolerationSeconds": 30}, "effect: must be NoExecute"),
        ({"key": "k", "operator": "Exists", "value": "v"}, "value: must be empty"),
        ({"value": "v"}, "operator: must be Exists when key is empty"),
        ({"key": "k", "operator": "Like"}, "operator: Input should be 'Equal' or 'Exists'"),
        ({"key": "k", "efect": "NoSchedule"}, "efect: Extra inputs are not permitted"),
        ({"key": "k", "effect": "NoExecute", "tolerationSeconds": "soon"}, "tolerationSeconds"),
    ],
)
def test_tolerations_follow_kubernetes(toleration: dict[str, Any], problem: str | None) -> None:
    doc = minimal(
        workloads=[workload(template={"containers": [{"name": "c"}], "tolerations": [toleration]})]
    )
    if problem is None:
        got = parse_scenario(doc).workloads[0].template.tolerations[0].manifest()
        assert got == toleration
        return
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, "my.yaml")
    assert str(info.value).startswith("my.yaml: workloads[0] (web).template.tolerations[0]."), info
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("doc", "place", "fix"),
    [
        (minimal(duration=-5), "duration", "use a larger value"),
        (minimal(durration=5), "durration", "remove it or check its spelling"),
        ({k: v for k, v in minimal().items() if k != "workloads"}, "workloads", "add it"),
        (minimal(workloads=[]), "workloads", "add at least one entry"),
        (minimal(name="Not A Label"), "name", "DNS label"),
        (minimal(workloads=[workload(kind="cronjob")]), "workloads[0] (web).kind", "use one of"),
        (
            minimal(
                workloads=[workload(replicas=[{"at": 5, "replicas": 1}, {"at": 1, "replicas": 2}])]
            ),
            "workloads[0] (web).replicas",
            "increasing",
        ),
        (minimal(workloads=[workload(replicas=-1)]), "workloads[0] (web).replicas", "0..500"),
        (
            minimal(
                workloads=[
                    workload(
                        template={
                            "containers": [{"name": "a", "resources": {"requests": {"cpu": True}}}]
                        }
                    )
                ]
            ),
            "workloads[0] (web).template.containers[0].resources.requests.cpu",
            "quantity",
        ),
        (minimal(workloads=[workload(end=900)]), "workloads[0] (web): start", "end <= duration"),
        (
            minimal(workloads=[workload(), workload()]),
            "workloads[1] (web).name: 'web' is used twice",
            "another name",
        ),
        (minimal(interruptions={"at": [700]}), "interruptions.at[0]", "within 0..duration"),
        (minimal(interruptions={"rate": 1}), "interruptions.rate", "spelling"),
        (minimal(tick=0.001), "(top level)", "steps"),
    ],
)
def test_errors_name_the_file_the_place_and_a_fix(
    doc: dict[str, Any], place: str, fix: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc, "my.yaml")
    message = str(info.value)
    assert message.startswith(f"my.yaml: {place}"), message
    assert fix in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: [unclosed\n", "my.yaml:2:1: YAML syntax error"),
        ("name: a\n  bad: indent\n", "my.yaml:2:6: YAML syntax error"),
        ("", "the document is empty"),
        ("- a\n- b\n", "the document is list"),
        ("name: a\n---\nname: b\n", "2 YAML documents"),
        ("just text", "the document is str"),
    ],
)
def test_yaml_problems(text: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_text(text, "my.yaml")
    assert str(info.value).startswith("my.yaml"), info.value
    assert words in str(info.value)


def test_files(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml: cannot read it .*fix: give the path"):
        load_scenario(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(minimal()))
    assert isinstance(load_scenario(good), Scenario)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "name",
        "duration",
        "workloads",
        "tick",
        "compression",
        "interruptions",
        "replicas",
        "template",
        "containers",
        "resources",
        "requests",
        "at",
        "start",
        "end",
        "kind",
    ]
)
near_documents = st.recursive(
    json_values,
    lambda children: st.dictionaries(keys, children, max_size=6) | st.lists(children, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=near_documents)
def test_loader_raises_only_scenario_errors_on_any_document(document: Any) -> None:
    try:
        parse_scenario(document, "x.yaml")
    except ScenarioError as exc:
        assert str(exc).startswith("x.yaml") and "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_loader_raises_only_scenario_errors_on_any_text(text: str) -> None:
    try:
        parse_text(text, "x.yaml")
    except ScenarioError as exc:
        assert "\n" not in str(exc)


def test_recursive_yaml_aliases_are_an_error_not_a_crash() -> None:
    with pytest.raises(ScenarioError):
        parse_text("name: &a [*a]\nduration: 5\nworkloads: &b [*b]\n", "x.yaml")
