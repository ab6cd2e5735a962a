"""The one-step install: deploy/ and every overlay, rendered, validated and held to the code.

test_deploy_manifests.py and test_deploy_scheduler.py hold the webhook and the
scheduler profile to their contracts; this module covers what the install
adds around them and what ties the parts together:

1. Every entry point (deploy/ and each overlay) renders as ``kubectl
   kustomize`` renders it (compared where kubectl is installed) and validates
   strictly against the Kubernetes schemas of 1.28, 1.30 and the newest set.
2. Settings: every ``SPOTPACK_*`` variable a container starts with (its own
   env, plus deploy/values through envFrom and configMapKeyRef) is a field of
   the settings class of the service it runs, and parses; the shared values
   reach every service; the values file is not shadowed by a Deployment.
3. RBAC derived from the code: the Kubernetes client calls of the provisioner
   and of ``spotpack certs --kube-secret`` are read from their sources; the
   evaluator of tests/manifests.py proves each is allowed and that the roles
   grant nothing else.
4. The provisioner's Deployment, PDB, Service, NetworkPolicy; the cert Job and
   CronJob; the cloud-credential overlays; images, ServiceAccounts.
5. The IAM policy holds every boto3 operation of spotpack/cloud/aws.py and
   sqs.py; the Dockerfile is slim, pinned, non-root and builds the image the
   manifests name.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from extender.settings import ExtenderSettings
from provisioner.settings import ProvisionerSettings
from spotpack.placement import DEFAULT_ROLE_CAPACITY
from spotpack.tls import cli as certs_cli
from spotpack.tls.kube import DEFAULT_CA_SECRET
from tests import manifests as m
from webhook.settings import WebhookSettings

Obj = dict[str, Any]

NS = "spotpack-system"
REPO = m.REPO_ROOT
OVERLAYS = m.DEPLOY_DIR / "overlays"
ENTRIES = {
    "deploy": m.DEPLOY_DIR,
    **{f"overlays/{p.name}": p for p in sorted(OVERLAYS.iterdir()) if p.is_dir()},
}
EXPECTED_OVERLAYS = {"cert-manager", "aws-irsa", "aws-secret", "kind", "with-karpenter"}
WITHOUT_PROVISIONER = {"overlays/with-karpenter"}
"""Entries for clusters whose nodes come from Karpenter: spotpack's provisioner left out."""
WITH_PROVISIONER = [e for e in ENTRIES if e not in WITHOUT_PROVISIONER]
K8S_VERSIONS = ("1.28", "1.30", m.schema_versions()[-1])
CRD_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}

SETTINGS: dict[str, type[BaseModel]] = {
    "SPOTPACK_WEBHOOK_": WebhookSettings,
    "SPOTPACK_EXTENDER_": ExtenderSettings,
    "SPOTPACK_PROVISIONER_": ProvisionerSettings,
}
SERVICE_OF_COMMAND = {
    "webhook": "SPOTPACK_WEBHOOK_",
    "extender": "SPOTPACK_EXTENDER_",
    "provisioner": "SPOTPACK_PROVISIONER_",
}
# deploy/values keys without a service prefix, and the setting each maps to.
SHARED = {"SPOTPACK_LABEL_SCHEME": "label_scheme", "SPOTPACK_REGION": "region"}

PROVISIONER = "spotpack-provisioner"
CERTS = "spotpack-certs"
TLS_SECRET = "spotpack-webhook-tls"
VALUES_MAP, CATALOG_MAP = "spotpack-values", "spotpack-catalog"
CATALOG_FILE = "/etc/spotpack/catalog/catalog.json"
VALUES_FILE = m.DEPLOY_DIR / "values" / "spotpack.env"
IAM_POLICY = m.DEPLOY_DIR / "aws" / "provisioner-iam-policy.json"
DOCKERFILE, MAKEFILE = REPO / "Dockerfile", REPO / "Makefile"
NONROOT = 65532

_CACHE: dict[str, list[Obj]] = {}


def rendered(entry: str = "deploy") -> list[Obj]:
    if entry not in _CACHE:
        _CACHE[entry] = m.render(ENTRIES[entry]).objects
    return copy.deepcopy(_CACHE[entry])


def ident(obj: Obj) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def workloads(objs: list[Obj]) -> Iterator[tuple[Obj, Obj, Obj]]:
    """(object, pod spec, container) of every container of every workload."""
    for obj in objs:
        for spec in m.pod_specs(obj):
            for ctr in [*spec.get("containers", []), *spec.get("initContainers", [])]:
                yield obj, spec, ctr


def spotpack_containers(objs: list[Obj]) -> Iterator[tuple[Obj, Obj, Obj]]:
    return ((o, s, c) for o, s, c in workloads(objs) if (c.get("command") or [""])[0] == "spotpack")


def container(objs: list[Obj], kind: str, name: str, ctr_name: str) -> Obj:
    (spec,) = m.pod_specs(m.find(objs, kind, name))
    (found,) = [c for c in spec["containers"] if c["name"] == ctr_name]
    return found


