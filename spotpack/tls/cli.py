"""The ``spotpack certs`` subcommand: make or rotate certificates, print the caBundle.

``--print-ca-bundle`` only reads: it prints the base64 bundle of the CA already
in ``--out`` and nothing else, so ``CA_BUNDLE=$(spotpack certs --print-ca-bundle)``
is safe in scripts and never rotates anything as a side effect.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spotpack.errors import CertificateError
from spotpack.tls.certs import (
    DEFAULT_NAMESPACE,
    DEFAULT_OUT_DIR,
    DEFAULT_SERVICES,
    SERVING_VALIDITY_DAYS,
    IssuedCertificate,
    ca_bundle,
    generate,
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``certs`` on the main parser's subparsers (``parser.add_subparsers()``).

    Sets ``func=run`` as the parser default, for mains that dispatch on it.
    """
    parser = subparsers.add_parser(
        "certs",
        help="create or rotate the webhook/extender TLS certificates",
        description=(
            "Write ca.crt, ca.key, tls.crt and tls.key into --out. An existing CA "
            "there is reused (rotation keeps the caBundle valid) unless --new-ca."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT_DIR,
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT_DIR})",
    )
    parser.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"namespace of the services (default {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--service",
        action="append",
        dest="services",
        metavar="NAME",
        help=f"service name for the SANs, repeatable (default {', '.join(DEFAULT_SERVICES)})",
    )
    parser.add_argument(
        "--days",
        type=_positive_int,
        default=SERVING_VALIDITY_DAYS,
        help=f"serving certificate validity in days (default {SERVING_VALIDITY_DAYS})",
    )
    parser.add_argument(
        "--new-ca",
        action="store_true",
        help="make a new CA even if one exists (every caBundle must then be updated)",
    )
    parser.add_argument(
        "--print-ca-bundle",
        action="store_true",
        help="print only the base64 caBundle of the existing CA; writes nothing",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out ``spotpack certs``; 0 on success, 1 with a one-line error on stderr."""
    try:
        if args.print_ca_bundle:
            print(ca_bundle(args.out))
            return 0
        issued = generate(
            args.out,
            services=tuple(args.services or DEFAULT_SERVICES),
            namespace=args.namespace,
            days=args.days,
            new_ca=args.new_ca,
        )
    except CertificateError as exc:
        print(f"spotpack certs: error: {exc}", file=sys.stderr)
        return 1
    print(_summary(issued))
    return 0


def _summary(issued: IssuedCertificate) -> str:
    """What was written and what to do next, for a person at a terminal."""
    paths = issued.paths
    ca_line = (
        f"reused CA   {paths.ca_cert} (caBundle unchanged)"
        if issued.ca_reused
        else f"new CA      {paths.ca_cert}, {paths.ca_key} (update every caBundle)"
    )
    return "\n".join(
        [
            ca_line,
            f"serving     {paths.cert}, {paths.key}",
            f"serial      {issued.serial:x}",
            f"expires     {issued.not_after:%Y-%m-%d %H:%M} UTC",
            f"DNS names   {', '.join(issued.dns_names)}",
            f"IPs         {', '.join(issued.ip_addresses)}",
            f"caBundle    spotpack certs --out {paths.ca_cert.parent} --print-ca-bundle",
        ]
    )


def _positive_int(text: str) -> int:
    """argparse type: a whole number of days, at least one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
