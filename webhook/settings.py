"""Webhook settings: typed, read from ``SPOTPACK_WEBHOOK_*`` variables, validated at start.

Built once by the CLI (or a test) and passed into :func:`webhook.app.create_app`;
nothing reads the environment after start-up.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotpack.capacity import OnDemandMatch, scheme_named
from spotpack.placement import DEFAULT_ROLE_CAPACITY, PlacementRules
from spotpack.policy import CapacityMode
from spotpack.roles import RoleClass
from spotpack.settings import load
from spotpack.vgpu.normalize import NormalizeOptions
from webhook.mutate import MutationConfig


class WebhookSettings(BaseSettings):
    """Everything an operator can set; each field's env name is ``SPOTPACK_WEBHOOK_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SPOTPACK_WEBHOOK_", extra="ignore", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - a webhook must be reachable from the API server
    port: int = Field(default=8443, ge=1, le=65535)
    cert_file: str | None = "certs/out/tls.crt"
    key_file: str | None = "certs/out/tls.key"
    workers: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=4, ge=1, le=256)
    max_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    """The API server caps objects near 1.5 MB; 3 MiB leaves room for the envelope."""
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    label_scheme: Literal["karpenter", "eks", "gke", "aks"] = "karpenter"
    capacity_label: str | None = None
    spot_value: str | None = None
    on_demand_value: str | None = None
    on_demand_match: OnDemandMatch = OnDemandMatch.NOT_SPOT
    preferred_weight: int = Field(default=50, ge=1, le=100)
    role_capacity: dict[RoleClass, CapacityMode | None] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_CAPACITY)
    )
    """Per-role default as JSON, e.g. ``{"worker": "spot"}``; null leaves the role alone."""

    own_namespace: str = "spotpack-system"
    skip_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-system", "kube-node-lease", "kube-public"]
    )
    namespace_defaults: bool = True
    """Read ``spotpack.io/`` annotations of namespaces as defaults (needs the Kubernetes API)."""
    kubeconfig: str | None = None
    ready_timeout_seconds: float = Field(default=10.0, ge=0)
    """How long /readyz waits for the namespace cache before serving with global defaults."""

    scheduler_name: str = ""
    """Set ``spec.schedulerName`` of GPU pods to this profile (the one with the extender);
    empty leaves it alone. Only pods that asked for the default scheduler are moved."""

    max_vgpus_per_container: int = Field(default=16, ge=1, le=64)
    gpushare_unit: Literal["GiB", "MiB"] = "GiB"
    catalog_file: str | None = None
    """An override merged over the packaged catalog, as the extender's and the provisioner's;
    its GPU models are what ``spotpack.io/gpu-include``/``gpu-exclude`` are checked against."""

    @field_validator("role_capacity", mode="before")
    @classmethod
    def _merge_roles(cls, value: object) -> object:
        """A partial map overrides only the roles it names."""
        if isinstance(value, dict):
            return {**{k.value: v for k, v in DEFAULT_ROLE_CAPACITY.items()}, **value}
        return value

    def mutation_config(self, gpu_models: tuple[str, ...] = ()) -> MutationConfig:
        """The pure decision's configuration, derived from these settings.

        ``gpu_models`` are the catalog's GPU model names (the app factory reads the
        catalog once); empty leaves GPU model patterns unchecked.
        """
        scheme = scheme_named(
            self.label_scheme,
            key=self.capacity_label,
            spot_value=self.spot_value,
            on_demand_value=self.on_demand_value,
        )
        placement = PlacementRules(
            scheme=scheme,
            on_demand_match=self.on_demand_match,
            role_capacity=dict(self.role_capacity),
            preferred_weight=self.preferred_weight,
        )
        vgpu = NormalizeOptions(
            max_vgpus_per_container=self.max_vgpus_per_container,
            gpushare_unit=self.gpushare_unit,
        )
        skip = frozenset([*self.skip_namespaces, self.own_namespace])
        return MutationConfig(
            placement=placement,
            vgpu=vgpu,
            skip_namespaces=skip,
            gpu_scheduler=self.scheduler_name or None,
            gpu_models=gpu_models,
        )


def load_settings(**overrides: object) -> WebhookSettings:
    """Read settings from the environment; an invalid value is a :class:`ConfigError`."""
    return load(WebhookSettings, "SPOTPACK_WEBHOOK_", **overrides)
