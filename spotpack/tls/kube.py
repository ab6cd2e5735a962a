"""Certificates kept in Kubernetes Secrets, and our webhook's caBundle kept pointing at their CA.

What ``spotpack certs --kube-secret NS/NAME --patch-webhook WEBHOOK`` does (the
install Job of ``deploy/components/cert-job`` runs it; no cert-manager needed):

1. **CA**: read Secret ``NS/<ca-secret>``; reuse the CA in it, or make a new CA
   and create that Secret. The CA key has a Secret of its own, never the one
   the webhook mounts, so a compromised webhook pod cannot mint certificates
   the API server would trust.
2. **Serving certificate**: read Secret ``NS/NAME`` (type ``kubernetes.io/tls``
   with ``tls.crt``, ``tls.key`` and ``ca.crt``, the layout cert-manager
   writes). Keep it when :func:`~spotpack.tls.certs.serving_problem` finds
   nothing wrong; otherwise issue a new one signed by the same CA (the
   caBundle stays valid) and write the Secret, with the ``resourceVersion``
   read, so a concurrent writer is detected instead of overwritten.
3. **caBundle**: read the MutatingWebhookConfiguration and patch the entries
   whose caBundle is not the CA (a strategic merge patch, entries merged by
   name). Nothing to change, nothing written.

A second run therefore writes nothing, and a run near the serving
certificate's expiry rotates it without touching the caBundle. The webhook
reloads the files when the kubelet updates the mounted Secret.

Decisions are the pure functions of :mod:`spotpack.tls.certs`; this module only
reads and writes (:class:`KubeCertApi`), translating the client's errors into
:class:`~spotpack.errors.ClusterUnavailable` once, here.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from spotpack.errors import CertificateError, ClusterUnavailable, SpotpackError
from spotpack.tls.certs import (
    SERVING_VALIDITY_DAYS,
    PemPair,
    issue_serving_pem,
    new_ca_pem,
    parse_ca_pem,
    service_dns_names,
    serving_problem,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

TLS_TYPE = "kubernetes.io/tls"
DEFAULT_CA_SECRET = "spotpack-ca"  # noqa: S105 - a Secret's name, not a password
"""The name cert-manager's CA Certificate uses too (deploy/components/cert-manager), so
moving from cert-manager to the Job keeps the CA and with it the caBundle."""
DEFAULT_RENEW_BEFORE_DAYS = 30
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
LABELS = {"app.kubernetes.io/part-of": "spotpack", "app.kubernetes.io/managed-by": "spotpack-certs"}


class Conflict(SpotpackError):  # noqa: N818 - the API's own word
    """409: the object exists already, or changed since it was read."""


def parse_secret_ref(text: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); the namespace cannot be left out."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise CertificateError(f"--kube-secret wants NAMESPACE/NAME, got {text!r}")
    return namespace, name


# --------------------------------------------------------------------------- the API


class KubeCertApi:
    """Secrets and MutatingWebhookConfigurations over the kubernetes client, raw JSON."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self._timeout = timeout

    def read_secret(self, namespace: str, name: str) -> Obj | None:
        return self._call(
            f"read Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace
        )

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        what = f"create Secret {namespace}/{body['metadata']['name']}"
        return self._call(what, self._core.create_namespaced_secret, namespace, dict(body)) or {}

    def replace_secret(self, namespace: str, name: str, body: Mapping[str, Any]) -> Obj:
        what = f"update Secret {namespace}/{name}"
        found = self._call(what, self._core.replace_namespaced_secret, name, namespace, dict(body))
        return found or {}

    def read_webhook(self, name: str) -> Obj | None:
        what = f"read MutatingWebhookConfiguration {name}"
        return self._call(what, self._admission.read_mutating_webhook_configuration, name)

    def patch_webhook(self, name: str, patch: Mapping[str, Any]) -> Obj:
        what = f"patch MutatingWebhookConfiguration {name}"
        found = self._call(
            what,
            self._admission.patch_mutating_webhook_configuration,
            name,
            dict(patch),
            _content_type=STRATEGIC_MERGE_PATCH,
        )
        return found or {}

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj | None:
        """One request; 404 is None, 409 :class:`Conflict`, the rest ClusterUnavailable."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = method(
                *args, **kwargs, _preload_content=False, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 409:
                raise Conflict(f"{what}: conflict ({exc.reason})") from exc
            raise ClusterUnavailable(f"{what} refused ({exc.status}): {exc.reason}") from exc
        except (HTTPError, OSError) as exc:
            raise ClusterUnavailable(f"{what}: cannot reach the API server ({exc})") from exc
        try:
            value = orjson.loads(response.data) if response.data else {}
        finally:
            response.release_conn()
        return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- Secrets <-> PEM


def _decode(secret: Obj, key: str) -> bytes | None:
    """One ``data`` entry of a Secret, base64-decoded; None when missing or not base64."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return None


