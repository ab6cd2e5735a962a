"""Wiring: informers, cloud, notices, the loop thread, the leader elector, a small HTTP app.

The provisioner is one process with one loop (not a gunicorn app: a fork per
worker would run a loop per worker). :func:`build_service` assembles it from
settings, with every collaborator injectable for tests; :class:`Service`
starts and stops the threads in the order that keeps two replicas from ever
both acting: on stop the loop ends first, then the lease is released.

HTTP (``/healthz``, ``/readyz``, ``/metrics``, ``/claims``) is a Flask app on
a werkzeug server thread: a few requests a minute from probes and Prometheus.
With the local cloud only, ``POST /local/interruptions`` injects interruption
notices (:mod:`provisioner.local_notices`): the local cloud has no other source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from provisioner.batcher import Batcher
from provisioner.capacity import Facts
from provisioner.events import EventRecorder
from provisioner.kubeapi import KubeClusterApi
from provisioner.leader import KubeLeaseApi, LeaderElector
from provisioner.loop import ClusterView, Collaborators, Controller, LoopConfig, NoticePump
from provisioner.metrics import create_metrics
from provisioner.settings import VALUES_FILE, ProvisionerSettings
from spotpack.capacity import scheme_named
from spotpack.catalog import load_catalog
from spotpack.catalog.model import Catalog
from spotpack.cloud.base import (
    MANAGED_LABEL,
    NOTICE_WINDOWS,
    CloudProvider,
    NoticeSource,
    OfferingCache,
)
from spotpack.errors import ClusterUnavailable, ConfigError
from spotpack.kube.informer import Informer

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class InformerView:
    """:class:`~provisioner.loop.ClusterView` over a node and a pod informer."""

    def __init__(self, nodes: Informer, pods: Informer) -> None:
        self.node_informer = nodes
        self.pod_informer = pods

    def nodes(self) -> list[Obj]:
        return self.node_informer.list()

    def pods(self) -> list[Obj]:
        return self.pod_informer.list()

    def synced(self) -> bool:
        return self.node_informer.has_synced and self.pod_informer.has_synced


@dataclass
class Service:
    """The running provisioner: start, stop, and what the HTTP app reads."""

    settings: ProvisionerSettings
    controller: Controller
    view: ClusterView
    elector: LeaderElector | None = None
    informers: tuple[Informer, ...] = ()
    pump: NoticePump | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    app: Flask | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _server: Any = None
    _server_thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        return self.elector.is_leader() if self.elector is not None else True

    def ready(self) -> bool:
        return self.view.synced() and not self._stop.is_set()

    @property
    def port(self) -> int:
        return int(self._server.server_port) if self._server is not None else 0

    def start(self, *, serve: bool = True) -> Service:
        for informer in self.informers:
            informer.start()
        if self.elector is not None:
            self.elector.start()
        self._thread = threading.Thread(
            target=self.controller.run, args=(self._stop,), name="provisioner-loop", daemon=True
        )
        self._thread.start()
        if self.pump is not None:
            self.pump.start()
        if serve:
            self._serve()
        return self

    def _serve(self) -> None:
        from werkzeug.serving import make_server

        app = self.app or create_app(self)
        self._server = make_server(self.settings.host, self.settings.port, app, threaded=True)
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, name="provisioner-http", daemon=True
        )
        self._server_thread.start()
        log.info("serving", extra={"host": self.settings.host, "port": self.port})

    def stop(self, timeout: float = 10.0) -> None:
        """Stop acting (the loop ends its tick), release the lease, then close the rest."""
        self._stop.set()
        self.controller.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.pump is not None:
            self.pump.stop(timeout=1.0)
        if self.elector is not None:
            self.elector.stop(release=True)
        # In parallel: an informer may take until the next watch line to notice.
        stoppers = [threading.Thread(target=i.stop, daemon=True) for i in self.informers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("closing failed")
        log.info("provisioner stopped")


def create_app(service: Service) -> Flask:
    """Probes, metrics and a read-only view of the claims."""
    app = Flask("spotpack-provisioner")
    registry = service.controller.parts.metrics.registry

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        if service.ready():
            return Response("ok\n", mimetype="text/plain")
        return Response("caches not synced\n", status=503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/claims")
    def claims() -> Response:
        return jsonify(service.controller.describe())

    if service.settings.cloud_name == "local":
        from provisioner.local_notices import add_local_routes

        add_local_routes(
            app,
            nodes=service.view.nodes,
            submit=service.controller.submit,
            acting=service.controller.acting,
            window=service.controller.config.notice_window,
        )
    app.extensions["spotpack"] = service
    return app


# --- building ------------------------------------------------------------------------------


def loop_config(settings: ProvisionerSettings) -> LoopConfig:
    window = settings.notice_window_seconds
    if window is None:
        window = NOTICE_WINDOWS.get(settings.cloud_name, NOTICE_WINDOWS["aws"]).total_seconds()
    return LoopConfig(
        cluster_name=settings.cluster_name,
        registration_timeout=settings.registration_timeout_seconds,
        empty_delay=settings.empty_node_delay_seconds,
        orphan_grace=settings.orphan_grace_seconds,
        gc_interval=settings.gc_interval_seconds,
        replan_interval=settings.replan_seconds,
        scan_interval=settings.scan_seconds,
        tick=settings.tick_seconds,
        limits=settings.limits,
        notice_window=window,
        drain_retry=settings.drain_retry_seconds,
        labels={**settings.labels, MANAGED_LABEL: "true"},
        architectures=settings.allowed_architectures,
    )


def planning_zones(settings: ProvisionerSettings, catalog: Catalog) -> list[str]:
    if settings.zones:
        return list(settings.zones)
    if settings.cloud_name == "aws" and settings.subnets:
        return sorted(settings.subnets)
    zones = list(catalog.regions.get(settings.region, ()))
    if not zones:
        raise ConfigError(
            f"no zones known for region {settings.region}; set {'SPOTPACK_PROVISIONER_ZONES'}"
        )
    return zones


def build_provider(
    settings: ProvisionerSettings, api_client: Any, catalog: Catalog, cache: OfferingCache
) -> CloudProvider:
    if settings.cloud_name == "local":
        from spotpack.cloud.local import LocalProvider

        return LocalProvider(
            api_client,
            catalog=catalog,
            registration_delay=settings.local_registration_delay_seconds,
        )
    from spotpack.cloud.aws import AwsProvider

    templates = settings.aws_templates()
    try:
        return AwsProvider(
            settings.region,
            settings.cluster_name,
            launch_template=settings.launch_template,
            subnet_by_zone=settings.subnets,
            endpoint_url=settings.aws_endpoint_url,
            image_id=settings.image_id,
            launch_template_arm64=settings.launch_template_arm64,
            image_id_arm64=settings.image_id_arm64,
            architectures=tuple(templates),
            instance_arch={t.name: t.arch for t in catalog.all()},
            offering_cache=cache,
        )
    except ConfigError as exc:
        # The settings were checked above; what is left names no variable: say where to look.
        raise ConfigError(
            f"aws cloud: {exc}; check the SPOTPACK_PROVISIONER_* settings in {VALUES_FILE}"
        ) from exc


def build_notices(settings: ProvisionerSettings) -> NoticeSource | None:
    if not settings.sqs_queue_url:
        return None
    from spotpack.cloud.sqs import SqsNoticeSource

    return SqsNoticeSource(
        settings.sqs_queue_url, endpoint_url=settings.aws_endpoint_url, region=settings.region
    )


def connect(settings: ProvisionerSettings) -> tuple[Any, Callable[[], None] | None]:
    """An API client, and how to stop the embedded cluster of local mode (if any)."""
    from spotpack.kube.config import api_client_for_url, load_api_client

    if settings.local:
        from spotpack.devcluster import DevCluster

        log.warning("local mode: an embedded in-memory cluster and the local cloud")
        cluster = DevCluster(bookmark_interval=1.0).start()
        cluster.store.create("namespaces", {"metadata": {"name": settings.lease_namespace}})
        return api_client_for_url(cluster.url), cluster.stop
    try:
        return load_api_client(settings.kubeconfig), None
    except ClusterUnavailable as exc:
        raise ConfigError(
            f"{exc}; set SPOTPACK_PROVISIONER_KUBECONFIG, or --local for an embedded cluster"
        ) from exc


def build_service(
    settings: ProvisionerSettings,
    *,
    api_client: Any = None,
    provider: CloudProvider | None = None,
    notices: NoticeSource | None = None,
    catalog: Catalog | None = None,
    clock: Callable[[], float] = time.time,
) -> Service:
    """Assemble the service; without an ``api_client`` it connects as the settings say."""
    closers: list[Callable[[], None]] = []
    if api_client is None:
        api_client, stop_local = connect(settings)
        closers.append(api_client.close)
        if stop_local is not None:
            closers.append(stop_local)
    catalog = catalog or load_catalog(override=settings.catalog_file)
    zones = planning_zones(settings, catalog)
    cache = OfferingCache(settings.unavailable_ttl_seconds)
    if provider is None:
        provider = build_provider(settings, api_client, catalog, cache)
        close = getattr(provider, "close", None)
        if callable(close):
            closers.append(close)
    if notices is None:
        notices = build_notices(settings)
    scheme = scheme_named(settings.label_scheme)
    elector = None
    if settings.leader_election:
        elector = LeaderElector(
            KubeLeaseApi(api_client),
            name=settings.lease_name,
            namespace=settings.lease_namespace,
            identity=settings.identity,
            lease_duration=settings.lease_duration_seconds,
            renew_deadline=settings.renew_deadline_seconds,
            retry_period=settings.retry_period_seconds,
        )
    is_leader: Callable[[], bool] = elector.is_leader if elector is not None else lambda: True
    metrics = create_metrics()
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    nodes = Informer(core.list_node, name="nodes")
    pods = Informer(core.list_pod_for_all_namespaces, name="pods")
    view = InformerView(nodes, pods)
    api = KubeClusterApi(api_client)
    facts = Facts.from_catalog(
        catalog,
        settings.region,
        zones,
        overhead=settings.daemonset_overhead(),
        arches=settings.allowed_architectures,
    )
    controller = Controller(
        loop_config(settings),
        Collaborators(
            view=view,
            api=api,
            provider=provider,
            facts=facts,
            scheme=scheme,
            metrics=metrics,
            events=EventRecorder(api, instance=settings.identity, clock=clock),
            cache=cache,
            is_leader=is_leader,
            notices=notices,
            known_zones=tuple(zones),
            rerun_hours=settings.rerun_hours,
        ),
        batcher=Batcher(settings.batch_idle_seconds, settings.batch_max_seconds),
        clock=clock,
    )
    pods.add_handlers(
        on_add=controller.observe_pod,
        on_update=lambda _old, new: controller.observe_pod(new),
        on_delete=controller.forget_pod,
    )
    service = Service(
        settings=settings,
        controller=controller,
        view=view,
        elector=elector,
        informers=(nodes, pods),
        pump=NoticePump(notices, controller) if notices is not None else None,
        closers=closers,
    )
    service.app = create_app(service)
    log.info(
        "provisioner built",
        extra={
            "cloud": provider.name,
            "zones": zones,
            "offerings": len(facts.offerings),
            "architectures": sorted(settings.allowed_architectures),
            "leader_election": elector is not None,
            "notices": notices is not None,
        },
    )
    return service


__all__ = ["InformerView", "Service", "build_service", "create_app", "loop_config"]
