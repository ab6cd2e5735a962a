"""`spotpack certs --kube-secret ... --patch-webhook ...` (the install Job) against the dev cluster.

Real HTTP on loopback: the command reads and writes Secrets and patches the
MutatingWebhookConfiguration of deploy/ (rendered from the manifests, so the
test patches the object we ship). A first run creates both Secrets and sets
every caBundle; a second run writes nothing; a run near expiry rotates the
serving certificate under the same CA; a caBundle reverted behind our back is
set again; a bad kubeconfig is one line on stderr.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from spotpack.cli import main
from spotpack.devcluster import DevCluster
from spotpack.errors import CertificateError
from spotpack.kube import api_client_for_url
from spotpack.tls import certs
from spotpack.tls.kube import (
    KubeCertApi,
    Request,
    bootstrap,
    ca_bundle_patch,
    parse_secret_ref,
)
from tests import manifests as m

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
NS = "spotpack-system"
SECRET = "spotpack-webhook-tls"
CA_SECRET = "spotpack-ca"
WEBHOOK = "spotpack"


def shipped_webhook_config() -> Obj:
    return m.find(m.render(m.DEPLOY_DIR).objects, "MutatingWebhookConfiguration", WEBHOOK)


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster() as running:
        running.store.create("namespaces", {"metadata": {"name": NS}})
        running.store.create("mutatingwebhookconfigurations", shipped_webhook_config())
        yield running


@pytest.fixture
def kubeconfig(cluster: DevCluster, tmp_path: Path) -> Path:
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


def certs_job(kubeconfig: Path, *extra: str) -> list[str]:
    """The Job's arguments (deploy/components/cert-job), pointed at the dev cluster."""
    return [
        "certs",
        "--kube-secret",
        f"{NS}/{SECRET}",
        "--patch-webhook",
        WEBHOOK,
        "--kubeconfig",
        str(kubeconfig),
        *extra,
    ]


def secret(cluster: DevCluster, name: str) -> Obj:
    found: Obj = cluster.store.get("secrets", name, NS)
    return found


def data(obj: Obj, key: str) -> bytes:
    return base64.b64decode(obj["data"][key])


def webhook_config(cluster: DevCluster) -> Obj:
    found: Obj = cluster.store.get("mutatingwebhookconfigurations", WEBHOOK)
    return found


def versions(cluster: DevCluster) -> tuple[str, ...]:
    return tuple(
        obj["metadata"]["resourceVersion"]
        for obj in (secret(cluster, CA_SECRET), secret(cluster, SECRET), webhook_config(cluster))
    )


