"""The manifests in docs/examples/ do what docs/examples.md says they do.

Every pod manifest ``docs/examples/<name>.yaml`` has a ``<name>.expected.yaml``
beside it: the role, capacity, affinity, tolerations, annotations, normalized
vGPU resources, warnings and schedulerName the webhook produces. This test runs
each pod through the webhook's pure decision (:func:`webhook.mutate.mutate_pod`
with the default :class:`~webhook.settings.WebhookSettings`), applies the JSON
Patch the way the API server does, and compares. docs/examples.md must quote
every expected file verbatim, so the page, the expected files and the code
cannot drift apart. Custom resources (SparkApplication, InferenceService,
RayCluster) and the Namespace are checked for shape and for being documented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from tests.manifests import validation_errors
from webhook.mutate import MutationConfig, Outcome, mutate_pod
from webhook.settings import WebhookSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
PAGE = REPO / "docs" / "examples.md"
SCHEMA_VERSION = "1.30"
DEPLOY_SCHEDULER = "spotpack-scheduler"
"""What deploy/webhook/deployment.yaml sets SPOTPACK_WEBHOOK_SCHEDULER_NAME to."""

EXPECTED_KEYS = {
    "pod",
    "namespace",
    "outcome",
    "role",
    "capacity",
    "affinity",
    "tolerations",
    "annotationsAdded",
    "resources",
    "warnings",
    "schedulerName",
}
CUSTOM_KINDS = {
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("ray.io/v1", "RayCluster"),
}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not one YAML object"
    return data


def _manifests() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".expected.yaml"))


def _expected_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.expected.yaml"))


def _config(scheduler_name: str = "") -> MutationConfig:
    settings = WebhookSettings(
        cert_file=None, key_file=None, namespace_defaults=False, scheduler_name=scheduler_name
    )
    return settings.mutation_config()


def _mutate(
    pod: dict[str, Any], namespace_annotations: dict[str, str], config: MutationConfig
) -> tuple[Any, dict[str, Any]]:
    namespace = pod["metadata"]["namespace"]
    decision = mutate_pod(pod, namespace, namespace_annotations, config)
    return decision, jsonpatch.apply_patch(pod, list(decision.ops))


def _namespace_annotations(expected: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    if "namespace" not in expected:
        return {}
    namespace = _load(EXAMPLES / expected["namespace"])
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["name"] == pod["metadata"]["namespace"]
    return dict(namespace["metadata"].get("annotations") or {})


def _gpu_containers(pod: dict[str, Any]) -> set[str]:
    keys = ("nvidia.com/gpu", "nvidia.com/gpumem", "nvidia.com/gpumem-percentage")
    names = set()
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        sides = (resources.get("limits") or {}, resources.get("requests") or {})
        if any(key in side for side in sides for key in keys):
            names.add(container["name"])
    return names


def _body(path: Path) -> str:
    """An expected file without its leading comment lines: what the page quotes."""
    lines = path.read_text().splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines).strip()


def test_examples_exist() -> None:
    assert len(_expected_files()) >= 10
    kinds = {_load(p)["kind"] for p in _manifests()}
    assert {"Pod", "Namespace", "SparkApplication", "InferenceService", "RayCluster"} <= kinds


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_manifest_shape(path: Path) -> None:
    obj = _load(path)
    assert isinstance(obj.get("apiVersion"), str) and obj["apiVersion"]
    assert isinstance(obj.get("kind"), str) and obj["kind"]
    metadata = obj.get("metadata")
    assert isinstance(metadata, dict)
    assert metadata.get("name") or metadata.get("generateName")
    assert path.name in PAGE.read_text(), f"docs/examples.md does not mention {path.name}"
    if obj["kind"] in ("Pod", "Namespace"):
        assert validation_errors(obj, SCHEMA_VERSION) == []
    else:
        assert (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS
        assert metadata.get("namespace")
        assert isinstance(obj.get("spec"), dict)
    if obj["kind"] == "Pod":
        expected = path.with_name(path.name[: -len(".yaml")] + ".expected.yaml")
        assert expected.exists(), f"{path.name} has no {expected.name}"


@pytest.mark.parametrize("path", _expected_files(), ids=lambda p: p.name)
def test_page_quotes_expected(path: Path) -> None:
    assert _body(path) in PAGE.read_text(), (
        f"docs/examples.md must quote {path.name} verbatim (without its comment header)"
    )


@pytest.mark.parametrize("path", _expected_files(), ids=lambda p: p.name)
def test_webhook_does_what_the_docs_say(path: Path) -> None:
    expected = _load(path)
    assert set(expected) <= EXPECTED_KEYS, set(expected) - EXPECTED_KEYS
    pod = _load(EXAMPLES / expected["pod"])
    assert pod["kind"] == "Pod"
    namespace_annotations = _namespace_annotations(expected, pod)

    decision, result = _mutate(pod, namespace_annotations, _config())

    assert decision.outcome == Outcome(expected["outcome"])
    assert decision.role == expected["role"]
    assert list(decision.warnings) == expected["warnings"]
    before = pod["metadata"].get("annotations") or {}
    after = result["metadata"].get("annotations") or {}
    added = {k: v for k, v in after.items() if before.get(k) != v}
    assert added == expected["annotationsAdded"]
    assert after.get("spotpack.io/capacity-applied", "none") == expected["capacity"]
    if expected["capacity"] != "none":
        assert after["spotpack.io/detected-role"] == expected["role"]
    assert result["spec"].get("affinity") == expected["affinity"]
    assert (result["spec"].get("tolerations") or []) == expected["tolerations"]

    gpu = _gpu_containers(result)
    assert set(expected["resources"]) == gpu
    for container in result["spec"]["containers"]:
        name = container["name"]
        if name in expected["resources"]:
            assert container["resources"] == expected["resources"][name]
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            for key, value in limits.items():
                if key.startswith("nvidia.com/"):
                    assert requests[key] == value, f"{name}: {key} requests != limits"
        else:
            original = next(c for c in pod["spec"]["containers"] if c["name"] == name)
            assert container.get("resources") == original.get("resources")
    assert validation_errors(result, SCHEMA_VERSION) == []

    # Default settings never touch schedulerName.
    assert result["spec"].get("schedulerName") == pod["spec"].get("schedulerName")

    # A second pass (reinvocationPolicy: IfNeeded) changes nothing.
    again = mutate_pod(result, pod["metadata"]["namespace"], namespace_annotations, _config())
    assert again.ops == ()


@pytest.mark.parametrize("path", _expected_files(), ids=lambda p: p.name)
def test_scheduler_name_as_deployed(path: Path) -> None:
    expected = _load(path)
    pod = _load(EXAMPLES / expected["pod"])
    namespace_annotations = _namespace_annotations(expected, pod)
    _, result = _mutate(pod, namespace_annotations, _config(DEPLOY_SCHEDULER))
    shown = result["spec"].get("schedulerName")
    if expected["schedulerName"] == "unchanged":
        assert shown == pod["spec"].get("schedulerName")
    else:
        assert shown == expected["schedulerName"]


def test_deploy_sets_the_scheduler_name_the_docs_assume() -> None:
    """The expected files show schedulerName as deploy/ installs the webhook."""
    deployment = _load(REPO / "deploy" / "webhook" / "deployment.yaml")
    env = {
        e["name"]: e
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for e in c.get("env") or []
    }
    assert "SPOTPACK_WEBHOOK_SCHEDULER_NAME" in env
    if "value" in env["SPOTPACK_WEBHOOK_SCHEDULER_NAME"]:
        assert env["SPOTPACK_WEBHOOK_SCHEDULER_NAME"]["value"] == DEPLOY_SCHEDULER
    config_map = _load(REPO / "deploy" / "scheduler" / "scheduler-config.yaml")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert [p["schedulerName"] for p in config["profiles"]] == [DEPLOY_SCHEDULER]