def service_env(objs: list[Obj], prefix: str) -> dict[str, str]:
    """The environment of the container that runs the service of ``prefix``."""
    command = next(k for k, v in SERVICE_OF_COMMAND.items() if v == prefix)
    (found,) = [
        (o, c) for o, _, c in spotpack_containers(objs) if c["command"] == ["spotpack", command]
    ]
    return m.container_env(objs, found[0]["metadata"]["namespace"], found[1])


# --------------------------------------------------------------------------- 1. rendering


def test_the_overlays_are_the_documented_ones() -> None:
    assert {p.name for p in OVERLAYS.iterdir() if p.is_dir()} == EXPECTED_OVERLAYS
    for name in EXPECTED_OVERLAYS:
        assert f"deploy/overlays/{name}" in (m.DEPLOY_DIR / "README.md").read_text(), name


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_renders_like_kubectl_kustomize(entry: str) -> None:
    """The loader is a stand-in for kustomize; where kubectl is installed, it must agree."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: rendering not compared with kustomize")
    out = subprocess.run(
        [kubectl, "kustomize", str(ENTRIES[entry])],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    theirs = {ident(o): o for o in yaml.safe_load_all(out) if o}
    ours = {ident(o): o for o in rendered(entry)}
    assert set(ours) == set(theirs)
    assert [k for k in ours if ours[k] != theirs[k]] == []


def test_generated_names_use_kustomizes_hash() -> None:
    """Recorded from kustomize v5.5.0 (kubectl 1.32), for machines without kubectl."""
    catalog = {"metadata": {"name": "spotpack-catalog"}, "data": {"catalog.json": "{}\n"}}
    assert m.kustomize_hash(catalog) == "mhmfh48d48"
    renamed = {"metadata": {"name": "other"}, "data": {"catalog.json": "{}\n"}}
    assert m.kustomize_hash(renamed) == "mhmfh48d48", "v5 hashes the data only"
    escaped = {"metadata": {"name": "x"}, "data": {"k": "<a&b>"}}
    assert m.kustomize_hash(escaped) != m.kustomize_hash({"metadata": {"name": "x"}, "data": {}})


def test_env_file_rules(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text(
        '# comment\n\n  A=1\nB="quoted" \nC=x=y\nD=\n   # indented comment\nE={"k": [1]}\n',
        encoding="utf-8",
    )
    assert m.parse_env_file(env) == {
        "A": "1",
        "B": '"quoted" ',
        "C": "x=y",
        "D": "",
        "E": '{"k": [1]}',
    }
    env.write_text("A=1\nFROM_MY_SHELL\n", encoding="utf-8")
    with pytest.raises(m.KustomizeError, match="no '='"):
        m.parse_env_file(env)


def test_generator_merge_needs_something_to_merge_into(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "configMapGenerator:\n  - {name: v, behavior: merge, literals: [A=1]}\n",
        encoding="utf-8",
    )
    with pytest.raises(m.KustomizeError, match="no generated ConfigMap"):
        m.render(tmp_path)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_every_object_validates_strictly(entry: str, version: str) -> None:
    problems = []
    for obj in rendered(entry):
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue  # test_deploy_manifests.py validates them against their own schemas
        assert m.has_schema(obj, version), f"{ident(obj)}: not a Kubernetes {version} API"
        problems += [f"{ident(obj)}: {e}" for e in m.validation_errors(obj, version)]
    assert not problems, "\n".join(problems)


def _kustomization(directory: Path) -> Obj:
    (doc,) = m.load_yaml_documents(directory / "kustomization.yaml")
    return doc


def test_overlays_list_the_same_resources_and_one_certificate_source() -> None:
    """An overlay cannot include deploy/ (a kustomize cycle), so it repeats the list."""
    root = _kustomization(m.DEPLOY_DIR)
    resources = [(m.DEPLOY_DIR / r).resolve() for r in root["resources"]]
    assert root["components"] == ["components/cert-job"]
    sources = {"cert-job", "cert-manager"}
    for overlay in EXPECTED_OVERLAYS:
        doc = _kustomization(OVERLAYS / overlay)
        expected = resources
        if f"overlays/{overlay}" in WITHOUT_PROVISIONER:
            expected = [r for r in resources if r != (m.DEPLOY_DIR / "provisioner").resolve()]
            assert len(expected) == len(resources) - 1
        assert [(OVERLAYS / overlay / r).resolve() for r in doc["resources"]] == expected
        components = [Path(c).name for c in doc["components"]]
        assert len(sources & set(components)) == 1, f"{overlay}: one way to get certificates"
        assert components == sorted(components, key=lambda c: c not in sources), (
            "certificates first"
        )
        if f"overlays/{overlay}" in WITHOUT_PROVISIONER:
            assert components == ["cert-job"]
        elif overlay != "cert-manager":
            assert components == ["cert-job", overlay]


# --------------------------------------------------------------------------- 2. settings


def settings_from(
    monkeypatch: pytest.MonkeyPatch, kind: type[BaseModel], env: dict[str, str]
) -> BaseModel:
    """Build settings the way the service does: from the environment (JSON decoded there).

    A runtime marker (<fieldRef ...>, <secret ...>) stands for a plain string.
    """
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("SPOTPACK_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, "runtime-value" if value.startswith("<") else value)
        return kind()


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_every_spotpack_variable_is_a_setting_that_parses(
    entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = rendered(entry)
    seen = set()
    for obj, _, ctr in spotpack_containers(objs):
        where = f"{ident(obj)} {ctr['name']}"
        env = m.container_env(objs, obj["metadata"]["namespace"], ctr)
        for name in env:
            if name.startswith("AWS_"):
                continue  # boto3's credential chain (aws-secret)
            prefix = next((p for p in SETTINGS if name.startswith(p)), None)
            if prefix is None:
                assert name in SHARED, f"{where}: {name} is read by nobody"
                continue
            field = name.removeprefix(prefix).lower()
            assert field in SETTINGS[prefix].model_fields, f"{where}: {name} is not a setting"
        command = ctr["command"][1]
        if command not in SERVICE_OF_COMMAND:
            assert not env, f"{where}: `spotpack {command}` reads no settings"
            continue
        prefix = SERVICE_OF_COMMAND[command]
        # Raises on a value the service would refuse at start.
        settings_from(monkeypatch, SETTINGS[prefix], env)
        seen.add(command)
    assert seen == set(SERVICE_OF_COMMAND) - (
        {"provisioner"} if entry in WITHOUT_PROVISIONER else set()
    )


def test_values_file_names_settings_and_is_not_shadowed() -> None:
    values = m.parse_env_file(VALUES_FILE)
    for name in values:
        prefix = next((p for p in SETTINGS if name.startswith(p)), None)
        if prefix is None:
            assert name in SHARED, f"{name}: not a setting and not a shared key"
        else:
            assert name.removeprefix(prefix).lower() in SETTINGS[prefix].model_fields, name
            shared_field = name.removeprefix(prefix).lower()
            assert shared_field not in SHARED.values(), (
                f"{name}: set SPOTPACK_{shared_field.upper()} instead (the Deployments map it)"
            )
    for entry in ENTRIES:
        for obj, _, ctr in spotpack_containers(rendered(entry)):
            shadowed = {e["name"] for e in ctr.get("env") or []} & set(values)
            assert not shadowed, f"{ident(obj)}: its env hides {shadowed} of spotpack.env"


def test_values_file_states_the_role_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-role policy is written out in full, so a user edits what is in effect."""
    values = m.parse_env_file(VALUES_FILE)
    shipped = json.loads(values["SPOTPACK_WEBHOOK_ROLE_CAPACITY"])
    assert shipped == {k.value: (v.value if v else None) for k, v in DEFAULT_ROLE_CAPACITY.items()}
    settings = settings_from(monkeypatch, WebhookSettings, values)
    assert isinstance(settings, WebhookSettings)
    assert dict(settings.role_capacity) == dict(DEFAULT_ROLE_CAPACITY)


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_shared_values_reach_every_service(entry: str) -> None:
    objs = rendered(entry)
    running = set(SETTINGS)
    if entry in WITHOUT_PROVISIONER:
        running.discard("SPOTPACK_PROVISIONER_")
    for shared, field in SHARED.items():
        readers = {p for p, kind in SETTINGS.items() if field in kind.model_fields and p in running}
        assert readers, shared
        got = {p: service_env(objs, p).get(p + field.upper()) for p in readers}
        values = m.find(objs, "ConfigMap", VALUES_MAP)["data"]
        assert set(got.values()) == {values[shared]}, f"{shared}: {got}"


