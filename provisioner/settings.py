"""Provisioner settings: typed, read from ``SPOTPACK_PROVISIONER_*`` variables, validated at start.

Complex values (``zones``, ``subnets``, ``labels``) are JSON in the environment,
e.g. ``SPOTPACK_PROVISIONER_SUBNETS='{"us-east-1a": "subnet-0abc"}'``.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotpack.errors import ConfigError, InvalidQuantity
from spotpack.provisioning.model import Limits, Resources
from spotpack.quantity import bytes_of, cpu_millis
from spotpack.settings import load

PREFIX = "SPOTPACK_PROVISIONER_"


def default_identity() -> str:
    """hostname and pid: unique per replica, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ProvisionerSettings(BaseSettings):
    """Everything an operator can set; each field's env name is ``SPOTPACK_PROVISIONER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    # --- where ---------------------------------------------------------------------------
    cloud: Literal["aws", "local"] = "aws"
    local: bool = False
    """Run against an embedded in-memory cluster with the local (kwok-like) cloud: a demo."""
    kubeconfig: str | None = None
    region: str = "us-east-1"
    zones: list[str] = Field(default_factory=list)
    """Zones to launch in; default: the subnets' zones (aws) or the region's (local)."""
    cluster_name: str = "spotpack"
    label_scheme: Literal["karpenter", "eks", "gke", "aks"] = "karpenter"
    catalog_file: str | None = None
    """An override file merged over the packaged catalog (a mounted ConfigMap)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels for the nodes we launch."""
    daemonset_cpu: str = "0"
    daemonset_memory: str = "0"
    daemonset_pods: int = Field(default=0, ge=0)
    """What the cluster's DaemonSets request on every node (CNI, kube-proxy, CSI driver,
    log and metrics agents): a new node is packed with this much less room. Set it
    to your DaemonSets' requests (an EKS node with the VPC CNI, kube-proxy and EBS
    CSI: about 250m, 320Mi, 4 pods); it is not yet derived from the cluster."""

    def daemonset_overhead(self) -> Resources:
        """The DaemonSet overhead as planner resources; a bad quantity is a ConfigError."""
        try:
            return Resources(
                cpu_millis(self.daemonset_cpu),
                -(-bytes_of(self.daemonset_memory) // (1024 * 1024)),
                self.daemonset_pods,
            )
        except InvalidQuantity as exc:
            raise ConfigError(f"SPOTPACK_PROVISIONER_DAEMONSET_CPU/MEMORY: {exc}") from exc

    # --- aws -----------------------------------------------------------------------------
    subnets: dict[str, str] = Field(default_factory=dict)
    """Zone -> subnet id; CreateFleet launches into these."""
    launch_template: str | None = None
    image_id: str | None = None
    """Without a launch template: an AMI for a minimal ``spotpack-<cluster>`` template."""
    aws_endpoint_url: str | None = None
    sqs_queue_url: str | None = None
    """The EventBridge -> SQS queue of interruption notices; none: no interruption handling."""

    # --- the loop ------------------------------------------------------------------------
    batch_idle_seconds: float = Field(default=1.0, gt=0)
    batch_max_seconds: float = Field(default=10.0, gt=0)
    registration_timeout_seconds: float = Field(default=900.0, gt=0)
    empty_node_delay_seconds: float = Field(default=300.0, ge=0)
    orphan_grace_seconds: float = Field(default=120.0, ge=0)
    gc_interval_seconds: float = Field(default=60.0, gt=0)
    replan_seconds: float = Field(default=30.0, gt=0)
    scan_seconds: float = Field(default=5.0, ge=0)
    """How often empty nodes are looked for (the empty-node delay is counted in these steps)."""
    tick_seconds: float = Field(default=1.0, gt=0)
    unavailable_ttl_seconds: float = Field(default=180.0, gt=0)
    """How long an offering that ran out of capacity is avoided."""
    drain_retry_seconds: float = Field(default=2.0, gt=0)
    notice_window_seconds: float | None = Field(default=None, gt=0)
    """Drain deadline for notices without one; default: the cloud's warning window."""
    rerun_hours: float = Field(default=1.0, ge=0)
    local_registration_delay_seconds: float = Field(default=0.0, ge=0)

    # --- limits --------------------------------------------------------------------------
    max_nodes: int | None = Field(default=None, ge=0)
    max_gpus: int | None = Field(default=None, ge=0)
    max_cost_per_hour: float | None = Field(default=None, ge=0)

    # --- leader election -----------------------------------------------------------------
    leader_election: bool = True
    lease_name: str = "spotpack-provisioner"
    lease_namespace: str = "spotpack-system"
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    retry_period_seconds: float = Field(default=2.0, gt=0)
    identity: str = Field(default_factory=default_identity)

    # --- serving -------------------------------------------------------------------------
    host: str = "0.0.0.0"  # noqa: S104 - Prometheus and the kubelet probes reach it over the pod network
    port: int = Field(default=8080, ge=0, le=65535)
    """Port of /healthz, /readyz, /metrics, /claims (0: any free port)."""
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> ProvisionerSettings:
        if self.batch_max_seconds < self.batch_idle_seconds:
            raise ValueError("batch_max_seconds must be >= batch_idle_seconds")
        if not (
            0
            < self.retry_period_seconds
            < self.renew_deadline_seconds
            < self.lease_duration_seconds
        ):
            raise ValueError(
                "need retry_period_seconds < renew_deadline_seconds < lease_duration_seconds"
            )
        return self

    @property
    def cloud_name(self) -> str:
        return "local" if self.local else self.cloud

    @property
    def limits(self) -> Limits:
        return Limits(self.max_nodes, self.max_gpus, self.max_cost_per_hour)


def load_settings(**overrides: object) -> ProvisionerSettings:
    """Read settings from the environment; an invalid value is a :class:`ConfigError`."""
    return load(ProvisionerSettings, PREFIX, **overrides)


__all__ = ["PREFIX", "ProvisionerSettings", "default_identity", "load_settings"]
