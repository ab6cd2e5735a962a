"""The scenario file: a strict schema, and a loader whose every error is one actionable line.

A scenario is a user's file, so every mistake must come back as one line that
names the file, where in the document the problem is, and what to write
instead -- never a traceback and never a pydantic dump. Unknown keys are
refused (``extra="forbid"``): a misspelt ``replicas`` silently ignored would
run a different experiment than the one the user wrote.

All times are **simulated seconds** from the start of the run. ``compression``
is how many simulated seconds pass per real second; the services run in real
time, so their own timings (batch windows, node start-up, notice window,
scale-down delay) are scaled by it (:meth:`Scenario.real_seconds`).

Example::

    name: spark-etl
    duration: 1800         # simulated seconds
    compression: 60        # 1 real second = 1 simulated minute
    tick: 15
    interruptions: {rate_per_node_hour: 0.5, at: [600]}
    workloads:
      - name: etl-driver
        namespace: analytics
        kind: pod
        replicas: 1
        template:
          labels: {spark-role: driver, spark-app-selector: etl}
          containers: [{name: spark, resources: {requests: {cpu: "1", memory: 4Gi}}}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spotpack.errors import InvalidInput

MAX_FILE_BYTES = 1024 * 1024
MAX_TICKS = 20_000
MAX_REPLICAS = 500
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def _quantity(value: object) -> str:
    """A quantity as Kubernetes writes it: numbers become their text, booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a quantity is a number or a string such as 500m or 4Gi")
    text = str(value).strip()
    if not text or len(text) > 64:
        raise ValueError("a quantity is a number or a string such as 500m or 4Gi")
    return text


Quantity = Annotated[str, BeforeValidator(_quantity)]


class ScenarioError(InvalidInput):
    """A scenario file that cannot be used; the message is one line naming file, place, fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Resources(_Strict):
    """A container's requests and limits, Kubernetes quantities (``"500m"``, ``4Gi``, ``2``)."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class Container(_Strict):
    name: str = Field(pattern=DNS_LABEL)
    image: str = "registry.example/workload:latest"
    resources: Resources = Field(default_factory=Resources)


class PodTemplate(_Strict):
    """What every pod of a workload starts as, before the webhook mutates it.

    Labels and annotations are where the webhook's role detection looks
    (``spark-role``, ``serving.kserve.io/inferenceservice``,
    ``training.kubeflow.org/replica-type``, ``spotpack.io/capacity`` ...);
    GPU resources may be in any dialect the webhook normalizes.
    """

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    containers: list[Container] = Field(min_length=1, max_length=16)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(default_factory=list)
    priority_class_name: str | None = None

    @field_validator("containers")
    @classmethod
    def _unique_names(cls, containers: list[Container]) -> list[Container]:
        names = [c.name for c in containers]
        if len(set(names)) != len(names):
            raise ValueError("container names must be unique")
        return containers


class ReplicaStep(_Strict):
    """From simulated second ``at`` on, the workload wants ``replicas`` pods."""

    at: float = Field(ge=0)
    replicas: int = Field(ge=0, le=MAX_REPLICAS)


WorkloadKind = Literal["deployment", "statefulset", "job", "pod"]
"""What owns the pods (the ownerReference the webhook's generic rules read); ``pod``: none."""


class Workload(_Strict):
    """Pods of one template, wanted from ``start`` to ``end`` in the numbers ``replicas`` says.

    ``replicas`` is a number, or a schedule of steps (an inference service
    scaling with load). The simulator plays the controller: it creates missing
    pods (again after an eviction) and deletes surplus ones, newest first.
    """

    name: str = Field(pattern=DNS_LABEL, max_length=40)
    namespace: str = Field(default="default", pattern=DNS_LABEL)
    kind: WorkloadKind = "deployment"
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, gt=0)
    replicas: int | list[ReplicaStep] = 1
    template: PodTemplate

    @field_validator("replicas")
    @classmethod
    def _schedule(cls, value: int | list[ReplicaStep]) -> int | list[ReplicaStep]:
        if isinstance(value, int):
            if not 0 <= value <= MAX_REPLICAS:
                raise ValueError(f"must be 0..{MAX_REPLICAS}")
            return value
        if not value:
            raise ValueError("a schedule needs at least one step")
        times = [s.at for s in value]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("schedule steps must have increasing 'at' times")
        return value

    def desired(self, t: float) -> int:
        """Replicas wanted at simulated second ``t`` (0 outside ``[start, end)``)."""
        if t < self.start or (self.end is not None and t >= self.end):
            return 0
        if isinstance(self.replicas, int):
            return self.replicas
        wanted = 0
        for step in self.replicas:
            if step.at <= t:
                wanted = step.replicas
        return wanted

    def peak(self) -> int:
        if isinstance(self.replicas, int):
            return self.replicas
        return max(s.replicas for s in self.replicas)


class Interruptions(_Strict):
    """Spot interruptions the simulator injects.

    ``rate_per_node_hour``: each spot node is interrupted by a Poisson process
    of that rate (per simulated node-hour), seeded by the scenario's ``seed``.
    ``at``: additional interruptions at these simulated seconds, each of the
    busiest spot node at that time (deterministic demos and tests).
    ``warning_seconds``: the notice window (AWS gives 120 s).
    """

    rate_per_node_hour: float = Field(default=0.0, ge=0, le=100)
    at: list[float] = Field(default_factory=list, max_length=1000)
    warning_seconds: float = Field(default=120.0, gt=0, le=3600)


