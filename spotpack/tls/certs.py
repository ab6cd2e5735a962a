"""Self-signed CA and serving certificates for the webhook and the extender.

Why a private CA and not one self-signed serving certificate: the API server
and kube-scheduler trust whatever is in ``caBundle``. If that bundle is a CA,
the serving certificate can be rotated (re-signed by the same CA) without
touching the MutatingWebhookConfiguration or the scheduler config; only a new
CA needs a new bundle.

Keys are ECDSA P-256: generation takes milliseconds instead of the ~100 ms of
RSA 2048 (tests and rotations make many), handshakes are smaller and cheaper,
and every client that matters (Go's crypto/tls in the API server and
kube-scheduler, OpenSSL, cert-manager) supports it.

Files are written atomically (temporary file + rename in the same directory),
so a server that reloads certificates while we write never reads half a file.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from spotpack.errors import CertificateError

DEFAULT_OUT_DIR = Path("certs/out")
DEFAULT_NAMESPACE = "spotpack-system"
DEFAULT_SERVICES: tuple[str, ...] = ("spotpack-webhook", "spotpack-extender")
SERVING_VALIDITY_DAYS = 365
CA_VALIDITY_DAYS = 3650
CA_COMMON_NAME = "spotpack-ca"
LOOPBACK_NAMES: tuple[str, ...] = ("localhost",)
LOOPBACK_IPS: tuple[str, ...] = ("127.0.0.1", "::1")

# Backdate notBefore a little: a node whose clock runs slightly behind ours
# would otherwise reject a certificate made a second ago as "not yet valid".
_CLOCK_SKEW = dt.timedelta(minutes=5)
_KEY_MODE = 0o600
_CERT_MODE = 0o644
_FIX_GENERATE = "run `spotpack certs --out DIR` (or `make certs`) to create it"
_FIX_CORRUPT = (
    "replace it: `spotpack certs --out DIR` rewrites the serving certificate and key, "
    "`spotpack certs --out DIR --new-ca` also a broken CA (the caBundle then changes)"
)

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertPaths:
    """Where the four files live inside an output directory."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, out_dir: Path | str) -> CertPaths:
        """Name the files the way Kubernetes TLS secrets and our Makefile expect."""
        base = Path(out_dir)
        return cls(base / "ca.crt", base / "ca.key", base / "tls.crt", base / "tls.key")


@dataclass(frozen=True)
class IssuedCertificate:
    """What :func:`generate` did, so a CLI can report it and a test can assert on it."""

    paths: CertPaths
    serial: int
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    ca_reused: bool


def service_dns_names(services: Iterable[str], namespace: str) -> list[str]:
    """Every name a client inside the cluster may use to reach each service.

    The API server calls webhooks as ``<svc>.<ns>.svc``; people and the
    scheduler config may use the shorter or the fully qualified forms.
    """
    names: list[str] = []
    for svc in services:
        for name in (
            svc,
            f"{svc}.{namespace}",
            f"{svc}.{namespace}.svc",
            f"{svc}.{namespace}.svc.cluster.local",
        ):
            if name not in names:
                names.append(name)
    return names