def test_editing_the_values_file_changes_every_service() -> None:
    """One line in spotpack.env moves all three services to another label scheme."""
    objs = rendered()
    m.find(objs, "ConfigMap", VALUES_MAP)["data"]["SPOTPACK_LABEL_SCHEME"] = "gke"
    role = '{"worker": "spot"}'
    m.find(objs, "ConfigMap", VALUES_MAP)["data"]["SPOTPACK_WEBHOOK_ROLE_CAPACITY"] = role
    for prefix in SETTINGS:
        assert service_env(objs, prefix)[prefix + "LABEL_SCHEME"] == "gke", prefix
    assert service_env(objs, "SPOTPACK_WEBHOOK_")["SPOTPACK_WEBHOOK_ROLE_CAPACITY"] == role


def test_catalog_is_one_configmap_for_the_three_services() -> None:
    objs = rendered()
    catalog = m.find(objs, "ConfigMap", CATALOG_MAP)
    assert isinstance(json.loads(catalog["data"]["catalog.json"]), dict)
    mounts = {}
    for prefix in ("SPOTPACK_WEBHOOK_", "SPOTPACK_EXTENDER_", "SPOTPACK_PROVISIONER_"):
        assert service_env(objs, prefix)[prefix + "CATALOG_FILE"] == CATALOG_FILE
        directory = str(Path(CATALOG_FILE).parent)
        for obj, spec, ctr in spotpack_containers(objs):
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for mount in ctr.get("volumeMounts", []):
                if mount["mountPath"] == directory:
                    assert mount.get("readOnly") is True and "subPath" not in mount
                    mounts[(ident(obj), ctr["name"])] = volumes[mount["name"]]["configMap"]["name"]
    assert set(mounts.values()) == {catalog["metadata"]["name"]}
    assert len(mounts) == 3, mounts
    assert not [o for o in objs if o["metadata"]["name"] == CATALOG_MAP], "one catalog only"


