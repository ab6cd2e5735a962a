"""Extender settings: typed, read from ``SPOTPACK_EXTENDER_*`` variables, validated at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotpack.settings import load


class ExtenderSettings(BaseSettings):
    """Everything an operator can set; each field's env name is ``SPOTPACK_EXTENDER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SPOTPACK_EXTENDER_", extra="ignore", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - the scheduler reaches the extender over the pod network
    port: int = Field(default=8444, ge=1, le=65535)
    cert_file: str | None = "certs/out/tls.crt"
    key_file: str | None = "certs/out/tls.key"
    """Empty both for plain HTTP (the extender as a sidecar of the scheduler, on localhost)."""
    threads: int = Field(default=16, ge=1, le=256)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Full-node mode sends every candidate Node object: 5,000 nodes are ~15 MB."""
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    kubeconfig: str | None = None
    local: bool = False
    """Serve from an embedded in-memory cluster instead of a real one (demos, tests)."""
    local_seed: str | None = None
    """Directory of YAML objects to seed the embedded cluster with."""

    label_scheme: Literal["karpenter", "eks", "gke", "aks"] = "karpenter"
    capacity_label: str | None = None
    spot_value: str | None = None
    region: str = "us-east-1"
    catalog_file: str | None = None
    """An override file merged over the packaged catalog (a mounted ConfigMap)."""

    weight_gpu: float = Field(default=3.0, ge=0)
    weight_risk: float = Field(default=2.0, ge=0)
    weight_price: float = Field(default=1.0, ge=0)
    reservation_ttl_seconds: float = Field(default=300.0, gt=0)
    bind_timeout_seconds: float = Field(default=5.0, gt=0)
    resync_seconds: float = Field(default=600.0, ge=0)


def load_settings(**overrides: object) -> ExtenderSettings:
    """Read settings from the environment; an invalid value is a :class:`ConfigError`."""
    return load(ExtenderSettings, "SPOTPACK_EXTENDER_", **overrides)
