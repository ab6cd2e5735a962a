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
from pydantic_core import PydanticCustomError

from spotpack.errors import InvalidInput, InvalidQuantity
from spotpack.quantity import parse_quantity

MAX_FILE_BYTES = 1024 * 1024
MAX_TICKS = 20_000
MAX_REPLICAS = 500
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def _quantity(value: object) -> str:
    """A quantity as Kubernetes writes it, checked by the project's parser; kept as its text.

    ``"4 cores"`` or ``-1`` would otherwise reach the services, which read an
    unparseable request as nothing at all: every pod would fit anywhere and the
    run would report savings it never made. Numbers become their text.
    """
    try:
        number = parse_quantity(value)
    except InvalidQuantity as exc:
        raise PydanticCustomError("quantity", "{problem}", {"problem": str(exc)}) from exc
    if number < 0:
        raise PydanticCustomError(
            "quantity", "quantity {value} is negative", {"value": repr(value)}
        )
    return str(value).strip()


Quantity = Annotated[str, BeforeValidator(_quantity)]


class _PlacedError(ValueError):
    """A cross-field problem that knows where in the document it is (``loc``)."""

    def __init__(self, loc: tuple[int | str, ...], message: str, fix: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.fix = fix


class ScenarioError(InvalidInput):
    """A scenario file that cannot be used; the message is one line naming file, place, fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Resources(_Strict):
    """A container's requests and limits, Kubernetes quantities (``"500m"``, ``4Gi``, ``2``).

    As the API server does, a request above its limit is refused.
    """

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise _PlacedError(
                    ("requests", name),
                    f"request {request} is above its limit {limit}",
                    "lower the request or raise the limit",
                )
        return self


class Toleration(_Strict):
    """A Kubernetes toleration, with its Kubernetes field names (``tolerationSeconds``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str | None = None
    operator: Literal["Equal", "Exists"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise _PlacedError(
                ("value",), "must be empty when operator is Exists", "remove value or use Equal"
            )
        if not self.key and self.operator != "Exists":
            raise _PlacedError(
                ("operator",), "must be Exists when key is empty", "give a key or use Exists"
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise _PlacedError(
                ("effect",),
                "must be NoExecute when tolerationSeconds is set",
                "add effect: NoExecute or remove tolerationSeconds",
            )
        return self

    def manifest(self) -> dict[str, Any]:
        """The toleration as it goes into a pod spec (unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


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
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
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
        """The most replicas the workload ever wants."""
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
        seen: set[str] = set()
        for i, w in enumerate(self.workloads):
            if w.name in seen:
                raise _PlacedError(
                    ("workloads", i, "name"), f"{w.name!r} is used twice", "give it another name"
                )
            seen.add(w.name)
            end = self.duration if w.end is None else w.end
            if not w.start < end <= self.duration:
                raise _PlacedError(
                    ("workloads", i),
                    f"start {w.start:g} and end {end:g}: need start < end <= duration "
                    f"({self.duration:g})",
                    "move start or end, or lengthen duration",
                )
        for i, t in enumerate(self.interruptions.at):
            if not 0 <= t < self.duration:
                raise _PlacedError(
                    ("interruptions", "at", i),
                    f"{t:g} is not within 0..duration ({self.duration:g})",
                    "use a time within the run",
                )
        return self

    def real_seconds(self, simulated: float) -> float:
        """Real seconds for a span of simulated seconds (services run in real time)."""
        return simulated / self.compression

    def namespaces(self) -> list[str]:
        """The workloads' namespaces, sorted: the run creates each before the first pod."""
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
    "string_too_long": "use a shorter value",
    "bool_type": "write true or false",
    "quantity": "write a Kubernetes quantity such as 500m, 2, 4Gi or 1e3",
}


def _where(loc: tuple[int | str, ...], document: object = None) -> str:
    """``workloads[1] (executors).template.containers[0]...``: a workload by index and name."""
    out = ""
    for n, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            if loc[:n] == ("workloads",):
                name = _workload_name(document, part)
                out += f" ({name})" if name else ""
        elif part in ("int", "list[ReplicaStep]", "str", "float") or "[" in str(part):
            continue  # union branch names, not places in the document
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _workload_name(document: object, index: int) -> str | None:
    """The ``name`` the document gives workload ``index``, if it is a plain short string."""
    workloads = document.get("workloads") if isinstance(document, Mapping) else None
    if not isinstance(workloads, list) or not 0 <= index < len(workloads):
        return None
    entry = workloads[index]
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) and 0 < len(name) <= 63 else None


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def explain(error: ValidationError, source: str, document: object = None) -> str:
    """The first problem of a validation error as ``FILE: PATH: what; fix: how``.

    ``document`` (the loaded YAML) lets the path name a workload by its ``name``.
    """
    first = error.errors(include_url=False)[0]
    loc = tuple(first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    cause = (first.get("ctx") or {}).get("error")
    kind = str(first.get("type", ""))
    fix = _FIXES.get(kind, "see the example scenarios in scenarios/")
    if isinstance(cause, _PlacedError):
        loc, message, fix = loc + cause.loc, str(cause), cause.fix
    message = message.removeprefix("Value error, ")
    more = len(error.errors()) - 1
    tail = f" ({more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return _one_line(f"{source}: {_where(loc, document)}: {message}; fix: {fix}{tail}")


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
        raise ScenarioError(explain(exc, source, document)) from exc
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
    "Toleration",
    "Workload",
    "document_of",
    "load_scenario",
    "parse_scenario",
    "parse_text",
]
