"""Certificates made by ``spotpack.tls.certs``: names, modes, rotation, chain, errors."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification

from spotpack.errors import CertificateError
from spotpack.tls import certs, cli
from spotpack.tls.reload import build_server_context

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def sans(path: Path) -> tuple[set[str], set[str]]:
    cert = certs.load_certificate(path)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns, ips


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_default_sans_cover_loopback_and_every_service_name(out: Path) -> None:
    issued = certs.generate(out)
    dns, ips = sans(issued.paths.cert)
    assert ips == {"127.0.0.1", "::1"}
    assert "localhost" in dns
    for svc in ("spotpack-webhook", "spotpack-extender"):
        ns = "spotpack-system"
        assert {svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"} <= dns
    assert set(issued.dns_names) == dns


def test_services_and_namespace_are_configurable(out: Path) -> None:
    certs.generate(out, services=["hook"], namespace="team-a")
    dns, _ = sans(out / "tls.crt")
    assert dns == {
        "localhost",
        "hook",
        "hook.team-a",
        "hook.team-a.svc",
        "hook.team-a.svc.cluster.local",
    }


def test_writes_four_files_keys_0600_and_no_temp_files(out: Path) -> None:
    certs.generate(out)
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    for name, mode in (("ca.key", 0o600), ("tls.key", 0o600), ("ca.crt", 0o644)):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name


def test_validity_defaults_and_days(out: Path) -> None:
    issued = certs.generate(out, days=30, now=NOW)
    assert issued.not_after == NOW + dt.timedelta(days=30)
    ca = certs.load_certificate(out / "ca.crt")
    assert ca.not_valid_after_utc == NOW + dt.timedelta(days=3650)
    assert certs.days_left(out / "tls.crt", now=NOW) == pytest.approx(30)


def test_rotation_reuses_the_ca_so_the_bundle_stays_valid(out: Path) -> None:
    first = certs.generate(out)
    ca_before = (out / "ca.crt").read_bytes()
    bundle_before = certs.ca_bundle(out)

    second = certs.generate(out)

    assert second.ca_reused and not first.ca_reused
    assert second.serial != first.serial
    assert (out / "ca.crt").read_bytes() == ca_before
    assert certs.ca_bundle(out) == bundle_before
    certs.verify_issued_by(out / "tls.crt", out / "ca.crt")


def test_new_ca_replaces_the_bundle(out: Path) -> None:
    certs.generate(out)
    before = certs.ca_bundle(out)
    issued = certs.generate(out, new_ca=True)
    assert not issued.ca_reused
    assert certs.ca_bundle(out) != before
    certs.verify_issued_by(out / "tls.crt", out / "ca.crt")


def test_ca_bundle_is_base64_of_the_ca_pem(out: Path) -> None:
    certs.generate(out)
    assert base64.b64decode(certs.ca_bundle(out)) == (out / "ca.crt").read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("spotpack-webhook.spotpack-system.svc"),
        x509.DNSName("spotpack-extender.spotpack-system.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ],
)
def test_chain_verifies_as_a_web_pki_server_certificate(
    out: Path, name: x509.DNSName | x509.IPAddress
) -> None:
    """cryptography's RFC 5280 verifier is strict (key usages, AKI, SAN): as strict as Go's."""
    certs.generate(out)
    store = verification.Store([certs.load_certificate(out / "ca.crt")])
    subject = x509.DNSName(name.value) if isinstance(name, x509.DNSName) else name
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
    chain = verifier.verify(certs.load_certificate(out / "tls.crt"), [])
    assert len(chain) == 2


def test_certificate_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    certs.generate(tmp_path / "a")
    certs.generate(tmp_path / "b")
    with pytest.raises(CertificateError, match="was not issued by"):
        certs.verify_issued_by(tmp_path / "a" / "tls.crt", tmp_path / "b" / "ca.crt")


def test_mismatched_key_is_detected(tmp_path: Path) -> None:
    a, b = certs.generate(tmp_path / "a").paths, certs.generate(tmp_path / "b").paths
    assert certs.key_matches_cert(a.cert, a.key)
    assert not certs.key_matches_cert(a.cert, b.key)
    with pytest.raises(CertificateError, match="not a matching") as err:
        build_server_context(a.cert, b.key)
    assert str(a.cert) in str(err.value)


def test_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tls.crt"
    with pytest.raises(CertificateError) as err:
        certs.load_certificate(missing)
    assert str(missing) in str(err.value)
    assert "spotpack certs" in str(err.value)


def test_garbage_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "tls.crt"
    bad.write_text("not a certificate")
    with pytest.raises(CertificateError, match=f"{bad} is not a PEM certificate"):
        certs.load_certificate(bad)
    with pytest.raises(CertificateError, match="not an unencrypted PEM private key"):
        certs.load_private_key(bad)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=f"{tmp_path} is a directory"):
        certs.load_certificate(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_key_names_the_path(out: Path) -> None:
    certs.generate(out)
    (out / "tls.key").chmod(0)
    with pytest.raises(CertificateError, match="not readable"):
        certs.load_private_key(out / "tls.key")


def test_ca_bundle_without_a_ca_says_how_to_make_one(out: Path) -> None:
    with pytest.raises(CertificateError, match=r"ca\.crt does not exist; run `spotpack certs"):
        certs.ca_bundle(out)


def test_half_present_ca_is_refused_not_silently_replaced(out: Path) -> None:
    certs.generate(out)
    (out / "ca.key").unlink()
    with pytest.raises(CertificateError, match=r"ca\.key is missing.*--new-ca"):
        certs.generate(out)
    certs.generate(out, new_ca=True)  # the documented way out


def test_foreign_ca_key_is_refused(tmp_path: Path) -> None:
    certs.generate(tmp_path / "a")
    certs.generate(tmp_path / "b")
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    with pytest.raises(CertificateError, match="does not belong to"):
        certs.generate(tmp_path / "a")


def test_serving_cert_may_not_outlive_the_ca(out: Path) -> None:
    certs.generate(out, now=NOW)
    later = NOW + dt.timedelta(days=3600)
    with pytest.raises(CertificateError, match=r"CA .* expires on .*--new-ca"):
        certs.generate(out, days=365, now=later)


def test_unwritable_out_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CertificateError, match="cannot create"):
        certs.generate(blocker / "out")


@pytest.mark.parametrize("kwargs", [{"days": 0}, {"services": []}])
def test_invalid_arguments(out: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(CertificateError):
        certs.generate(out, **kwargs)  # type: ignore[arg-type]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["certs", *argv])


def test_cli_generates_and_prints_a_summary(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--out", str(out), "--namespace", "ns", "--service", "a", "--service", "b")
    assert args.func(args) == 0
    dns, _ = sans(out / "tls.crt")
    assert {"a.ns.svc", "b.ns.svc"} <= dns
    assert "new CA" in capsys.readouterr().out


def test_cli_print_ca_bundle_prints_only_the_bundle(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs.generate(out)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert cli.run(parse("--out", str(out), "--print-ca-bundle")) == 0
    assert capsys.readouterr().out == certs.ca_bundle(out) + "\n"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before


def test_cli_error_is_one_line_on_stderr(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--out", str(out), "--print-ca-bundle")) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "ca.crt does not exist" in captured.err


def test_cli_rejects_non_positive_days(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--days", "0")
    assert "must be at least 1" in capsys.readouterr().err