# --------------------------------------------------------------------------- 3. RBAC from the code

# Kubernetes client method suffix -> (API group, resource).
CLIENT_RESOURCES = {
    "node": ("", "nodes"),
    "pod": ("", "pods"),
    "pod_eviction": ("", "pods/eviction"),
    "event": ("", "events"),
    "secret": ("", "secrets"),
    "lease": ("coordination.k8s.io", "leases"),
    "mutating_webhook_configuration": (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
}
CLIENT_VERBS = {"read": "get", "list": "list", "create": "create", "patch": "patch"}
CLIENT_VERBS |= {"replace": "update", "delete": "delete"}
CLIENT_CALL = re.compile(
    r"\.(read|list|create|patch|replace|delete)_(namespaced_)?([a-z_]+?)(_for_all_namespaces)?\b"
)


def client_calls(*paths: str) -> set[tuple[str, str, str]]:
    """(verb, group, resource) of every Kubernetes client method named in these sources.

    A list passed to an Informer is a list and a watch.
    """
    from kubernetes import client

    apis = [client.CoreV1Api, client.CoordinationV1Api, client.AdmissionregistrationV1Api]
    found = set()
    for path in paths:
        text = (REPO / path).read_text(encoding="utf-8")
        for match in CLIENT_CALL.finditer(text):
            method = match.group(0)[1:]
            if not any(hasattr(api, method) for api in apis):
                continue
            verb, resource = CLIENT_VERBS[match.group(1)], match.group(3)
            assert resource in CLIENT_RESOURCES, f"{path}: teach CLIENT_RESOURCES {resource!r}"
            group, plural = CLIENT_RESOURCES[resource]
            found.add((verb, group, plural))
            if f"Informer({match.group(0)[1:]}" in text.replace("core.", ""):
                found.add(("watch", group, plural))
    return found


PROVISIONER_SOURCES = ("provisioner/app.py", "provisioner/kubeapi.py", "provisioner/leader.py")
LOCAL_CLOUD_SOURCES = ("spotpack/cloud/local.py",)
CERTS_SOURCES = ("spotpack/tls/kube.py",)
PROVISIONER_NEEDS = {
    ("list", "", "nodes"),
    ("watch", "", "nodes"),
    ("get", "", "nodes"),
    ("patch", "", "nodes"),
    ("delete", "", "nodes"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("create", "", "pods/eviction"),
    ("create", "", "events"),
    ("create", "coordination.k8s.io", "leases"),
    ("get", "coordination.k8s.io", "leases"),
    ("update", "coordination.k8s.io", "leases"),
}


def test_client_calls_are_read_from_the_sources() -> None:
    """The scan finds what a person reading the code finds (and is not vacuous)."""
    assert client_calls(*PROVISIONER_SOURCES) == PROVISIONER_NEEDS
    assert client_calls(*LOCAL_CLOUD_SOURCES) == {
        ("create", "", "nodes"),
        ("delete", "", "nodes"),
        ("list", "", "nodes"),
    }
    assert client_calls(*CERTS_SOURCES) == {
        ("get", "", "secrets"),
        ("create", "", "secrets"),
        ("update", "", "secrets"),
        ("get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        ("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    }


def _request(verb: str, group: str, resource: str, where: dict[str, str]) -> m.Request:
    """A concrete request for a call: in ``where`` (namespace/name per resource)."""
    namespace, name = where.get(resource, ("", ""))
    if verb in ("create", "list", "watch"):
        name = ""  # such requests name no object (RBAC resourceNames never match them)
    return m.Request(verb, resource, group, namespace=namespace, name=name)


def granted(authorizer: m.RBAC, who: m.Identity) -> set[tuple[str, str, str]]:
    """Every (verb, group, resource) some rule bound to ``who`` grants (no wildcards allowed)."""
    found = set()
    for binding in authorizer.bindings_of(who):
        for rule in authorizer.role_for(binding).get("rules") or []:
            for key in ("verbs", "apiGroups", "resources"):
                assert "*" not in rule.get(key, []), f"{binding['metadata']['name']}: * in {key}"
            found |= {
                (v, g, r)
                for v in rule["verbs"]
                for g in rule["apiGroups"]
                for r in rule["resources"]
            }
    return found


# Where each call of the provisioner lands: pods and events anywhere, nodes cluster-wide, its Lease.
PROVISIONER_WHERE = {
    "nodes": ("", "ip-10-0-0-1.ec2.internal"),
    "pods": ("", ""),
    "pods/eviction": ("team-a", "executor-1"),
    "events": ("default", ""),
    "leases": (NS, PROVISIONER),
}


@pytest.mark.parametrize("entry", WITH_PROVISIONER)
def test_provisioner_may_make_its_calls_and_nothing_else(entry: str) -> None:
    check_provisioner_rbac(rendered(entry), entry)


def check_provisioner_rbac(objs: list[Obj], entry: str = "deploy") -> None:
    sa = m.find(objs, "ServiceAccount", PROVISIONER)
    who = m.service_account(NS, sa["metadata"]["name"])
    authorizer = m.RBAC(objs)
    needs = client_calls(*PROVISIONER_SOURCES)
    cloud = service_env(objs, "SPOTPACK_PROVISIONER_")["SPOTPACK_PROVISIONER_CLOUD"]
    if cloud == "local":
        needs |= client_calls(*LOCAL_CLOUD_SOURCES)
    for call in sorted(needs):
        request = _request(*call, PROVISIONER_WHERE)
        assert authorizer.allows(who, request), f"{entry}: {request} refused"
    assert granted(authorizer, who) == needs, "the roles grant exactly the calls"
    lease = service_env(objs, "SPOTPACK_PROVISIONER_")
    assert lease["SPOTPACK_PROVISIONER_LEASE_NAME"] == PROVISIONER
    assert lease["SPOTPACK_PROVISIONER_LEASE_NAMESPACE"] == "<fieldRef metadata.namespace>"
    other_lease = m.Request("update", "leases", "coordination.k8s.io", namespace=NS, name="x")
    assert not authorizer.allows(who, other_lease), "only its own Lease"
    for namespace in (NS, "team-a"):
        assert not authorizer.allows(
            who, m.Request("get", "secrets", namespace=namespace, name="s")
        )
    assert not authorizer.allows(who, m.Request("update", "pods", namespace="team-a", name="p"))


def test_only_the_local_cloud_may_create_nodes() -> None:
    for entry in WITH_PROVISIONER:
        objs = rendered(entry)
        local = service_env(objs, "SPOTPACK_PROVISIONER_")["SPOTPACK_PROVISIONER_CLOUD"] == "local"
        who = m.service_account(NS, PROVISIONER)
        assert m.RBAC(objs).allows(who, m.Request("create", "nodes")) is local, entry


CERTS_WHERE = {
    "secrets": (NS, TLS_SECRET),
    "mutatingwebhookconfigurations": ("", "spotpack"),
}


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e != "overlays/cert-manager"])
def test_cert_job_may_make_its_calls_and_nothing_else(entry: str) -> None:
    check_cert_job_rbac(rendered(entry))


def check_cert_job_rbac(objs: list[Obj]) -> None:
    who = m.service_account(NS, CERTS)
    authorizer = m.RBAC(objs)
    needs = client_calls(*CERTS_SOURCES)
    args = cert_job_args(objs)
    namespace, secret = args.kube_secret.split("/")
    for name in (secret, args.ca_secret):
        for call in sorted(needs):
            where = {**CERTS_WHERE, "secrets": (namespace, name)}
            request = _request(*call, where)
            assert authorizer.allows(who, request), f"{request} refused"
    webhook = m.find(objs, "MutatingWebhookConfiguration", args.patch_webhook)["metadata"]["name"]
    for verb in ("get", "patch"):
        request = m.Request(
            verb, "mutatingwebhookconfigurations", "admissionregistration.k8s.io", name=webhook
        )
        assert authorizer.allows(who, request)
    assert granted(authorizer, who) == needs
    deny = [
        m.Request("get", "secrets", namespace=NS, name="spotpack-aws-credentials"),
        m.Request("list", "secrets", namespace=NS),
        m.Request("get", "secrets", namespace="team-a", name=TLS_SECRET),
        m.Request(
            "patch",
            "mutatingwebhookconfigurations",
            "admissionregistration.k8s.io",
            name="someone-elses",
        ),
    ]
    assert not [r for r in deny if authorizer.allows(who, r)]


PROVISIONER_ROLE = "ClusterRole/spotpack-provisioner"
CERTS_ROLE = "Role/spotpack-certs"
# (id, check, object, path, change): each broken copy must fail its check.
BROKEN_RBAC: list[tuple[str, Any, str, str, Any]] = [
    (
        "no-patch",
        check_provisioner_rbac,
        PROVISIONER_ROLE,
        "rules[0].verbs",
        ["get", "list", "watch", "delete"],
    ),
    ("no-eviction", check_provisioner_rbac, PROVISIONER_ROLE, "rules[2].verbs", ["get"]),
    ("extra-verb", check_provisioner_rbac, PROVISIONER_ROLE, "rules[1].verbs", m.Append("delete")),
    (
        "secrets",
        check_provisioner_rbac,
        PROVISIONER_ROLE,
        "rules",
        m.Append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
    ),
    ("wildcard", check_provisioner_rbac, PROVISIONER_ROLE, "rules[3].resources", ["*"]),
    (
        "other-lease",
        check_provisioner_rbac,
        "Role/spotpack-provisioner:leader-election",
        "rules[1].resourceNames",
        ["spotpack-scheduler"],
    ),
    (
        "unbound",
        check_provisioner_rbac,
        "ClusterRoleBinding/spotpack-provisioner",
        "subjects[0].name",
        "default",
    ),
    (
        "no-ca-secret",
        check_cert_job_rbac,
        CERTS_ROLE,
        "rules[1].resourceNames",
        ["spotpack-webhook-tls"],
    ),
    ("any-secret", check_cert_job_rbac, CERTS_ROLE, "rules[1].resourceNames", m.DELETE),
    ("list-secrets", check_cert_job_rbac, CERTS_ROLE, "rules[0].verbs", m.Append("list")),
    (
        "any-webhook",
        check_cert_job_rbac,
        "ClusterRole/spotpack-certs",
        "rules[0].resourceNames",
        m.DELETE,
    ),
]


@pytest.mark.parametrize(
    ("check", "target", "path", "change"),
    [row[1:] for row in BROKEN_RBAC],
    ids=[row[0] for row in BROKEN_RBAC],
)
def test_rbac_checks_catch_broken_copies(check: Any, target: str, path: str, change: Any) -> None:
    objs = rendered()
    kind, name = target.split("/")
    m.edit(m.find(objs, kind, name), path, change)
    with pytest.raises(AssertionError):
        check(objs)


# --------------------------------------------------------------------------- 4. provisioner


PROVISIONER_PORT = 8080


@pytest.mark.parametrize("entry", WITH_PROVISIONER)
def test_provisioner_deployment(entry: str) -> None:
    objs = rendered(entry)
    dep = m.find(objs, "Deployment", PROVISIONER)
    spec = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    replicas = 1 if entry == "overlays/kind" else 2
    assert dep["spec"]["replicas"] == replicas, "leader election: a warm follower"
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (ctr,) = spec["containers"]
    assert ctr["command"] == ["spotpack", "provisioner"] and "args" not in ctr
    env = service_env(objs, "SPOTPACK_PROVISIONER_")
    assert env["SPOTPACK_PROVISIONER_LEADER_ELECTION"] == "true"
    assert int(env["SPOTPACK_PROVISIONER_PORT"]) == PROVISIONER_PORT
    assert env["SPOTPACK_PROVISIONER_LOG_FORMAT"] == "json"
    assert [(p["name"], p["containerPort"]) for p in ctr["ports"]] == [("http", PROVISIONER_PORT)]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ctr[probe]["httpGet"]
        assert (get["path"], get["port"], get.get("scheme", "HTTP")) == (path, "http", "HTTP")
    sc, pod_sc = ctr["securityContext"], spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] == NONROOT
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert ctr["resources"]["limits"]["memory"] and "cpu" in ctr["resources"]["requests"]
    assert any(mt["mountPath"] == "/tmp" for mt in ctr["volumeMounts"]), "read-only root FS"
    assert spec["serviceAccountName"] == PROVISIONER and spec["automountServiceAccountToken"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    pdb = m.find(objs, "PodDisruptionBudget", PROVISIONER)
    assert pdb["spec"]["minAvailable"] == 1
    svc = m.find(objs, "Service", PROVISIONER)
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8080, "http")]
    netpol = m.find(objs, "NetworkPolicy", PROVISIONER)
    ingress = [p["port"] for r in netpol["spec"]["ingress"] for p in r["ports"]]
    assert ingress == ["http"], "only the metrics/probe port"
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for selector in (
        dep["spec"]["selector"],
        pdb["spec"]["selector"],
        {"matchLabels": svc["spec"]["selector"]},
        netpol["spec"]["podSelector"],
    ):
        assert selector["matchLabels"] and m.selector_matches(selector, labels)


