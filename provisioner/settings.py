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

from spotpack.catalog.model import Arch
from spotpack.errors import ConfigError, InvalidQuantity
from spotpack.provisioning.model import Limits, Resources
from spotpack.quantity import bytes_of, cpu_millis
from spotpack.settings import load

PREFIX = "SPOTPACK_PROVISIONER_"
VALUES_FILE = "deploy/values/spotpack.env"
"""Where an operator sets these in a kustomize install: named in configuration errors."""


def default_identity() -> str:
    """hostname and pid: unique per replica, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _amd64_only() -> list[Arch]:
    return ["amd64"]


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
    """The amd64 nodes' launch template (an x86_64 AMI)."""
    image_id: str | None = None
    """Without a launch template: an AMI for a minimal ``spotpack-<cluster>`` template."""
    launch_template_arm64: str | None = None
    """The arm64 (Graviton) nodes' launch template; needed when ``architectures`` has arm64."""
    image_id_arm64: str | None = None
    """Without an arm64 launch template: an arm64 AMI for ``spotpack-<cluster>-arm64``."""
    aws_endpoint_url: str | None = None
    sqs_queue_url: str | None = None
    """The EventBridge -> SQS queue of interruption notices; none: no interruption handling."""

    # --- what to launch ------------------------------------------------------------------
    architectures: list[Arch] = Field(default_factory=_amd64_only, min_length=1)
    """CPU architectures new nodes may have. A pod that does not pin ``kubernetes.io/arch``
    gets one of these; a pod pinned to another one is not provisioned for. Default amd64
    only, as Karpenter's getting-started NodePool: many images are built for amd64 alone."""

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
    def allowed_architectures(self) -> frozenset[str]:
        return frozenset(self.architectures)

    def aws_templates(self) -> dict[str, tuple[str | None, str | None]]:
        """Per allowed architecture: (launch template, image id), checked for AWS.

        Raises :class:`ConfigError` naming the variable to set when something
        CreateFleet needs is missing (a subnet, a subnet for a zone, a template
        for an architecture): one line, at start, instead of refused launches.
        """
        fix = f"set it in {VALUES_FILE}"
        if not self.cluster_name:
            raise ConfigError(f"{PREFIX}CLUSTER_NAME is empty: instances are tagged by it; {fix}")
        if not self.subnets:
            raise ConfigError(
                f"{PREFIX}SUBNETS is empty: the aws cloud needs a subnet per zone to launch in, "
                f'e.g. {{"us-east-1a": "subnet-0abc"}}; {fix}'
            )
        missing = sorted(set(self.zones) - set(self.subnets))
        if missing:
            raise ConfigError(
                f"{PREFIX}ZONES has {', '.join(missing)} without a subnet in {PREFIX}SUBNETS: "
                f"add its subnet or drop the zone; {fix}"
            )
        pairs = {
            "amd64": (self.launch_template, self.image_id),
            "arm64": (self.launch_template_arm64, self.image_id_arm64),
        }
        out: dict[str, tuple[str | None, str | None]] = {}
        for arch in sorted(self.allowed_architectures):
            template, image = pairs[arch]
            if template is None and image is None:
                suffix = "" if arch == "amd64" else "_ARM64"
                raise ConfigError(
                    f"{PREFIX}ARCHITECTURES has {arch} but neither "
                    f"{PREFIX}LAUNCH_TEMPLATE{suffix} nor {PREFIX}IMAGE_ID{suffix} is set: "
                    f"set the {arch} nodes' launch template in {VALUES_FILE}"
                    + (f", or drop {arch} from {PREFIX}ARCHITECTURES" if arch == "arm64" else "")
                )
            out[arch] = (template, image)
        return out

    @property
    def cloud_name(self) -> str:
        return "local" if self.local else self.cloud

    @property
    def limits(self) -> Limits:
        return Limits(self.max_nodes, self.max_gpus, self.max_cost_per_hour)


def load_settings(**overrides: object) -> ProvisionerSettings:
    """Read settings from the environment; an invalid value is a :class:`ConfigError`."""
    return load(ProvisionerSettings, PREFIX, **overrides)


__all__ = ["PREFIX", "VALUES_FILE", "ProvisionerSettings", "default_identity", "load_settings"]