def generate(
    out_dir: Path | str = DEFAULT_OUT_DIR,
    *,
    services: Sequence[str] = DEFAULT_SERVICES,
    namespace: str = DEFAULT_NAMESPACE,
    days: int = SERVING_VALIDITY_DAYS,
    new_ca: bool = False,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """Write ``ca.crt``, ``ca.key``, ``tls.crt`` and ``tls.key`` into ``out_dir``.

    An existing CA in the directory is reused unless ``new_ca`` is set, so
    re-running this rotates the serving certificate while the caBundle already
    installed in the cluster stays valid.
    """
    if days < 1:
        raise CertificateError(f"serving certificate validity must be >= 1 day, got {days}")
    if not services:
        raise CertificateError("at least one service name is needed for the certificate SANs")
    moment = now or dt.datetime.now(dt.UTC)
    paths = CertPaths.in_dir(out_dir)
    _ensure_dir(paths.cert.parent)
    reuse = not new_ca and (paths.ca_cert.exists() or paths.ca_key.exists())
    if reuse:
        ca_cert, ca_key = load_ca(paths)
    else:
        ca_cert, ca_key = _new_ca(moment)
    not_after = moment + dt.timedelta(days=days)
    _check_ca_outlives(ca_cert, not_after, paths.ca_cert)
    dns_names = tuple(list(LOOPBACK_NAMES) + service_dns_names(services, namespace))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _serving_cert(
        key,
        ca_cert,
        ca_key,
        dns_names=dns_names,
        ip_addresses=LOOPBACK_IPS,
        now=moment,
        not_after=not_after,
    )
    if not reuse:
        write_atomic(paths.ca_key, _key_pem(ca_key), _KEY_MODE)
        write_atomic(paths.ca_cert, _cert_pem(ca_cert), _CERT_MODE)
    # Key first, then certificate: the two renames are back to back, so a
    # reloading server sees a mismatched pair for microseconds at most, and it
    # keeps serving the previous pair when it does.
    write_atomic(paths.key, _key_pem(key), _KEY_MODE)
    write_atomic(paths.cert, _cert_pem(cert), _CERT_MODE)
    return IssuedCertificate(
        paths=paths,
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        dns_names=dns_names,
        ip_addresses=LOOPBACK_IPS,
        ca_reused=reuse,
    )


def ca_bundle(out_dir: Path | str = DEFAULT_OUT_DIR) -> str:
    """Base64 of the CA certificate PEM: the ``caBundle`` field of webhook configs.

    The file is parsed first so a truncated or foreign file fails here, not
    as an opaque TLS error in the API server's log.
    """
    path = CertPaths.in_dir(out_dir).ca_cert
    load_certificate(path)
    return base64.b64encode(_read(path)).decode("ascii")


def load_certificate(path: Path | str) -> x509.Certificate:
    """Parse one PEM certificate, naming the file and the fix when it cannot be used."""
    file = Path(path)
    try:
        return x509.load_pem_x509_certificate(_read(file))
    except ValueError as exc:
        raise CertificateError(f"{file} is not a PEM certificate; {_FIX_CORRUPT}") from exc


def load_private_key(path: Path | str) -> PrivateKey:
    """Parse one unencrypted PEM EC private key (the kind :func:`generate` writes)."""
    file = Path(path)
    try:
        key = serialization.load_pem_private_key(_read(file), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"{file} is not an unencrypted PEM private key; {_FIX_CORRUPT}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(
            f"{file} holds a {type(key).__name__}, not an EC key; "
            "pass --new-ca to replace a CA made by another tool"
        )
    return key


def load_ca(paths: CertPaths) -> tuple[x509.Certificate, PrivateKey]:
    """Load the CA pair for re-signing, refusing a half-present or mismatched CA."""
    for path in (paths.ca_cert, paths.ca_key):
        if not path.exists():
            raise CertificateError(
                f"{path} is missing but the rest of the CA is present; "
                "restore it, or pass --new-ca (then update every caBundle)"
            )
    cert = load_certificate(paths.ca_cert)
    key = load_private_key(paths.ca_key)
    if not _same_public_key(cert, key):
        raise CertificateError(
            f"{paths.ca_key} does not belong to {paths.ca_cert}; "
            "restore the right pair, or pass --new-ca (then update every caBundle)"
        )
    return cert, key


def key_matches_cert(cert_path: Path | str, key_path: Path | str) -> bool:
    """Whether the private key is the one the certificate was issued for."""
    return _same_public_key(load_certificate(cert_path), load_private_key(key_path))


def days_left(cert_path: Path | str, now: dt.datetime | None = None) -> float:
    """Days until the certificate expires (negative once it has)."""
    cert = load_certificate(cert_path)
    remaining = cert.not_valid_after_utc - (now or dt.datetime.now(dt.UTC))
    return remaining.total_seconds() / 86400


def verify_issued_by(cert_path: Path | str, ca_path: Path | str) -> None:
    """Raise :class:`CertificateError` unless ``ca_path`` signed ``cert_path``.

    Catches the classic rotation mistake: a new CA was made (``--new-ca``) but
    the caBundle in the cluster still holds the old one.
    """
    cert, ca = load_certificate(cert_path), load_certificate(ca_path)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(
            f"{cert_path} was not issued by {ca_path} ({exc or type(exc).__name__}); "
            "regenerate the serving certificate with `spotpack certs` using that CA"
        ) from exc


# --------------------------------------------------------------------------- in memory
#
# The same CA and serving certificates for callers that keep them elsewhere than
# in files (``spotpack certs --kube-secret`` stores them in Kubernetes Secrets):
# PEM bytes in, PEM bytes out, nothing written.


@dataclass(frozen=True)
class PemPair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def new_ca_pem(now: dt.datetime | None = None) -> PemPair:
    """A new private CA (as :func:`generate` makes), as PEM bytes."""
    cert, key = _new_ca(now or dt.datetime.now(dt.UTC))
    return PemPair(_cert_pem(cert), _key_pem(key))


def parse_ca_pem(pair: PemPair, where: str) -> tuple[x509.Certificate, PrivateKey]:
    """The CA pair from PEM bytes, refusing a non-CA or a key of another certificate.

    ``where`` names the source (a Secret) in the error, so the message says what
    to fix.
    """
    try:
        cert = x509.load_pem_x509_certificate(pair.cert)
        key = serialization.load_pem_private_key(pair.key, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(
            f"{where} does not hold a PEM CA certificate and key ({exc})"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{where} holds a {type(key).__name__} CA key, not an EC key")
    if not _same_public_key(cert, key):
        raise CertificateError(f"{where}: the CA key does not belong to the CA certificate")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertificateError(f"{where}: the certificate is not a CA (basicConstraints)")
    return cert, key


def issue_serving_pem(
    ca: PemPair,
    *,
    dns_names: Sequence[str],
    days: int = SERVING_VALIDITY_DAYS,
    now: dt.datetime | None = None,
    where: str = "the CA",
) -> PemPair:
    """A serving certificate for ``dns_names`` (plus loopback) signed by ``ca``, as PEM."""
    if days < 1:
        raise CertificateError(f"serving certificate validity must be >= 1 day, got {days}")
    moment = now or dt.datetime.now(dt.UTC)
    ca_cert, ca_key = parse_ca_pem(ca, where)
    not_after = moment + dt.timedelta(days=days)
    if ca_cert.not_valid_after_utc < not_after:
        raise CertificateError(
            f"the CA in {where} expires on {ca_cert.not_valid_after_utc:%Y-%m-%d}, before the "
            f"new serving certificate would ({not_after:%Y-%m-%d}); pass --new-ca or fewer --days"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _serving_cert(
        key,
        ca_cert,
        ca_key,
        dns_names=tuple(dict.fromkeys([*LOOPBACK_NAMES, *dns_names])),
        ip_addresses=LOOPBACK_IPS,
        now=moment,
        not_after=not_after,
    )
    return PemPair(_cert_pem(cert), _key_pem(key))


def serving_problem(
    serving: PemPair,
    ca_cert_pem: bytes,
    *,
    dns_names: Sequence[str],
    renew_before: dt.timedelta,
    now: dt.datetime | None = None,
) -> str | None:
    """Why ``serving`` must be re-issued, or None when it is fine as it is.

    Fine means: it parses, its key is its own, the CA signed it, every name in
    ``dns_names`` is among its SANs and it is valid for longer than
    ``renew_before``. Keeping a good certificate is what makes a repeated run
    change nothing.
    """
    moment = now or dt.datetime.now(dt.UTC)
    try:
        cert = x509.load_pem_x509_certificate(serving.cert)
        key = serialization.load_pem_private_key(serving.key, password=None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except (ValueError, TypeError) as exc:
        return f"unreadable ({exc})"
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_public_key(cert, key):
        return "the key does not belong to the certificate"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "not issued by the current CA"
    missing = set(dns_names) - _dns_sans(cert)
    if missing:
        return f"does not name {', '.join(sorted(missing))}"
    left = cert.not_valid_after_utc - moment
    return f"expires in {left.days} days" if left <= renew_before else None


def _dns_sans(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(sans.get_values_for_type(x509.DNSName))


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half.

    The temporary file lives in the same directory (a rename across file
    systems is a copy, not atomic) and gets its final mode before any byte of
    a key is written, so a key is never world-readable, not even briefly.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CertificateError(
            f"cannot write {path}: {exc.strerror or exc}; check the directory is writable"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    """A CA that can sign serving certificates and nothing below them (pathlen 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "spotpack"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _serving_cert(
    key: PrivateKey,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    now: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A leaf for TLS servers; the SANs are what clients check (CN is ignored)."""
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(dns_names))])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """ECDSA keys only sign: no key encipherment (that is for RSA key transport)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _common_name(dns_names: Sequence[str]) -> str:
    """The first ``<svc>.<ns>.svc`` name: what a person expects to read in the subject."""
    svc_names = [name for name in dns_names if name.endswith(".svc")]
    return (svc_names or list(dns_names))[0][:64]


def _check_ca_outlives(ca_cert: x509.Certificate, not_after: dt.datetime, ca_path: Path) -> None:
    """A leaf valid longer than its CA would fail verification once the CA expires."""
    if ca_cert.not_valid_after_utc < not_after:
        raise CertificateError(
            f"the CA in {ca_path} expires on {ca_cert.not_valid_after_utc:%Y-%m-%d}, before the "
            f"new serving certificate would ({not_after:%Y-%m-%d}); pass --new-ca "
            "(then update every caBundle) or fewer --days"
        )


def _same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, fmt) == key.public_key().public_bytes(der, fmt)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(
            f"cannot create {path}: {exc.strerror or exc}; choose another --out directory"
        ) from exc


def _read(path: Path) -> bytes:
    """Read a file, turning OS errors into a message that names the path and the fix."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(f"{path} does not exist; {_FIX_GENERATE}") from exc
    except IsADirectoryError as exc:
        raise CertificateError(f"{path} is a directory, not a PEM file") from exc
    except PermissionError as exc:
        raise CertificateError(
            f"{path} is not readable by this user (uid {os.getuid()}); fix its owner or mode"
        ) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror or exc}") from exc