def test_first_run_creates_the_secrets_and_sets_every_ca_bundle(
    cluster: DevCluster, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(certs_job(kubeconfig)) == 0
    out = capsys.readouterr().out
    assert "new CA" in out and "issued (absent)" in out

    ca, tls = secret(cluster, CA_SECRET), secret(cluster, SECRET)
    assert tls["type"] == ca["type"] == "kubernetes.io/tls"
    assert set(tls["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert set(ca["data"]) == {"tls.crt", "tls.key"}, "the CA key stays out of the mounted Secret"
    assert data(tls, "ca.crt") == data(ca, "tls.crt")

    serving = x509.load_pem_x509_certificate(data(tls, "tls.crt"))
    serving.verify_directly_issued_by(x509.load_pem_x509_certificate(data(ca, "tls.crt")))
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"spotpack-webhook.{NS}.svc" in sans.get_values_for_type(x509.DNSName)

    bundle = base64.b64encode(data(ca, "tls.crt")).decode()
    entries = webhook_config(cluster)["webhooks"]
    assert [w["name"] for w in entries] == ["pods.spotpack.io", "gpu-pods.spotpack.io"]
    assert {w["clientConfig"]["caBundle"] for w in entries} == {bundle}
    # Only caBundle changed: the rest is what deploy/ ships.
    shipped = shipped_webhook_config()["webhooks"]
    for got, want in zip(entries, shipped, strict=True):
        assert {**got["clientConfig"], "caBundle": None} == {
            **want["clientConfig"],
            "caBundle": None,
        }
        assert {k: v for k, v in got.items() if k != "clientConfig"} == {
            k: v for k, v in want.items() if k != "clientConfig"
        }


def test_second_run_writes_nothing(
    cluster: DevCluster, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(certs_job(kubeconfig)) == 0
    before = versions(cluster)
    ca_before = data(secret(cluster, CA_SECRET), "tls.crt")
    capsys.readouterr()
    assert main(certs_job(kubeconfig)) == 0
    out = capsys.readouterr().out
    assert "reused CA" in out and "kept" in out and "already current" in out
    assert versions(cluster) == before
    assert data(secret(cluster, CA_SECRET), "tls.crt") == ca_before


def test_near_expiry_rotates_the_serving_certificate_under_the_same_ca(
    cluster: DevCluster,
) -> None:
    api_client = api_client_for_url(cluster.url)
    try:
        api = KubeCertApi(api_client)
        request = Request(namespace=NS, secret=SECRET, webhook=WEBHOOK, days=90)
        first = bootstrap(api, request)
        old = data(secret(cluster, SECRET), "tls.crt")
        mwc_version = webhook_config(cluster)["metadata"]["resourceVersion"]

        later = bootstrap(api, request, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=70))
        assert later.serving_reason is not None and "expires in" in later.serving_reason
        assert not later.ca_created and later.ca_bundle == first.ca_bundle
        assert later.webhooks_patched == ()
        assert data(secret(cluster, SECRET), "tls.crt") != old
        assert webhook_config(cluster)["metadata"]["resourceVersion"] == mwc_version
    finally:
        api_client.close()


def test_a_reverted_ca_bundle_is_set_again(cluster: DevCluster, kubeconfig: Path) -> None:
    """`kubectl apply` of a manifest carrying a caBundle would revert it; a re-run repairs it."""
    assert main(certs_job(kubeconfig)) == 0
    config = webhook_config(cluster)
    config["webhooks"][1]["clientConfig"]["caBundle"] = base64.b64encode(b"stale").decode()
    cluster.store.replace("mutatingwebhookconfigurations", WEBHOOK, config)
    assert main(certs_job(kubeconfig)) == 0
    bundles = {w["clientConfig"]["caBundle"] for w in webhook_config(cluster)["webhooks"]}
    assert bundles == {base64.b64encode(data(secret(cluster, CA_SECRET), "tls.crt")).decode()}


def test_a_certificate_for_other_names_is_reissued(cluster: DevCluster, kubeconfig: Path) -> None:
    assert main(certs_job(kubeconfig)) == 0
    assert main(certs_job(kubeconfig, "--service", "spotpack-webhook", "--service", "other")) == 0
    serving = x509.load_pem_x509_certificate(data(secret(cluster, SECRET), "tls.crt"))
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"other.{NS}.svc" in sans.get_values_for_type(x509.DNSName)


def test_bad_kubeconfig_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [\n  - {name: x\n", encoding="utf-8")
    assert main(certs_job(broken)) == 1
    err = capsys.readouterr().err
    assert err.startswith("spotpack certs: error: ") and err.count("\n") == 1, err
    assert str(broken) in err


def test_missing_webhook_configuration_is_named(
    cluster: DevCluster, kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.store.delete("mutatingwebhookconfigurations", WEBHOOK)
    assert main(certs_job(kubeconfig)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"MutatingWebhookConfiguration {WEBHOOK} not found" in err


def test_unreachable_api_server_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DevCluster() as gone:
        path = gone.write_kubeconfig(tmp_path / "kubeconfig")
        url = gone.url
    # a port held bound but not listening: refused for sure, and no other test can take it
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        path.write_text(path.read_text().replace(url, f"http://127.0.0.1:{port}"))
        assert main(certs_job(path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("spotpack certs: error: ") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("text", ["spotpack-webhook-tls", "/x", "ns/", "a/b/c"])
def test_secret_ref_needs_namespace_and_name(text: str) -> None:
    with pytest.raises(CertificateError):
        parse_secret_ref(text)


def test_ca_bundle_patch_touches_only_stale_entries() -> None:
    config = {
        "webhooks": [
            {"name": "a", "clientConfig": {"caBundle": "X"}},
            {"name": "b", "clientConfig": {}},
        ]
    }
    assert ca_bundle_patch(config, "X") == {
        "webhooks": [{"name": "b", "clientConfig": {"caBundle": "X"}}]
    }
    config["webhooks"][1]["clientConfig"]["caBundle"] = "X"
    assert ca_bundle_patch(config, "X") is None


def test_serving_problem_names_what_is_wrong() -> None:
    now = dt.datetime.now(dt.UTC)
    ca, other_ca = certs.new_ca_pem(now), certs.new_ca_pem(now)
    names = certs.service_dns_names(["spotpack-webhook"], NS)
    good = certs.issue_serving_pem(ca, dns_names=names, days=90, now=now)
    month = dt.timedelta(days=30)

    def problem(pair: certs.PemPair, ca_cert: bytes = ca.cert, **kw: Any) -> str | None:
        return certs.serving_problem(
            pair,
            ca_cert,
            dns_names=kw.get("names", names),
            renew_before=month,
            now=kw.get("now", now),
        )

    assert problem(good) is None
    assert problem(good, other_ca.cert) == "not issued by the current CA"
    assert "does not name other" in str(problem(good, names=[*names, "other"]))
    assert "expires in" in str(problem(good, now=now + dt.timedelta(days=61)))
    assert problem(certs.PemPair(good.cert, ca.key)) == "the key does not belong to the certificate"
    assert "unreadable" in str(problem(certs.PemPair(b"x", good.key)))
    with pytest.raises(CertificateError, match="not a CA"):
        certs.parse_ca_pem(good, "Secret x")
