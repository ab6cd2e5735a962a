"""Certificates for the webhook and the extender, and TLS contexts that reload them.

``certs`` makes a private CA and serving certificates (cryptography);
``reload`` builds server ``ssl.SSLContext`` objects that pick up rotated files
without a restart (stdlib only); ``cli`` is the ``spotpack certs`` command.
This is an adapter package: the pure core never imports it.
"""

from spotpack.tls.certs import (
    DEFAULT_NAMESPACE,
    DEFAULT_OUT_DIR,
    DEFAULT_SERVICES,
    CertPaths,
    IssuedCertificate,
    ca_bundle,
    days_left,
    generate,
    key_matches_cert,
    service_dns_names,
    verify_issued_by,
)
from spotpack.tls.reload import ReloadingContext, build_server_context

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_OUT_DIR",
    "DEFAULT_SERVICES",
    "CertPaths",
    "IssuedCertificate",
    "ReloadingContext",
    "build_server_context",
    "ca_bundle",
    "days_left",
    "generate",
    "key_matches_cert",
    "service_dns_names",
    "verify_issued_by",
]
