"""The ``spotpack certs`` subcommand: make or rotate certificates, print the caBundle.

``--print-ca-bundle`` only reads: it prints the base64 bundle of the CA already
in ``--out`` and nothing else, so ``CA_BUNDLE=$(spotpack certs --print-ca-bundle)``
is safe in scripts and never rotates anything as a side effect.

``--kube-secret NAMESPACE/NAME`` keeps the certificates in Secrets instead of
files and, with ``--patch-webhook``, writes the caBundle into the webhook
configuration (:mod:`spotpack.tls.kube`); the install Job runs it that way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spotpack.errors import CertificateError, SpotpackError
from spotpack.tls.certs import (
    DEFAULT_NAMESPACE,
    DEFAULT_OUT_DIR,
    DEFAULT_SERVICES,
    SERVING_VALIDITY_DAYS,
    IssuedCertificate,
    ca_bundle,
    generate,
)
from spotpack.tls.kube import (
    DEFAULT_CA_SECRET,
    DEFAULT_RENEW_BEFORE_DAYS,
    KubeCertApi,
    Outcome,
    Request,
    bootstrap,
    parse_secret_ref,
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
    kube = parser.add_argument_group(
        "in the cluster",
        "keep the certificates in Secrets (no files) and patch the webhook's caBundle",
    )
    kube.add_argument(
        "--kube-secret",
        metavar="NAMESPACE/NAME",
        help="the serving certificate's Secret (kubernetes.io/tls, with ca.crt); "
        "kept while valid, re-signed by the same CA when near expiry",
    )
    kube.add_argument(
        "--ca-secret",
        metavar="NAME",
        default=DEFAULT_CA_SECRET,
        help=f"the CA's own Secret, same namespace: reused, created when absent "
        f"(default {DEFAULT_CA_SECRET})",
    )
    kube.add_argument(
        "--patch-webhook",
        metavar="NAME",
        help="MutatingWebhookConfiguration whose caBundle is set to the CA",
    )
    kube.add_argument(
        "--renew-days",
        type=_positive_int,
        metavar="DAYS",
        default=DEFAULT_RENEW_BEFORE_DAYS,
        help=f"renew a serving certificate with fewer days left (default "
        f"{DEFAULT_RENEW_BEFORE_DAYS})",
    )
    kube.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the webhook configuration to exist (default 0)",
    )
    kube.add_argument("--kubeconfig", help="kubeconfig (else in-cluster config, else KUBECONFIG)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out ``spotpack certs``; 0 on success, 1 with a one-line error on stderr."""
    if getattr(args, "kube_secret", None):
        return _run_in_cluster(args)
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


def _run_in_cluster(args: argparse.Namespace) -> int:
    """``--kube-secret``: Secrets and caBundle in the cluster; nothing written to disk."""
    from spotpack.kube.config import load_api_client

    if args.print_ca_bundle or args.out != DEFAULT_OUT_DIR:
        print(
            "spotpack certs: error: --kube-secret keeps certificates in Secrets; "
            "leave out --out and --print-ca-bundle",
            file=sys.stderr,
        )
        return 2
    try:
        namespace, name = parse_secret_ref(args.kube_secret)
        request = Request(
            namespace=namespace,
            secret=name,
            ca_secret=args.ca_secret,
            webhook=args.patch_webhook,
            services=tuple(args.services or ("spotpack-webhook",)),
            days=args.days,
            renew_before_days=args.renew_days,
            new_ca=args.new_ca,
            wait_seconds=max(0.0, args.wait),
        )
        api_client = load_api_client(args.kubeconfig)
        try:
            outcome = bootstrap(KubeCertApi(api_client), request)
        finally:
            api_client.close()
    except SpotpackError as exc:
        # Library messages (a YAML error in a kubeconfig) span lines; a Job log wants one.
        print(f"spotpack certs: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(_kube_summary(request, outcome))
    return 0


def _kube_summary(req: Request, outcome: Outcome) -> str:
    ca = "new CA" if outcome.ca_created else "reused CA"
    serving = (
        "kept (valid, names and CA match)"
        if outcome.serving_reason is None
        else f"issued ({outcome.serving_reason})"
    )
    if not req.webhook:
        webhook = "not patched (no --patch-webhook)"
    elif outcome.webhooks_patched:
        webhook = f"caBundle set on {', '.join(outcome.webhooks_patched)}"
    else:
        webhook = "caBundle already current"
    return "\n".join(
        [
            f"CA          Secret {req.namespace}/{req.ca_secret}: {ca}",
            f"serving     Secret {req.namespace}/{req.secret}: {serving}",
            f"webhook     {req.webhook or '-'}: {webhook}",
        ]
    )


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