@pytest.mark.parametrize("entry", sorted(WITHOUT_PROVISIONER))
def test_karpenter_overlay_has_everything_but_the_provisioner(entry: str) -> None:
    """Karpenter brings the nodes: webhook, scheduler profile, certificates, values, catalog only."""
    objs = rendered(entry)
    full = {ident(o) for o in rendered()}
    provisioner = {ident(o) for o in m.render(m.DEPLOY_DIR / "provisioner").objects}
    assert provisioner and {ident(o) for o in objs} == full - provisioner
    assert not [
        ident(o)
        for o in objs
        if "provisioner" in o["metadata"]["name"]
        or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "provisioner"
    ]
    for kind, name in (
        ("Deployment", "spotpack-webhook"),
        ("Deployment", "spotpack-scheduler"),
        ("MutatingWebhookConfiguration", "spotpack"),
        ("Job", CERTS),
        ("CronJob", "spotpack-certs-renew"),
        ("ConfigMap", VALUES_MAP),
        ("ConfigMap", CATALOG_MAP),
    ):
        assert m.find(objs, kind, name), (kind, name)
    # No role of ours changes nodes or evicts pods: that was the provisioner's.
    for role in [*m.iter_kind(objs, "ClusterRole"), *m.iter_kind(objs, "Role")]:
        for rule in role.get("rules") or []:
            resources, verbs = set(rule.get("resources", [])), set(rule.get("verbs", []))
            assert not (resources & {"nodes"} and verbs & {"create", "patch", "update", "delete"})
            assert not (resources & {"pods/eviction"}), ident(role)
    # The extender still reads the catalog (the shared values: test_shared_values_reach_...).
    env = service_env(objs, "SPOTPACK_EXTENDER_")
    assert env["SPOTPACK_EXTENDER_CATALOG_FILE"] == CATALOG_FILE