class Scenario(_Strict):
    """One replayable experiment."""

    name: str = Field(pattern=DNS_LABEL)
    description: str = ""
    duration: float = Field(gt=0, le=30 * 24 * 3600)
    compression: float = Field(default=60.0, gt=0, le=10_000)
    """Simulated seconds per real second."""
    tick: float = Field(default=10.0, gt=0)
    """Simulated seconds per step of the simulator (scheduling, controllers, samples)."""
    seed: int = 0
    region: str = "us-east-1"
    zones: list[str] = Field(default_factory=list)
    """Zones the provisioner may launch in; empty: the catalog's zones of the region."""
    node_startup_seconds: float = Field(default=60.0, ge=0)
    """How long a new node takes to register (simulated)."""
    scale_down_delay_seconds: float = Field(default=120.0, ge=0)
    """How long an empty node of ours lives before it is removed (simulated)."""
    interruptions: Interruptions = Field(default_factory=Interruptions)
    workloads: list[Workload] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.duration / self.tick > MAX_TICKS:
            raise ValueError(f"duration / tick must be at most {MAX_TICKS} steps")
        names = [w.name for w in self.workloads]
        if len(set(names)) != len(names):
            raise ValueError("workload names must be unique")
        for w in self.workloads:
            end = self.duration if w.end is None else w.end
            if not w.start < end <= self.duration:
                raise ValueError(
                    f"workload {w.name}: need start < end <= duration ({self.duration})"
                )
        if any(not 0 <= t < self.duration for t in self.interruptions.at):
            raise ValueError("interruptions.at times must be within 0..duration")
        return self

    def real_seconds(self, simulated: float) -> float:
        """Real seconds for a span of simulated seconds (services run in real time)."""
        return simulated / self.compression

    def namespaces(self) -> list[str]:
        return sorted({w.namespace for w in self.workloads})


# --- loading -------------------------------------------------------------------------------

_FIXES: Mapping[str, str] = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "string_pattern_mismatch": "use lower-case letters, digits and '-' (a DNS label)",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
    "too_long": "use fewer entries",
    "literal_error": "use one of the values listed",
    "model_type": "write a mapping (key: value) here",
    "dict_type": "write a mapping (key: value) here",
    "list_type": "write a list here",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "string_type": "write a string (quote it)",
    "bool_type": "write true or false",
}


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("int", "list[ReplicaStep]", "str", "float") or "[" in str(part):
            continue  # union branch names, not places in the document
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def explain(error: ValidationError, source: str) -> str:
    """The first problem of a validation error as ``FILE: PATH: what; fix: how``."""
    first = error.errors(include_url=False)[0]
    where = _where(tuple(first.get("loc", ())))
    kind = str(first.get("type", ""))
    fix = _FIXES.get(kind, "see the example scenarios in scenarios/")
    more = len(error.errors()) - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return _one_line(f"{source}: {where}: {first.get('msg', 'invalid')}; fix: {fix}{tail}")


def parse_scenario(document: object, source: str = "<scenario>") -> Scenario:
    """Validate a loaded document; anything wrong is a :class:`ScenarioError`."""
    if not isinstance(document, Mapping):
        kind = "empty" if document is None else type(document).__name__
        raise ScenarioError(
            f"{source}: the document is {kind}, not a mapping; fix: start with 'name:', "
            "'duration:' and 'workloads:' (see scenarios/)"
        )
    try:
        return Scenario.model_validate(dict(document))
    except ValidationError as exc:
        raise ScenarioError(explain(exc, source)) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ScenarioError(
            _one_line(f"{source}: cannot read the document ({exc}); fix: plain YAML values only")
        ) from exc


def parse_text(text: str, source: str = "<scenario>") -> Scenario:
    """Parse YAML text (one document); syntax errors name the line and column."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        raise ScenarioError(
            _one_line(f"{where}: YAML syntax error: {problem}; fix: correct the YAML there")
        ) from exc
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ScenarioError(
            _one_line(f"{source}: not YAML ({exc}); fix: write the scenario as YAML")
        ) from exc
    if len(documents) > 1:
        raise ScenarioError(
            f"{source}: {len(documents)} YAML documents; fix: one scenario per file "
            "(remove the '---' separators)"
        )
    return parse_scenario(documents[0] if documents else None, source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    target = Path(path)
    try:
        size = target.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"{target}: {size} bytes; fix: a scenario is at most {MAX_FILE_BYTES} bytes"
            )
        raw = target.read_bytes()
    except OSError as exc:
        raise ScenarioError(
            f"{target}: cannot read it ({exc.strerror or exc}); fix: give the path of a "
            "scenario YAML file, e.g. scenarios/spark-etl.yaml"
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{target}: not UTF-8 text; fix: save the file as UTF-8") from exc
    return parse_text(text, str(target))


def document_of(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data (for the JSON output)."""
    return scenario.model_dump(mode="json")


__all__ = [
    "Container",
    "Interruptions",
    "PodTemplate",
    "ReplicaStep",
    "Scenario",
    "ScenarioError",
    "Workload",
    "document_of",
    "load_scenario",
    "parse_scenario",
    "parse_text",
]