def pem_pair_of(secret: Obj | None) -> PemPair | None:
    """``tls.crt`` and ``tls.key`` of a Secret, or None when either is missing."""
    if secret is None:
        return None
    cert, key = _decode(secret, "tls.crt"), _decode(secret, "tls.key")
    return PemPair(cert, key) if cert and key else None


def tls_secret(
    namespace: str,
    name: str,
    pair: PemPair,
    *,
    ca_cert: bytes | None = None,
    resource_version: str = "",
) -> Obj:
    """A ``kubernetes.io/tls`` Secret; ``ca.crt`` too when given (cert-manager's layout)."""
    files = {"tls.crt": pair.cert, "tls.key": pair.key}
    if ca_cert is not None:
        files["ca.crt"] = ca_cert
    metadata: Obj = {"name": name, "namespace": namespace, "labels": dict(LABELS)}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": TLS_TYPE,
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in files.items()},
    }


def ca_bundle_patch(config: Obj, bundle: str) -> Obj | None:
    """The strategic merge patch that sets ``bundle`` on every entry lacking it; None if none."""
    stale = [
        w["name"]
        for w in config.get("webhooks") or []
        if isinstance(w, dict) and (w.get("clientConfig") or {}).get("caBundle") != bundle
    ]
    if not stale:
        return None
    return {"webhooks": [{"name": name, "clientConfig": {"caBundle": bundle}} for name in stale]}


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Outcome:
    """What a run did, for the command's report and for tests."""

    ca_created: bool
    serving_reason: str | None
    """Why the serving certificate was (re)issued; None when it was kept."""
    secret_written: bool
    webhooks_patched: tuple[str, ...]
    ca_bundle: str


@dataclass(frozen=True)
class Request:
    """Where the certificates live and what they are for."""

    namespace: str
    secret: str
    ca_secret: str = DEFAULT_CA_SECRET
    webhook: str | None = None
    services: Sequence[str] = ("spotpack-webhook",)
    days: int = SERVING_VALIDITY_DAYS
    renew_before_days: int = DEFAULT_RENEW_BEFORE_DAYS
    new_ca: bool = False
    wait_seconds: float = 0.0
    """How long to wait for the webhook configuration to appear (installed at the same time)."""


def ensure_ca(api: KubeCertApi, req: Request, now: dt.datetime) -> tuple[PemPair, bool]:
    """The CA from its Secret, or a new one written there; True when it is new."""
    where = f"Secret {req.namespace}/{req.ca_secret}"
    current = api.read_secret(req.namespace, req.ca_secret)
    pair = pem_pair_of(current)
    if pair is not None and not req.new_ca:
        parse_ca_pem(pair, where)
        return pair, False
    if current is not None and pair is None and not req.new_ca:
        raise CertificateError(
            f"{where} exists but has no tls.crt/tls.key; delete it or pass --new-ca "
            "(the caBundle is then replaced)"
        )
    fresh = new_ca_pem(now)
    version = _resource_version(current)
    body = tls_secret(req.namespace, req.ca_secret, fresh, resource_version=version)
    try:
        _write_secret(api, req.namespace, req.ca_secret, body, exists=current is not None)
    except Conflict:
        # Another run created it first: use theirs, so both agree on one CA.
        theirs = pem_pair_of(api.read_secret(req.namespace, req.ca_secret))
        if theirs is None:
            raise
        parse_ca_pem(theirs, where)
        return theirs, False
    log.info("created a new CA", extra={"secret": where})
    return fresh, True