# --------------------------------------------------------------------------- 4. certificates


def cert_job_args(objs: list[Obj]) -> argparse.Namespace:
    """The Job's command line, parsed by ``spotpack certs``'s own parser."""
    ctr = container(objs, "Job", CERTS, "certs")
    assert ctr["command"] == ["spotpack", "certs"]
    parser = argparse.ArgumentParser()
    certs_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["certs", *ctr["args"]])


def test_cert_job_and_cronjob_run_the_same_pod() -> None:
    objs = rendered()
    job = m.find(objs, "Job", CERTS)
    cron = m.find(objs, "CronJob", "spotpack-certs-renew")
    assert job["spec"]["template"] == cron["spec"]["jobTemplate"]["spec"]["template"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, "a later apply runs it again"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_cert_job_writes_what_the_webhook_mounts_and_patches_ours() -> None:
    objs = rendered()
    args = cert_job_args(objs)
    namespace, secret = args.kube_secret.split("/")
    webhook = m.find(objs, "Deployment", "spotpack-webhook")
    volumes = webhook["spec"]["template"]["spec"]["volumes"]
    mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
    assert (namespace, {secret}) == (webhook["metadata"]["namespace"], mounted)
    config = m.find(objs, "MutatingWebhookConfiguration", args.patch_webhook)
    services = {w["clientConfig"]["service"]["name"] for w in config["webhooks"]}
    assert set(args.services) == services, "the certificate names the Service the API server calls"
    assert args.ca_secret == DEFAULT_CA_SECRET
    assert args.wait > 0, "the webhook configuration is applied together with the Job"
    assert args.renew_days < args.days
    (spec,) = m.pod_specs(m.find(objs, "Job", CERTS))
    assert not spec.get("volumes"), "nothing on disk: Secrets only"


def test_cert_manager_overlay_keeps_the_same_ca_secret_name() -> None:
    """Moving between cert-manager and the Job keeps the CA, hence the caBundle."""
    objs = rendered("overlays/cert-manager")
    assert not [o for o in objs if o["kind"] in ("Job", "CronJob")]
    ca = [c for c in m.iter_kind(objs, "Certificate") if c["spec"].get("isCA")]
    assert [c["spec"]["secretName"] for c in ca] == [DEFAULT_CA_SECRET]


# --------------------------------------------------------------------------- 4. cloud credentials


ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")


def test_irsa_annotates_only_the_provisioner_account() -> None:
    objs = rendered("overlays/aws-irsa")
    annotations = m.find(objs, "ServiceAccount", PROVISIONER)["metadata"]["annotations"]
    assert ROLE_ARN.match(annotations["eks.amazonaws.com/role-arn"])
    others = [
        ident(o)
        for o in m.iter_kind(objs, "ServiceAccount")
        if (o["metadata"].get("annotations") or {}) and o["metadata"]["name"] != PROVISIONER
    ]
    assert others == []
    assert rendered("overlays/aws-irsa") != rendered(), "the overlay changes something"


def test_secret_credentials_come_from_a_secret_the_user_creates() -> None:
    objs = rendered("overlays/aws-secret")
    env = service_env(objs, "SPOTPACK_PROVISIONER_")
    secret = "spotpack-aws-credentials"
    assert env["AWS_ACCESS_KEY_ID"] == f"<secret {secret} AWS_ACCESS_KEY_ID>"
    assert env["AWS_SECRET_ACCESS_KEY"] == f"<secret {secret} AWS_SECRET_ACCESS_KEY>"
    provisioner = container(objs, "Deployment", PROVISIONER, "provisioner")
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in provisioner["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert [r.get("optional", False) for r in refs] == [False, False, True]


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_no_credentials_in_the_manifests(entry: str) -> None:
    objs = rendered(entry)
    assert not [ident(o) for o in objs if o["kind"] == "Secret"], "Secrets are made in the cluster"
    for obj, _, ctr in workloads(objs):
        for e in ctr.get("env") or []:
            if e["name"].startswith("AWS_"):
                assert entry == "overlays/aws-secret" and "value" not in e, (ident(obj), e["name"])


# --------------------------------------------------------------------------- 4. images, accounts


def dockerfile_image() -> str:
    """The image `make image` builds: IMAGE of the Makefile at the pyproject version."""
    makefile = MAKEFILE.read_text(encoding="utf-8")
    match = re.search(r"^IMAGE\s*\?=\s*(\S+):\$\(VERSION\)$", makefile, re.M)
    assert match, "Makefile: IMAGE ?= <repository>:$(VERSION)"
    assert "docker build" in makefile and re.search(r"^image:", makefile, re.M)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return f"{match.group(1)}:{version}"


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_images_and_service_accounts_are_consistent(entry: str) -> None:
    objs = rendered(entry)
    image = dockerfile_image()
    accounts = {o["metadata"]["name"]: o for o in m.iter_kind(objs, "ServiceAccount")}
    for obj, spec, ctr in workloads(objs):
        if ctr["image"].startswith("ghcr.io/spotpack/"):
            assert ctr["image"] == image, ident(obj)
            assert ctr["command"][0] == "spotpack", ident(obj)
        assert ctr.get("imagePullPolicy") == "IfNotPresent", ident(obj)
        assert not ctr["image"].endswith(":latest") and ":" in ctr["image"], ident(obj)
        account = accounts[spec["serviceAccountName"]]
        assert account["metadata"]["namespace"] == obj["metadata"]["namespace"]
        assert account.get("automountServiceAccountToken") is False, "opt-in per pod"
        assert spec.get("automountServiceAccountToken") is True, ident(obj)
    used = {spec["serviceAccountName"] for _, spec, _ in workloads(objs)}
    assert used == set(accounts), "every account is used, every used account exists"
    versions = {
        o["metadata"]["labels"]["app.kubernetes.io/version"]
        for o in objs
        if "app.kubernetes.io/version" in o["metadata"].get("labels", {})
    }
    assert versions == {image.rsplit(":", 1)[1]}


# --------------------------------------------------------------------------- 5. IAM policy


# Actions EC2 authorizes behind the calls we make (not calls of their own).
IMPLIED_ACTIONS = {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"}


def boto3_operations(path: str, service: str) -> set[str]:
    """``service:Operation`` of every ``self.client.<op>(...)`` and ``get_paginator("<op>")``."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    ops = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        target = node.func.value
        if not (isinstance(target, ast.Attribute) and target.attr == "client"):
            continue
        name = node.func.attr
        if name == "get_paginator":
            arg = node.args[0]
            assert isinstance(arg, ast.Constant), path
            name = str(arg.value)
        elif name == "close":
            continue
        ops.add(f"{service}:{''.join(part.title() for part in name.split('_'))}")
    return ops


def test_iam_policy_allows_every_operation_and_nothing_else() -> None:
    policy = json.loads(IAM_POLICY.read_text(encoding="utf-8"))
    assert policy["Version"] == "2012-10-17"
    allowed = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"])
        actions = statement["Action"]
        allowed |= {actions} if isinstance(actions, str) else set(actions)
    used = boto3_operations("spotpack/cloud/aws.py", "ec2") | boto3_operations(
        "spotpack/cloud/sqs.py", "sqs"
    )
    assert used >= {
        "ec2:CreateFleet",
        "ec2:DescribeInstances",
        "ec2:TerminateInstances",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
    }, "the scan is not vacuous"
    assert used - allowed == set(), "calls the policy does not allow"
    assert allowed - used - IMPLIED_ACTIONS == set(), "actions nothing calls"
    assert not [a for a in allowed if "*" in a]
    readme = (m.DEPLOY_DIR / "aws" / "README.md").read_text(encoding="utf-8")
    for statement in policy["Statement"]:
        assert statement["Sid"] in readme, f"{statement['Sid']} is not documented"


# --------------------------------------------------------------------------- 5. Dockerfile


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            instruction, _, rest = current.strip().partition(" ")
            lines.append((instruction.upper(), rest.strip()))
            current = ""
    return lines


def test_dockerfile_is_pinned_slim_and_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert text.startswith("# syntax=docker/dockerfile:1\n"), "a parser directive must come first"
    steps = dockerfile()
    args = dict(a.split("=", 1) for i, a in steps if i == "ARG" and "=" in a)
    bases = [a.split()[0] for i, a in steps if i == "FROM"]
    assert bases and all(b == "${PYTHON_IMAGE}" for b in bases), "one parameterised base"
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    assert "latest" not in base
    users = [a for i, a in steps if i == "USER"]
    assert users[-1] == f"{NONROOT}:{NONROOT}", "numeric, so runAsNonRoot can verify it"
    last_from = max(n for n, (i, _) in enumerate(steps) if i == "FROM")
    assert "USER" in [i for i, _ in steps[last_from:]], "the final stage drops root"
    assert dockerfile_image().rsplit(":", 1)[0] in text, "the comment names the image it builds"
    exposed = {int(p) for i, a in steps if i == "EXPOSE" for p in a.split()}
    assert exposed == {8443, 8444, PROVISIONER_PORT}
    assert ("ENTRYPOINT", '["spotpack"]') in steps


def test_image_runs_as_the_manifests_expect() -> None:
    """The pods' runAsUser is the image's user, and the ports they declare are exposed."""
    steps = dockerfile()
    exposed = {int(p) for i, a in steps if i == "EXPOSE" for p in a.split()}
    for _, spec, ctr in spotpack_containers(rendered()):
        assert spec["securityContext"]["runAsUser"] == NONROOT
        assert {p["containerPort"] for p in ctr.get("ports", [])} <= exposed


def test_image_carries_the_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*.json" in pyproject["tool"]["setuptools"]["package-data"]["spotpack"]
    assert list((REPO / "spotpack" / "data").glob("*.json")), "the catalog files"
    copied = {a.split()[0] for i, a in dockerfile() if i == "COPY" and "--from" not in a}
    assert {"spotpack", "webhook", "extender", "provisioner", "pyproject.toml"} <= copied
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert not [p for p in ignored if p.startswith("spotpack")], "the package must reach the build"
    assert "package data" in DOCKERFILE.read_text(encoding="utf-8"), "the build checks it"