def ensure_serving(
    api: KubeCertApi, req: Request, ca: PemPair, now: dt.datetime
) -> tuple[str | None, bool]:
    """Keep or (re)issue the serving certificate; (why it was issued, whether written)."""
    dns_names = service_dns_names(req.services, req.namespace)
    current = api.read_secret(req.namespace, req.secret)
    pair = pem_pair_of(current)
    reason = (
        "absent"
        if pair is None
        else serving_problem(
            pair,
            ca.cert,
            dns_names=dns_names,
            renew_before=dt.timedelta(days=req.renew_before_days),
            now=now,
        )
    )
    if pair is None or reason is not None:
        pair = issue_serving_pem(
            ca,
            dns_names=dns_names,
            days=req.days,
            now=now,
            where=f"Secret {req.namespace}/{req.ca_secret}",
        )
    if reason is None and current is not None and _decode(current, "ca.crt") == ca.cert:
        return None, False
    version = _resource_version(current)
    body = tls_secret(req.namespace, req.secret, pair, ca_cert=ca.cert, resource_version=version)
    _write_secret(api, req.namespace, req.secret, body, exists=current is not None)
    log.info("serving certificate written", extra={"secret": req.secret, "why": reason})
    return reason, True


def _resource_version(secret: Obj | None) -> str:
    """The version a replace must name, so a concurrent writer gets a 409; "" for none."""
    return str((secret or {}).get("metadata", {}).get("resourceVersion") or "")


def _write_secret(api: KubeCertApi, namespace: str, name: str, body: Obj, *, exists: bool) -> None:
    """Create the Secret, or replace the one read (``body`` carries its resourceVersion)."""
    if exists:
        api.replace_secret(namespace, name, body)
    else:
        api.create_secret(namespace, body)


def patch_ca_bundle(
    api: KubeCertApi,
    name: str,
    bundle: str,
    *,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str, ...]:
    """Point every entry of webhook configuration ``name`` at ``bundle``; the entries changed."""
    deadline = clock() + wait_seconds
    config = api.read_webhook(name)
    while config is None and clock() < deadline:
        sleep(min(2.0, max(0.0, deadline - clock())))
        config = api.read_webhook(name)
    if config is None:
        raise CertificateError(
            f"MutatingWebhookConfiguration {name} not found; apply deploy/ first "
            "(or leave out --patch-webhook)"
        )
    patch = ca_bundle_patch(config, bundle)
    if patch is None:
        return ()
    api.patch_webhook(name, patch)
    return tuple(w["name"] for w in patch["webhooks"])


def bootstrap(api: KubeCertApi, req: Request, *, now: dt.datetime | None = None) -> Outcome:
    """Steps 1-3 of the module docstring; every write is skipped when nothing changed."""
    moment = now or dt.datetime.now(dt.UTC)
    ca, ca_created = ensure_ca(api, req, moment)
    reason, written = ensure_serving(api, req, ca, moment)
    bundle = base64.b64encode(ca.cert).decode("ascii")
    patched: tuple[str, ...] = ()
    if req.webhook:
        patched = patch_ca_bundle(api, req.webhook, bundle, wait_seconds=req.wait_seconds)
    return Outcome(ca_created, reason, written, patched, bundle)


__all__ = [
    "DEFAULT_CA_SECRET",
    "DEFAULT_RENEW_BEFORE_DAYS",
    "Conflict",
    "KubeCertApi",
    "Outcome",
    "Request",
    "bootstrap",
    "ca_bundle_patch",
    "parse_secret_ref",
    "pem_pair_of",
    "tls_secret",
]
