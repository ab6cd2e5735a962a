"""deploy/scheduler/: the spotpack-scheduler profile (kube-scheduler + extender sidecar).

Same layers as test_deploy_manifests.py, for what this directory adds:

1. Every Kubernetes object of the whole tree validates strictly against the
   schemas kubernetes-validate ships (1.28, 1.30, newest). The
   KubeSchedulerConfiguration is not an object but a string in a ConfigMap, so
   it is parsed and validated against KSC_SCHEMA below: a strict schema (unknown
   fields rejected, as kube-scheduler's strict decoder does) written from the
   upstream types as of Kubernetes 1.30, the minor of the pinned image:
   ``k8s.io/kube-scheduler/config/v1/types.go`` (KubeSchedulerConfiguration,
   KubeSchedulerProfile, Plugins, PluginSet, Plugin, PluginConfig, Extender,
   ExtenderManagedResource, ExtenderTLSConfig) and
   ``k8s.io/component-base/config/v1alpha1/types.go`` (LeaderElectionConfiguration,
   ClientConnectionConfiguration, DebuggingConfiguration, inlined), both in
   kubernetes/kubernetes under staging/src.
2. Property checks over the rendered tree. Each runs on the real manifests
   (must pass) and on deliberately broken copies (each check must reject at
   least one), so none can pass vacuously.
3. RBAC questions ("may the scheduler's ServiceAccount patch pods?") answered by
   the evaluator in tests/manifests.py from the rendered bindings plus the
   built-in roles they name (BUILTIN_ROLES, transcribed from the API server's
   bootstrap policy).

Plus the extender's exec probe script, run against a loopback HTTP server.
"""

from __future__ import annotations

import copy
import http.server
import ipaddress
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from tests import manifests as m
from tests.manifests import DELETE, Append, Remove, Replace

Obj = dict[str, Any]

NS = "spotpack-system"
NAME = "spotpack-scheduler"  # Deployment, ServiceAccount, PDB, NetworkPolicy, profile, Lease
PROFILE = NAME
LEASE = (NS, NAME)
CONFIG_MAP, CONFIG_KEY = "spotpack-scheduler-config", "config.yaml"
CATALOG_MAP, CATALOG_KEY = "spotpack-catalog", "catalog.json"
EXTENDER_ROLE = "spotpack-extender"
IMAGE = "ghcr.io/spotpack/spotpack:0.1.0"
SCHEDULER, EXTENDER = "kube-scheduler", "extender"
AUTH_READER = "extension-apiserver-authentication-reader"

ENTRY_POINTS = {
    "deploy": m.DEPLOY_DIR,
    "overlays/cert-manager": m.DEPLOY_DIR / "overlays" / "cert-manager",
}
K8S_VERSIONS = ("1.28", "1.30", m.schema_versions()[-1])

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}

# kube-scheduler's secure port when --secure-port is not given (DefaultKubeSchedulerPort).
KUBE_SCHEDULER_PORT = 10259
# registry.k8s.io/kube-scheduler pinned to a patch release (or a digest).
KUBE_SCHEDULER_IMAGE = re.compile(
    r"^registry\.k8s\.io/kube-scheduler:v1\.(?P<minor>\d+)\.\d+(@sha256:[0-9a-f]{64})?$"
)
# kube-scheduler serves /livez and /readyz from 1.31 on; before that only /healthz.
FIRST_MINOR_WITH_LIVEZ = 31

EXPECTED_MANAGED_RESOURCES = [
    {"name": "nvidia.com/gpu", "ignoredByScheduler": False},
    {"name": "nvidia.com/gpumem", "ignoredByScheduler": True},
    {"name": "nvidia.com/gpumem-percentage", "ignoredByScheduler": True},
    {"name": "nvidia.com/gpucores", "ignoredByScheduler": True},
]
EXPECTED_ENV = {
    "SPOTPACK_EXTENDER_HOST": "127.0.0.1",
    "SPOTPACK_EXTENDER_PORT": "8444",
    "SPOTPACK_EXTENDER_CERT_FILE": "",
    "SPOTPACK_EXTENDER_KEY_FILE": "",
    "SPOTPACK_EXTENDER_LABEL_SCHEME": "karpenter",
    "SPOTPACK_EXTENDER_REGION": "us-east-1",
    "SPOTPACK_EXTENDER_CATALOG_FILE": "/etc/spotpack/catalog/catalog.json",
    "SPOTPACK_EXTENDER_LOG_FORMAT": "json",
    "SPOTPACK_EXTENDER_WEIGHT_GPU": "3",
    "SPOTPACK_EXTENDER_WEIGHT_RISK": "2",
    "SPOTPACK_EXTENDER_WEIGHT_PRICE": "1",
    "SPOTPACK_EXTENDER_BIND_TIMEOUT_SECONDS": "4",
}
LABEL_SCHEMES = {"karpenter", "eks", "gke", "aks"}

# Scoring facts (pkg/scheduler/schedule_one.go, pkg/scheduler/apis/config/v1/
# default_plugins.go): an extender's 0..MAX_EXTENDER_PRIORITY score counts
# score * weight * (MAX_NODE_SCORE / MAX_EXTENDER_PRIORITY); each score plugin
# gives 0..MAX_NODE_SCORE times its weight.
MAX_NODE_SCORE, MAX_EXTENDER_PRIORITY = 100, 10
DEFAULT_SCORE_WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "NodeResourcesFit": 1,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesBalancedAllocation": 1,
    "ImageLocality": 1,
}
MAX_HTTP_TIMEOUT_SECONDS = 10.0


# --------------------------------------------------------------------------- built-in roles


def _rule(verbs: str, resources: str, groups: str = "", names: str = "") -> Obj:
    rule: Obj = {
        "apiGroups": groups.split(",") if groups else [""],
        "resources": resources.split(),
        "verbs": verbs.split(),
    }
    if names:
        rule["resourceNames"] = names.split()
    return rule


READ = "get list watch"
# The roles the API server bootstraps and deploy/scheduler binds, as in
# plugin/pkg/auth/authorizer/rbac/bootstrappolicy (testdata/cluster-roles.yaml,
# testdata/namespace-roles.yaml) of kubernetes/kubernetes. Note what
# system:kube-scheduler grants on leases: create (any name) but get/update only
# on leases named kube-scheduler (in any namespace).
BUILTIN_ROLES: list[Obj] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:kube-scheduler"},
        "rules": [
            _rule("create patch update", "events", ",events.k8s.io"),
            _rule("create", "leases", "coordination.k8s.io"),
            _rule("get update", "leases", "coordination.k8s.io", names="kube-scheduler"),
            _rule(READ, "nodes"),
            _rule("delete get list watch", "pods"),
            _rule("create", "bindings pods/binding"),
            _rule("patch update", "pods/status"),
            _rule(READ, "replicationcontrollers services"),
            _rule(READ, "replicasets", "apps,extensions"),
            _rule(READ, "statefulsets", "apps"),
            _rule(READ, "poddisruptionbudgets", "policy"),
            _rule(READ, "persistentvolumeclaims persistentvolumes"),
            _rule("create", "tokenreviews", "authentication.k8s.io"),
            _rule("create", "subjectaccessreviews", "authorization.k8s.io"),
            _rule(READ, "csinodes", "storage.k8s.io"),
            _rule(READ, "namespaces"),
            _rule(READ, "csidrivers", "storage.k8s.io"),
            _rule(READ, "csistoragecapacities", "storage.k8s.io"),
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:volume-scheduler"},
        "rules": [
            _rule("get list patch update watch", "persistentvolumes"),
            _rule(READ, "storageclasses", "storage.k8s.io"),
            _rule("get list patch update watch", "persistentvolumeclaims"),
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": AUTH_READER, "namespace": "kube-system"},
        "rules": [_rule(READ, "configmaps", names="extension-apiserver-authentication")],
    },
]
SCHEDULER_SA = m.service_account(NS, NAME)


# --------------------------------------------------------------------------- KubeSchedulerConfiguration schema


def _strict(properties: Obj, required: tuple[str, ...] = ()) -> Obj:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
# metav1.Duration: Go's time.ParseDuration syntax.
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"}
_PLUGIN = _strict({"name": _STR, "weight": _INT32}, required=("name",))
_PLUGIN_SET = _strict(
    {
        "enabled": {"type": "array", "items": _PLUGIN},
        "disabled": {"type": "array", "items": _PLUGIN},
    }
)
EXTENSION_POINTS = (
    *("preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score"),
    *("reserve", "permit", "preBind", "bind", "postBind", "multiPoint"),
)
_PROFILE = _strict(
    {
        "schedulerName": _STR,
        "percentageOfNodesToScore": _PERCENT,
        "plugins": _strict(dict.fromkeys(EXTENSION_POINTS, _PLUGIN_SET)),
        "pluginConfig": {
            "type": "array",
            "items": _strict({"name": _STR, "args": {"type": "object"}}, required=("name",)),
        },
    }
)
_EXTENDER = _strict(
    {
        "urlPrefix": _STR,
        "filterVerb": _STR,
        "preemptVerb": _STR,
        "prioritizeVerb": _STR,
        "weight": {"type": "integer", "minimum": 1},  # validation: positive with prioritizeVerb
        "bindVerb": _STR,
        "enableHTTPS": _BOOL,
        "tlsConfig": _strict(
            {
                "insecure": _BOOL,
                "serverName": _STR,
                "certFile": _STR,
                "keyFile": _STR,
                "caFile": _STR,
                # []byte fields: base64 in YAML/JSON
                "certData": _STR,
                "keyData": _STR,
                "caData": _STR,
            }
        ),
        "httpTimeout": _DURATION,
        "nodeCacheCapable": _BOOL,
        "managedResources": {
            "type": "array",
            "items": _strict({"name": _STR, "ignoredByScheduler": _BOOL}, required=("name",)),
        },
        "ignorable": _BOOL,
    },
    required=("urlPrefix",),
)
KSC_SCHEMA: Obj = _strict(
    {
        "apiVersion": {"const": "kubescheduler.config.k8s.io/v1"},
        "kind": {"const": "KubeSchedulerConfiguration"},
        "parallelism": {"type": "integer", "minimum": 1},
        "leaderElection": _strict(
            {
                "leaderElect": _BOOL,
                "leaseDuration": _DURATION,
                "renewDeadline": _DURATION,
                "retryPeriod": _DURATION,
                "resourceLock": _STR,
                "resourceName": _STR,
                "resourceNamespace": _STR,
            }
        ),
        "clientConnection": _strict(
            {
                "kubeconfig": _STR,
                "acceptContentTypes": _STR,
                "contentType": _STR,
                "qps": {"type": "number"},
                "burst": _INT32,
            }
        ),
        "enableProfiling": _BOOL,
        "enableContentionProfiling": _BOOL,
        "percentageOfNodesToScore": _PERCENT,
        "podInitialBackoffSeconds": {"type": "integer", "minimum": 1},
        "podMaxBackoffSeconds": {"type": "integer", "minimum": 1},
        "profiles": {"type": "array", "items": _PROFILE},
        "extenders": {"type": "array", "items": _EXTENDER},
        "delayCacheUntilActive": _BOOL,
    },
    required=("apiVersion", "kind"),
)
KSC_VALIDATOR = jsonschema.Draft202012Validator(KSC_SCHEMA)


# --------------------------------------------------------------------------- rendering and lookup

_CACHE: dict[str, list[Obj]] = {}


def _rendered(entry: str) -> list[Obj]:
    if entry not in _CACHE:
        _CACHE[entry] = m.render(ENTRY_POINTS[entry]).objects
    return _CACHE[entry]


def rendered(entry: str = "deploy") -> list[Obj]:
    """A fresh deep copy of what ``entry`` renders to (tests mutate their copy)."""
    return copy.deepcopy(_rendered(entry))


def deployment(objs: list[Obj]) -> Obj:
    return m.find(objs, "Deployment", NAME)


def pod_spec(objs: list[Obj]) -> Obj:
    return deployment(objs)["spec"]["template"]["spec"]


def template_labels(objs: list[Obj]) -> dict[str, str]:
    return deployment(objs)["spec"]["template"]["metadata"]["labels"]


def container(objs: list[Obj], name: str) -> Obj:
    (found,) = [c for c in pod_spec(objs)["containers"] if c["name"] == name]
    return found


def env(objs: list[Obj]) -> dict[str, str]:
    """The extender's settings as the container sees them (deploy/values resolved)."""
    values = m.container_env(objs, NS, container(objs, EXTENDER))
    return {k: v for k, v in values.items() if k.startswith("SPOTPACK_EXTENDER_")}


def scheduler_config(objs: list[Obj]) -> Obj:
    config = yaml.safe_load(m.find(objs, "ConfigMap", CONFIG_MAP)["data"][CONFIG_KEY])
    assert isinstance(config, dict), "the scheduler configuration must be a mapping"
    return config


def extender_config(objs: list[Obj]) -> Obj:
    extenders = scheduler_config(objs).get("extenders") or []
    assert len(extenders) == 1, "exactly one extender (and so exactly one binder)"
    return extenders[0]


def port_of(ctr: Obj, port: int | str) -> int | None:
    """The containerPort a probe/NetworkPolicy port means (by name or number)."""
    for p in ctr.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return int(p["containerPort"])
    return None


def seconds(duration: str) -> float:
    """Go's time.ParseDuration for the units configurations use."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert match, f"memory quantities here are written in Ki/Mi/Gi, got {quantity!r}"
    return int(match.group(1)) * {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}[match.group(2)]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def scheduler_minor(objs: list[Obj]) -> int:
    match = KUBE_SCHEDULER_IMAGE.match(container(objs, SCHEDULER)["image"])
    assert match, "kube-scheduler image must be registry.k8s.io/kube-scheduler pinned to vX.Y.Z"
    return int(match.group("minor"))


def secure_port(objs: list[Obj]) -> int:
    ctr = container(objs, SCHEDULER)
    flags = [
        a for a in ctr.get("command", []) + ctr.get("args", []) if a.startswith("--secure-port")
    ]
    return int(flags[-1].split("=", 1)[1]) if flags else KUBE_SCHEDULER_PORT


def exec_probe(ctr: Obj, probe: str) -> tuple[str, urllib.parse.SplitResult]:
    """(script, URL) of an exec probe written as ``python3 [flags] -c SCRIPT URL``."""
    command = ctr[probe]["exec"]["command"]
    assert command[0] == "python3", f"{probe}: python3 from the image's PATH"
    assert "-c" in command, probe
    rest = command[command.index("-c") + 1 :]
    assert len(rest) == 2, f"{probe}: -c SCRIPT URL"
    script, url = rest
    return script, urllib.parse.urlsplit(url)


def rbac(objs: list[Obj]) -> m.RBAC:
    return m.RBAC(objs, BUILTIN_ROLES)


def may(objs: list[Obj], verb: str, resource: str, **where: str) -> bool:
    try:
        return rbac(objs).allows(SCHEDULER_SA, m.Request(verb, resource, **where))
    except m.RBACError as exc:
        raise AssertionError(str(exc)) from exc


# --------------------------------------------------------------------------- checks

CHECKS: dict[str, Callable[[list[Obj]], None]] = {}


def check(fn: Callable[[list[Obj]], None]) -> Callable[[list[Obj]], None]:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def _is_auth_reader_binding(obj: Obj) -> bool:
    return (
        obj["kind"] == "RoleBinding"
        and obj["metadata"].get("namespace") == "kube-system"
        and obj["roleRef"]
        == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AUTH_READER}
        and obj.get("subjects") == [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]
    )


@check
def check_namespaces(objs: list[Obj]) -> None:
    """Everything in spotpack-system, except the one RoleBinding that must be in kube-system."""
    elsewhere = []
    for obj in objs:
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"{obj['kind']} {meta['name']} is cluster-scoped"
        elif meta.get("namespace") != NS:
            elsewhere.append(obj)
    assert len(elsewhere) == 1, [f"{o['kind']} {o['metadata'].get('namespace')}" for o in elsewhere]
    assert _is_auth_reader_binding(elsewhere[0]), (
        "only the auth-reader RoleBinding may leave spotpack-system"
    )


@check
def check_config_schema(objs: list[Obj]) -> None:
    errors = sorted(KSC_VALIDATOR.iter_errors(scheduler_config(objs)), key=str)
    assert not errors, [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


@check
def check_profile(objs: list[Obj]) -> None:
    """One profile, named as the webhook names it, with the default plugins untouched."""
    assert scheduler_config(objs).get("profiles") == [{"schedulerName": PROFILE}]


@check
def check_extender_wiring(objs: list[Obj]) -> None:
    ext = extender_config(objs)
    url = urllib.parse.urlsplit(ext["urlPrefix"])
    values = env(objs)
    assert url.scheme == "http" and ext.get("enableHTTPS", False) is False, (
        "plain HTTP over loopback"
    )
    assert "tlsConfig" not in ext
    assert url.hostname is not None and is_loopback(url.hostname), "the extender is in the same pod"
    assert url.hostname == values["SPOTPACK_EXTENDER_HOST"], "call the address it listens on"
    assert (
        url.port
        == int(values["SPOTPACK_EXTENDER_PORT"])
        == port_of(container(objs, EXTENDER), "extender")
    )
    assert url.path in ("", "/") and not url.query
    assert (ext.get("filterVerb"), ext.get("prioritizeVerb"), ext.get("bindVerb")) == (
        "filter",
        "prioritize",
        "bind",
    )
    assert not ext.get("preemptVerb"), "the extender implements no preempt verb"
    assert ext.get("nodeCacheCapable") is True, "names only: the extender caches nodes"
    assert ext.get("ignorable", False) is False, "GPU pods must not be placed without accounting"
    # At most as heavy as the heaviest default score plugin, heavier than a weight-1 one.
    most = ext.get("weight", 0) * MAX_EXTENDER_PRIORITY * (MAX_NODE_SCORE // MAX_EXTENDER_PRIORITY)
    assert min(DEFAULT_SCORE_WEIGHTS.values()) * MAX_NODE_SCORE < most
    assert most <= max(DEFAULT_SCORE_WEIGHTS.values()) * MAX_NODE_SCORE


@check
def check_managed_resources(objs: list[Obj]) -> None:
    managed = [
        {"ignoredByScheduler": False, **r}
        for r in extender_config(objs).get("managedResources") or []
    ]
    assert managed == EXPECTED_MANAGED_RESOURCES


@check
def check_http_timeout(objs: list[Obj]) -> None:
    ext = extender_config(objs)
    assert "httpTimeout" in ext, "say it: the default (5s) is not visible in the config"
    timeout = seconds(ext["httpTimeout"])
    assert 0 < timeout <= MAX_HTTP_TIMEOUT_SECONDS, "a hung extender stalls the scheduling cycle"
    bind = float(env(objs)["SPOTPACK_EXTENDER_BIND_TIMEOUT_SECONDS"])
    assert bind < timeout, "the extender must answer /bind before the scheduler gives up"


@check
def check_leader_election(objs: list[Obj]) -> None:
    election = scheduler_config(objs)["leaderElection"]
    assert election.get("leaderElect") is True
    assert election.get("resourceLock") == "leases"
    lease = (election.get("resourceNamespace"), election.get("resourceName"))
    assert lease == LEASE, "its own Lease, never the default scheduler's kube-system/kube-scheduler"
    namespace, name = lease
    coordination = {"group": "coordination.k8s.io", "namespace": namespace}
    assert may(objs, "create", "leases", **coordination)
    for verb in ("get", "update"):
        assert may(objs, verb, "leases", name=name, **coordination), f"{verb} lease {name}"


@check
def check_extender_rbac(objs: list[Obj]) -> None:
    for verb in ("get", "list", "watch"):
        assert may(objs, verb, "pods"), f"{verb} pods in all namespaces"
        assert may(objs, verb, "nodes"), f"{verb} nodes"
    assert may(objs, "create", "pods/binding", namespace="team-a")
    for verb in ("patch", "update", "create"):
        assert not may(objs, verb, "pods", namespace="team-a"), f"the extender must not {verb} pods"
    for namespace in ("", NS, "kube-system", "team-a"):
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
            assert not may(objs, verb, "secrets", namespace=namespace, name="x"), f"{verb} secrets"
            assert not may(objs, verb, "secrets", namespace=namespace), f"{verb} secrets"
    assert not may(objs, "get", "configmaps", namespace="team-a", name="x")
    # The extender's own ClusterRole covers its needs without system:kube-scheduler.
    own = m.RBAC([o for o in objs if o["metadata"]["name"] == EXTENDER_ROLE])
    for request in (
        m.Request("watch", "pods"),
        m.Request("list", "nodes"),
        m.Request("get", "pods", namespace="team-a", name="p"),
        m.Request("create", "pods/binding", namespace="team-a"),
    ):
        assert own.allows(SCHEDULER_SA, request), request


# What kube-scheduler itself calls (informers, binding, preemption, events,
# volume binding, delegated authn/authz of its HTTPS port).
SCHEDULER_NEEDS = [
    m.Request(verb, resource, group)
    for verb in ("list", "watch")
    for resource, group in [
        ("pods", ""),
        ("nodes", ""),
        ("namespaces", ""),
        ("services", ""),
        ("replicationcontrollers", ""),
        ("persistentvolumes", ""),
        ("persistentvolumeclaims", ""),
        ("replicasets", "apps"),
        ("statefulsets", "apps"),
        ("poddisruptionbudgets", "policy"),
        ("storageclasses", "storage.k8s.io"),
        ("csinodes", "storage.k8s.io"),
        ("csidrivers", "storage.k8s.io"),
        ("csistoragecapacities", "storage.k8s.io"),
    ]
] + [
    m.Request("create", "pods/binding", namespace="team-a"),
    m.Request("patch", "pods/status", namespace="team-a", name="p"),
    m.Request("delete", "pods", namespace="team-a", name="victim"),
    m.Request("create", "events", namespace="team-a"),
    m.Request("patch", "events", namespace="team-a", name="e"),
    m.Request("create", "events", "events.k8s.io", namespace="team-a"),
    m.Request("update", "persistentvolumes", name="pv"),
    m.Request("update", "persistentvolumeclaims", namespace="team-a", name="pvc"),
    m.Request("create", "tokenreviews", "authentication.k8s.io"),
    m.Request("create", "subjectaccessreviews", "authorization.k8s.io"),
    m.Request(
        "watch", "configmaps", namespace="kube-system", name="extension-apiserver-authentication"
    ),
]


@check
def check_scheduler_rbac(objs: list[Obj]) -> None:
    authorizer = rbac(objs)
    try:
        bindings = authorizer.bindings_of(SCHEDULER_SA)
        roles = [authorizer.role_for(b) for b in bindings]
        missing = [r for r in SCHEDULER_NEEDS if not authorizer.allows(SCHEDULER_SA, r)]
    except m.RBACError as exc:
        raise AssertionError(str(exc)) from exc
    refs = sorted(
        (b["roleRef"]["kind"], b["metadata"].get("namespace", ""), b["roleRef"]["name"])
        for b in bindings
    )
    assert refs == [
        ("ClusterRole", "", EXTENDER_ROLE),
        ("ClusterRole", "", "system:kube-scheduler"),
        ("ClusterRole", "", "system:volume-scheduler"),
        ("Role", "kube-system", AUTH_READER),
        ("Role", NS, "spotpack-scheduler:leader-election"),
    ], "exactly these bindings, nothing broader"
    assert not missing, missing
    for role in roles:
        if role in BUILTIN_ROLES:
            continue
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: wildcard {key}"


@check
def check_images(objs: list[Obj]) -> None:
    spec = pod_spec(objs)
    assert [c["name"] for c in spec["containers"]] == [SCHEDULER, EXTENDER]
    assert not spec.get("initContainers")
    scheduler_minor(objs)  # pinned upstream image
    assert container(objs, EXTENDER)["image"] == IMAGE
    for ctr in spec["containers"]:
        image = ctr["image"]
        assert re.search(r":[\w.-]+(@sha256:[0-9a-f]{64})?$", image.rsplit("/", 1)[-1]), (
            f"{image}: no tag"
        )
        assert not image.endswith(":latest"), image
        assert ctr.get("imagePullPolicy") == "IfNotPresent", ctr["name"]


@check
def check_commands(objs: list[Obj]) -> None:
    sched, ext = container(objs, SCHEDULER), container(objs, EXTENDER)
    assert ext["command"] == ["spotpack", "extender"] and "args" not in ext
    assert sched["command"][0] == "kube-scheduler" and "args" not in sched
    configs = [a.split("=", 1)[1] for a in sched["command"] if a.startswith("--config=")]
    assert len(configs) == 1, "exactly one --config=PATH"
    directory, _, key = configs[0].rpartition("/")
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    mounts = [mt for mt in sched.get("volumeMounts", []) if mt["mountPath"] == directory]
    assert len(mounts) == 1, f"exactly one mount at {directory}"
    (mount,) = mounts
    assert mount.get("readOnly") is True and "subPath" not in mount
    source = volumes[mount["name"]]["configMap"]
    assert source["name"] == CONFIG_MAP and not source.get("items")
    assert key == CONFIG_KEY in m.find(objs, "ConfigMap", CONFIG_MAP)["data"]


@check
def check_extender_env(objs: list[Obj]) -> None:
    values = env(objs)
    assert values == EXPECTED_ENV
    assert values["SPOTPACK_EXTENDER_LABEL_SCHEME"] in LABEL_SCHEMES
    assert is_loopback(values["SPOTPACK_EXTENDER_HOST"]), "never expose /bind beyond the pod"
    assert values["SPOTPACK_EXTENDER_CERT_FILE"] == values["SPOTPACK_EXTENDER_KEY_FILE"] == ""
    assert int(values["SPOTPACK_EXTENDER_PORT"]) == port_of(container(objs, EXTENDER), "extender")


@check
def check_catalog(objs: list[Obj]) -> None:
    ext = container(objs, EXTENDER)
    directory, _, key = env(objs)["SPOTPACK_EXTENDER_CATALOG_FILE"].rpartition("/")
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    mounts = [mt for mt in ext["volumeMounts"] if mt["mountPath"] == directory]
    assert len(mounts) == 1, f"exactly one mount at {directory}"
    assert mounts[0].get("readOnly") is True
    assert "subPath" not in mounts[0] and "subPathExpr" not in mounts[0], "subPath never updates"
    source = volumes[mounts[0]["name"]].get("configMap") or {}
    catalog_map = m.find(objs, "ConfigMap", CATALOG_MAP)["metadata"]["name"]  # hashed name
    assert source.get("name") == catalog_map and not source.get("items")
    assert not source.get("optional", False)
    data = m.find(objs, "ConfigMap", CATALOG_MAP)["data"]
    assert key in data, f"{CATALOG_MAP} has no {key}"
    try:
        catalog = json.loads(data[key])
    except ValueError as exc:
        raise AssertionError(f"{CATALOG_MAP}/{key} is not JSON: {exc}") from exc
    assert isinstance(catalog, dict), "the override is a JSON object"
    tmp = [mt["name"] for mt in ext["volumeMounts"] if mt["mountPath"] == "/tmp"]
    assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]], "read-only root: /tmp is an emptyDir"


@check
def check_probes(objs: list[Obj]) -> None:
    sched = container(objs, SCHEDULER)
    port = secure_port(objs)
    assert port_of(sched, "https") == port, "the named port is kube-scheduler's secure port"
    paths = {
        "startupProbe": {"/healthz"},
        "livenessProbe": {"/healthz"},
        "readinessProbe": {"/healthz"},
    }
    if scheduler_minor(objs) >= FIRST_MINOR_WITH_LIVEZ:
        paths = {
            "startupProbe": {"/livez"},
            "livenessProbe": {"/livez"},
            "readinessProbe": {"/readyz"},
        }
    for probe, allowed in paths.items():
        get = sched[probe]["httpGet"]
        assert get["scheme"] == "HTTPS", probe
        assert port_of(sched, get["port"]) == port, f"{probe} must hit the secure port"
        assert get["path"] in allowed, f"{probe}: {get['path']} not served by this kube-scheduler"

    ext = container(objs, EXTENDER)
    values = env(objs)
    scripts = set()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        if not is_loopback(values["SPOTPACK_EXTENDER_HOST"]) and "httpGet" in ext[probe]:
            continue  # not reached while the host must be loopback (check_extender_env)
        assert "exec" in ext[probe], f"{probe}: kubelet httpGet probes use the pod IP, not loopback"
        script, url = exec_probe(ext, probe)
        assert (url.scheme, url.hostname, url.path) == (
            "http",
            values["SPOTPACK_EXTENDER_HOST"],
            path,
        )
        assert url.port == int(values["SPOTPACK_EXTENDER_PORT"]) == port_of(ext, "extender"), probe
        try:
            compile(script, probe, "exec")
        except SyntaxError as exc:
            raise AssertionError(f"{probe}: {exc}") from exc
        timeouts = re.findall(r"timeout=(\d+)", script)
        assert len(timeouts) == 1, f"{probe}: one HTTP timeout in the script"
        assert int(timeouts[0]) < ext[probe]["timeoutSeconds"], (
            f"{probe}: the script must time out first"
        )
        scripts.add(script)
    assert len(scripts) == 1, "both probes run the same script"


@check
def check_pod_security(objs: list[Obj]) -> None:
    spec = pod_spec(objs)
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 65532
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    assert not [v for v in spec["volumes"] if "hostPath" in v]
    for ctr in spec["containers"]:
        sc = ctr["securityContext"]
        assert sc.get("runAsNonRoot", True) is True, ctr["name"]
        assert sc.get("runAsUser", pod_sc["runAsUser"]) == 65532, ctr["name"]
        assert sc["allowPrivilegeEscalation"] is False, ctr["name"]
        assert sc["readOnlyRootFilesystem"] is True, ctr["name"]
        assert sc.get("privileged", False) is False, ctr["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, ctr["name"]
        assert sc.get("seccompProfile", pod_sc["seccompProfile"]) == {"type": "RuntimeDefault"}


@check
def check_resources(objs: list[Obj]) -> None:
    for ctr in pod_spec(objs)["containers"]:
        res = ctr["resources"]
        assert set(res["requests"]) == {"cpu", "memory"}, ctr["name"]
        assert set(res["limits"]) == {"memory"}, (
            f"{ctr['name']}: memory limit only, no CPU throttling"
        )
        assert mebibytes(res["requests"]["memory"]) <= mebibytes(res["limits"]["memory"])


@check
def check_scheduling(objs: list[Obj]) -> None:
    spec = pod_spec(objs)
    assert spec.get("schedulerName", "default-scheduler") != PROFILE, "it cannot schedule itself"
    assert spec.get("priorityClassName") == "system-cluster-critical"
    assert spec["serviceAccountName"] == NAME
    assert m.find(objs, "ServiceAccount", NAME).get("automountServiceAccountToken") is False
    assert spec.get("automountServiceAccountToken") is True, "both containers call the API"
    assert any(t.get("key") == "CriticalAddonsOnly" for t in spec.get("tolerations", []))
    by_node = [
        c
        for c in spec.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname"
        and c["whenUnsatisfiable"] == "DoNotSchedule"
    ]
    assert by_node, "replicas must be spread across nodes"
    for constraint in by_node:
        assert m.selector_matches(constraint["labelSelector"], template_labels(objs))


@check
def check_replicas(objs: list[Obj]) -> None:
    dep = deployment(objs)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert scheduler_config(objs)["leaderElection"].get("leaderElect") is True, (
        "two replicas without leader election would both schedule"
    )


@check
def check_pdb(objs: list[Obj]) -> None:
    pdb = m.find(objs, "PodDisruptionBudget", NAME)
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["minAvailable"] < deployment(objs)["spec"]["replicas"], "drains must work"


@check
def check_selectors_match_template(objs: list[Obj]) -> None:
    labels = template_labels(objs)
    selectors = {
        "Deployment": deployment(objs)["spec"]["selector"],
        "PodDisruptionBudget": m.find(objs, "PodDisruptionBudget", NAME)["spec"]["selector"],
        "NetworkPolicy": m.find(objs, "NetworkPolicy", NAME)["spec"]["podSelector"],
    }
    for owner, selector in selectors.items():
        assert selector.get("matchLabels") or selector.get("matchExpressions"), owner
        assert m.selector_matches(selector, labels), f"{owner} selector misses the pods"
    assert "app.kubernetes.io/version" not in selectors["Deployment"].get("matchLabels", {})


@check
def check_networkpolicy(objs: list[Obj]) -> None:
    netpol = m.find(objs, "NetworkPolicy", NAME)
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    rules = netpol["spec"].get("ingress") or []
    assert all(rule.get("ports") for rule in rules), "a rule without ports opens every port"
    reachable = {
        next(
            (
                p
                for c in pod_spec(objs)["containers"]
                if (p := port_of(c, port["port"])) is not None
            ),
            None,
        )
        for rule in rules
        for port in rule["ports"]
    }
    assert reachable == {secure_port(objs)}, "only kube-scheduler's HTTPS port, never the extender"


@check
def check_webhook_routing(objs: list[Obj]) -> None:
    """If the webhook moves GPU pods to a scheduler, it is this profile."""
    webhook = m.find(objs, "Deployment", "spotpack-webhook")["spec"]["template"]["spec"]
    for ctr in webhook["containers"]:
        for entry in ctr.get("env") or []:
            if entry["name"] == "SPOTPACK_WEBHOOK_SCHEDULER_NAME" and entry.get("value"):
                assert entry["value"] == PROFILE, (
                    "GPU pods would wait for a scheduler that is not there"
                )


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name", list(CHECKS))
def test_check_holds_for_the_real_manifests(entry: str, name: str) -> None:
    CHECKS[name](rendered(entry))


# --------------------------------------------------------------------------- broken copies

DEP = f"Deployment/{NAME}"
POD = "spec.template.spec"
SCHED = f"{POD}.containers[name={SCHEDULER}]"
EXT = f"{POD}.containers[name={EXTENDER}]"
ENV = f"{EXT}.env"
KSC = "KubeSchedulerConfiguration"  # the parsed config.yaml of the ConfigMap
X0 = "extenders[0]"
LEADER_ROLE = "Role/spotpack-scheduler:leader-election"
EXTENDER_CLUSTER_ROLE = f"ClusterRole/{EXTENDER_ROLE}"
AUTH_BINDING = "RoleBinding/spotpack-scheduler:extension-apiserver-authentication-reader"
NETPOL = f"NetworkPolicy/{NAME}"
PDB = f"PodDisruptionBudget/{NAME}"
NAME_LABEL = '["app.kubernetes.io/name"]'

EXTRA_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "extra"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:volume-scheduler",
    },
    "subjects": [{"kind": "Group", "name": "system:serviceaccounts:spotpack-system"}],
}
SECRETS_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
HTTP_PROBE = {"httpGet": {"path": "/readyz", "port": "extender", "scheme": "HTTP"}}

# (id, check that must fail, object, path, change)
# fmt: off
MUTATIONS: list[tuple[str, str, str, str, Any]] = [
    ("deployment-in-default", "namespaces", DEP, "metadata.namespace", "default"),
    ("kube-system-binds-more", "namespaces", AUTH_BINDING, "roleRef.name", "system:controller:x"),
    ("lease-role-in-kube-system", "namespaces", LEADER_ROLE, "metadata.namespace", "kube-system"),
    ("config-typo", "config_schema", KSC, f"{X0}.nodeCacheCapabel", True),
    ("config-unknown-top", "config_schema", KSC, "schedulerName", PROFILE),
    ("config-weight-string", "config_schema", KSC, f"{X0}.weight", "3"),
    ("config-timeout-number", "config_schema", KSC, f"{X0}.httpTimeout", 5),
    ("config-timeout-words", "config_schema", KSC, f"{X0}.httpTimeout", "5 seconds"),
    ("config-resource-typo", "config_schema", KSC, f"{X0}.managedResources[0].ignored", True),
    ("config-old-api", "config_schema", KSC, "apiVersion", "kubescheduler.config.k8s.io/v1beta3"),
    ("config-leader-typo", "config_schema", KSC, "leaderElection.resourceNamespaces", NS),
    ("profile-default-name", "profile", KSC, "profiles[0].schedulerName", "default-scheduler"),
    ("profile-second", "profile", KSC, "profiles", Append({"schedulerName": "other"})),
    ("profile-plugins-off", "profile", KSC, "profiles[0].plugins", {"score": {"disabled": [{"name": "*"}]}}),
    ("filter-verb", "extender_wiring", KSC, f"{X0}.filterVerb", "filters"),
    ("no-bind", "extender_wiring", KSC, f"{X0}.bindVerb", DELETE),
    ("preempt", "extender_wiring", KSC, f"{X0}.preemptVerb", "preempt"),
    ("full-nodes", "extender_wiring", KSC, f"{X0}.nodeCacheCapable", False),
    ("ignorable", "extender_wiring", KSC, f"{X0}.ignorable", True),
    ("https", "extender_wiring", KSC, f"{X0}.enableHTTPS", True),
    ("tls-config", "extender_wiring", KSC, f"{X0}.tlsConfig", {"insecure": True}),
    ("url-port", "extender_wiring", KSC, f"{X0}.urlPrefix", "http://127.0.0.1:8443"),
    ("url-service", "extender_wiring", KSC, f"{X0}.urlPrefix", "http://spotpack-extender.spotpack-system:8444"),
    ("url-https", "extender_wiring", KSC, f"{X0}.urlPrefix", "https://127.0.0.1:8444"),
    ("url-path", "extender_wiring", KSC, f"{X0}.urlPrefix", "http://127.0.0.1:8444/scheduler"),
    ("url-localhost-name", "extender_wiring", KSC, f"{X0}.urlPrefix", "http://localhost:8444"),
    ("weight-dominates", "extender_wiring", KSC, f"{X0}.weight", 10),
    ("weight-negligible", "extender_wiring", KSC, f"{X0}.weight", 1),
    ("two-extenders", "extender_wiring", KSC, "extenders", Append({"urlPrefix": "http://127.0.0.1:9"})),
    ("gpu-ignored", "managed_resources", KSC, f"{X0}.managedResources[0].ignoredByScheduler", True),
    ("gpumem-checked", "managed_resources", KSC, f"{X0}.managedResources[1].ignoredByScheduler", False),
    ("gpumem-default-flag", "managed_resources", KSC, f"{X0}.managedResources[1].ignoredByScheduler", DELETE),
    ("gpucores-dropped", "managed_resources", KSC, f"{X0}.managedResources", Remove(EXPECTED_MANAGED_RESOURCES[3])),
    ("all-pods", "managed_resources", KSC, f"{X0}.managedResources", DELETE),
    ("mig-added", "managed_resources", KSC, f"{X0}.managedResources", Append({"name": "nvidia.com/mig-1g.5gb", "ignoredByScheduler": True})),
    ("timeout-default-30s", "http_timeout", KSC, f"{X0}.httpTimeout", "30s"),
    ("timeout-below-bind", "http_timeout", KSC, f"{X0}.httpTimeout", "3500ms"),
    ("timeout-missing", "http_timeout", KSC, f"{X0}.httpTimeout", DELETE),
    ("bind-timeout-long", "http_timeout", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_BIND_TIMEOUT_SECONDS].value", "5"),
    ("no-leader-election", "leader_election", KSC, "leaderElection.leaderElect", False),
    ("endpoints-lock", "leader_election", KSC, "leaderElection.resourceLock", "endpoints"),
    ("default-scheduler-lease", "leader_election", KSC, "leaderElection.resourceName", "kube-scheduler"),
    ("lease-in-kube-system", "leader_election", KSC, "leaderElection.resourceNamespace", "kube-system"),
    ("lease-role-other-name", "leader_election", LEADER_ROLE, "rules[1].resourceNames", ["spotpack"]),
    ("lease-role-no-update", "leader_election", LEADER_ROLE, "rules[1].verbs", ["get"]),
    ("lease-role-unbound", "leader_election", "RoleBinding/spotpack-scheduler:leader-election", "subjects[0].name", "x"),
    ("extender-patches-pods", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules[0].verbs", Append("patch")),
    ("extender-updates-pods", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules[0].verbs", ["*"]),
    ("extender-reads-secrets", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules", Append(SECRETS_RULE)),
    ("extender-all-resources", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules[0].resources", ["*"]),
    ("extender-no-binding", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules[1].resources", ["bindings"]),
    ("extender-no-nodes", "extender_rbac", EXTENDER_CLUSTER_ROLE, "rules[0].resources", ["pods"]),
    ("lease-role-reads-secrets", "extender_rbac", LEADER_ROLE, "rules", Append(SECRETS_RULE)),
    ("extender-role-unbound", "extender_rbac", f"ClusterRoleBinding/{EXTENDER_ROLE}", "subjects[0].namespace", "default"),
    ("no-volume-scheduler", "scheduler_rbac", "ClusterRoleBinding/spotpack-scheduler:volume-scheduler", "roleRef.name", EXTENDER_ROLE),
    ("no-kube-scheduler-role", "scheduler_rbac", "ClusterRoleBinding/spotpack-scheduler:kube-scheduler", "subjects", []),
    ("no-auth-reader", "scheduler_rbac", AUTH_BINDING, "metadata.namespace", NS),
    ("roleref-typo", "scheduler_rbac", "ClusterRoleBinding/spotpack-scheduler:kube-scheduler", "roleRef.name", "system:kube-schedular"),
    ("extra-group-binding", "scheduler_rbac", "*", "", Append(EXTRA_BINDING)),
    ("leader-role-wildcard", "scheduler_rbac", LEADER_ROLE, "rules[0].verbs", ["*"]),
    ("scheduler-latest", "images", DEP, f"{SCHED}.image", "registry.k8s.io/kube-scheduler:latest"),
    ("scheduler-minor-only", "images", DEP, f"{SCHED}.image", "registry.k8s.io/kube-scheduler:v1.30"),
    ("scheduler-untagged", "images", DEP, f"{SCHED}.image", "registry.k8s.io/kube-scheduler"),
    ("scheduler-other-registry", "images", DEP, f"{SCHED}.image", "docker.io/x/kube-scheduler:v1.30.14"),
    ("extender-latest", "images", DEP, f"{EXT}.image", "ghcr.io/spotpack/spotpack:latest"),
    ("always-pull", "images", DEP, f"{EXT}.imagePullPolicy", "Always"),
    ("containers-swapped", "images", DEP, f"{POD}.containers", [{"name": EXTENDER}, {"name": SCHEDULER}]),
    ("no-config-flag", "commands", DEP, f"{SCHED}.command", ["kube-scheduler"]),
    ("config-elsewhere", "commands", DEP, f"{SCHED}.command[1]", "--config=/etc/scheduler/config.yaml"),
    ("config-other-key", "commands", DEP, f"{SCHED}.command[1]", "--config=/etc/kubernetes/scheduler/kube.yaml"),
    ("config-other-map", "commands", DEP, f"{POD}.volumes[name=scheduler-config].configMap.name", "x"),
    ("extender-command", "commands", DEP, f"{EXT}.command", ["spotpack", "webhook"]),
    ("scheduler-args", "commands", DEP, f"{SCHED}.args", ["--v=2"]),
    ("extender-all-interfaces", "extender_env", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_HOST].value", "0.0.0.0"),
    ("extender-tls", "extender_env", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_CERT_FILE].value", "/tls/tls.crt"),
    ("env-port", "extender_env", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_PORT].value", "9000"),
    ("container-port", "extender_env", DEP, f"{EXT}.ports[0].containerPort", 9000),
    ("label-scheme", "extender_env", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_LABEL_SCHEME].value", "azure"),
    ("text-logs", "extender_env", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_LOG_FORMAT].value", "text"),
    ("env-typo", "extender_env", DEP, ENV, Append({"name": "SPOTPACK_EXTENDER_WEIGHTGPU", "value": "3"})),
    ("catalog-not-json", "catalog", f"ConfigMap/{CATALOG_MAP}", f'data["{CATALOG_KEY}"]', "{"),
    ("catalog-list", "catalog", f"ConfigMap/{CATALOG_MAP}", f'data["{CATALOG_KEY}"]', "[]"),
    ("catalog-moved", "catalog", DEP, f"{EXT}.volumeMounts[name=catalog].mountPath", "/catalog"),
    ("catalog-subpath", "catalog", DEP, f"{EXT}.volumeMounts[name=catalog].subPath", CATALOG_KEY),
    ("catalog-optional", "catalog", DEP, f"{POD}.volumes[name=catalog].configMap.optional", True),
    ("catalog-other-map", "catalog", DEP, f"{POD}.volumes[name=catalog].configMap.name", CONFIG_MAP),
    ("catalog-env-file", "catalog", DEP, f"{ENV}[name=SPOTPACK_EXTENDER_CATALOG_FILE].value", "/etc/spotpack/catalog/c.json"),
    ("no-tmp", "catalog", DEP, f"{EXT}.volumeMounts[name=tmp]", DELETE),
    ("scheduler-probe-port", "probes", DEP, f"{SCHED}.livenessProbe.httpGet.port", 10251),
    ("scheduler-probe-http", "probes", DEP, f"{SCHED}.readinessProbe.httpGet.scheme", "HTTP"),
    ("scheduler-readyz-on-130", "probes", DEP, f"{SCHED}.readinessProbe.httpGet.path", "/readyz"),
    ("scheduler-livez-on-130", "probes", DEP, f"{SCHED}.startupProbe.httpGet.path", "/livez"),
    ("scheduler-131-healthz", "probes", DEP, f"{SCHED}.image", "registry.k8s.io/kube-scheduler:v1.31.14"),
    ("secure-port-moved", "probes", DEP, f"{SCHED}.command", Append("--secure-port=10260")),
    ("extender-http-probe", "probes", DEP, f"{EXT}.readinessProbe", HTTP_PROBE),
    ("extender-probe-port", "probes", DEP, f"{EXT}.livenessProbe.exec.command[5]", "http://127.0.0.1:8443/healthz"),
    ("extender-probe-pod-ip", "probes", DEP, f"{EXT}.livenessProbe.exec.command[5]", "http://0.0.0.0:8444/healthz"),
    ("extender-ready-on-healthz", "probes", DEP, f"{EXT}.readinessProbe.exec.command[5]", "http://127.0.0.1:8444/healthz"),
    ("extender-live-on-readyz", "probes", DEP, f"{EXT}.livenessProbe.exec.command[5]", "http://127.0.0.1:8444/readyz"),
    ("probe-script-broken", "probes", DEP, f"{EXT}.livenessProbe.exec.command[4]", Replace("try:", "try")),
    ("probe-scripts-differ", "probes", DEP, f"{EXT}.readinessProbe.exec.command[4]", Replace("status = ", "code = status = ")),
    ("probe-timeout-short", "probes", DEP, f"{EXT}.readinessProbe.timeoutSeconds", 1),
    ("probe-python", "probes", DEP, f"{EXT}.livenessProbe.exec.command[0]", "python"),
    ("root", "pod_security", DEP, f"{POD}.securityContext.runAsUser", 0),
    ("root-allowed", "pod_security", DEP, f"{POD}.securityContext.runAsNonRoot", False),
    ("scheduler-as-root", "pod_security", DEP, f"{SCHED}.securityContext.runAsUser", 0),
    ("scheduler-escalation", "pod_security", DEP, f"{SCHED}.securityContext.allowPrivilegeEscalation", True),
    ("extender-writable-root", "pod_security", DEP, f"{EXT}.securityContext.readOnlyRootFilesystem", False),
    ("extender-privileged", "pod_security", DEP, f"{EXT}.securityContext.privileged", True),
    ("scheduler-caps", "pod_security", DEP, f"{SCHED}.securityContext.capabilities.add", ["NET_BIND_SERVICE"]),
    ("extender-seccomp", "pod_security", DEP, f"{EXT}.securityContext.seccompProfile.type", "Unconfined"),
    ("host-network", "pod_security", DEP, f"{POD}.hostNetwork", True),
    ("host-path", "pod_security", DEP, f"{POD}.volumes", Append({"name": "h", "hostPath": {"path": "/"}})),
    ("no-memory-limit", "resources", DEP, f"{SCHED}.resources.limits", {}),
    ("cpu-limit", "resources", DEP, f"{EXT}.resources.limits.cpu", "1"),
    ("no-requests", "resources", DEP, f"{EXT}.resources.requests", {}),
    ("limit-below-request", "resources", DEP, f"{SCHED}.resources.limits.memory", "128Mi"),
    ("schedules-itself", "scheduling", DEP, f"{POD}.schedulerName", PROFILE),
    ("no-priority-class", "scheduling", DEP, f"{POD}.priorityClassName", DELETE),
    ("default-service-account", "scheduling", DEP, f"{POD}.serviceAccountName", "default"),
    ("no-token", "scheduling", DEP, f"{POD}.automountServiceAccountToken", False),
    ("sa-automount", "scheduling", f"ServiceAccount/{NAME}", "automountServiceAccountToken", True),
    ("no-toleration", "scheduling", DEP, f"{POD}.tolerations", []),
    ("no-node-spread", "scheduling", DEP, f"{POD}.topologySpreadConstraints[0].whenUnsatisfiable", "ScheduleAnyway"),
    ("one-replica", "replicas", DEP, "spec.replicas", 1),
    ("rollout-drops-replica", "replicas", DEP, "spec.strategy.rollingUpdate.maxUnavailable", 1),
    ("replicas-without-election", "replicas", KSC, "leaderElection.leaderElect", False),
    ("pdb-blocks-drains", "pdb", PDB, "spec.minAvailable", 2),
    ("pdb-zero", "pdb", PDB, "spec.minAvailable", 0),
    ("pdb-selector", "selectors_match_template", PDB, f"spec.selector.matchLabels{NAME_LABEL}", "x"),
    ("netpol-selects-all", "selectors_match_template", NETPOL, "spec.podSelector", {}),
    ("template-label", "selectors_match_template", DEP, f"spec.template.metadata.labels{NAME_LABEL}", "x"),
    ("netpol-opens-extender", "networkpolicy", NETPOL, "spec.ingress[0].ports", Append({"protocol": "TCP", "port": 8444})),
    ("netpol-extender-by-name", "networkpolicy", NETPOL, "spec.ingress[0].ports[0].port", "extender"),
    ("netpol-all-ports", "networkpolicy", NETPOL, "spec.ingress", [{}]),
    ("netpol-ingress-only", "networkpolicy", NETPOL, "spec.policyTypes", ["Ingress"]),
    ("webhook-other-scheduler", "webhook_routing", "Deployment/spotpack-webhook", f"{POD}.containers[name=webhook].env", Append({"name": "SPOTPACK_WEBHOOK_SCHEDULER_NAME", "value": "gpu-scheduler"})),
]
# fmt: on


def target(objs: list[Obj], ident: str) -> Obj:
    kind, name = ident.split("/", 1)
    return m.find(objs, kind, name)


def apply_mutation(objs: list[Obj], ident: str, path: str, change: Any) -> None:
    if ident == "*":
        assert isinstance(change, Append) and not path
        objs.append(copy.deepcopy(change.value))
    elif ident == KSC:
        config_map = m.find(objs, "ConfigMap", CONFIG_MAP)
        config = yaml.safe_load(config_map["data"][CONFIG_KEY])
        m.edit(config, path, change)
        config_map["data"][CONFIG_KEY] = yaml.safe_dump(config, sort_keys=False)
    else:
        m.edit(target(objs, ident), path, change)


@pytest.mark.parametrize(
    ("check_name", "ident", "path", "change"),
    [row[1:] for row in MUTATIONS],
    ids=[row[0] for row in MUTATIONS],
)
def test_check_catches_broken_manifest(check_name: str, ident: str, path: str, change: Any) -> None:
    objs = rendered()
    apply_mutation(objs, ident, path, change)
    with pytest.raises(AssertionError):
        CHECKS[check_name](objs)


def test_every_check_is_exercised_by_a_mutation() -> None:
    assert {row[1] for row in MUTATIONS} == set(CHECKS)
    assert len({row[0] for row in MUTATIONS}) == len(MUTATIONS)


def test_round_tripping_the_config_changes_nothing() -> None:
    """The KSC mutations re-serialize config.yaml; an unchanged round trip still passes."""
    objs = rendered()
    apply_mutation(objs, KSC, "kind", "KubeSchedulerConfiguration")
    for fn in CHECKS.values():
        fn(objs)


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_object_validates_strictly(entry: str, version: str) -> None:
    problems = []
    for obj in _rendered(entry):
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue  # CRDs: test_deploy_manifests.py checks them against their own schemas
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        problems += [f"{ident}: {err}" for err in m.validation_errors(obj, version)]
    assert not problems, "\n".join(problems)


# (id, object, path, change, expected error text)
BROKEN: list[tuple[str, str, str, Any, str]] = [
    (
        "exec-command-string",
        DEP,
        f"{EXT}.livenessProbe.exec.command",
        "python3 -c x",
        "is not of type 'array'",
    ),
    ("probe-unknown-field", DEP, f"{SCHED}.startupProbe.httpGett", {}, "'httpGett'"),
    (
        "configmap-data-mapping",
        f"ConfigMap/{CATALOG_MAP}",
        f'data["{CATALOG_KEY}"]',
        {},
        "is not of type 'string'",
    ),
    ("rolebinding-unknown-field", AUTH_BINDING, "roleRef.namespace", "kube-system", "'namespace'"),
    ("rule-verbs-string", LEADER_ROLE, "rules[0].verbs", "create", "is not of type 'array'"),
    ("pdb-unknown-field", PDB, "spec.minAvailabe", 1, "'minAvailabe'"),
]


@pytest.mark.parametrize("version", [K8S_VERSIONS[0], K8S_VERSIONS[-1]])
@pytest.mark.parametrize(
    ("ident", "path", "change", "expected"),
    [row[1:] for row in BROKEN],
    ids=[row[0] for row in BROKEN],
)
def test_validator_rejects_broken_copies(
    ident: str, path: str, change: Any, expected: str, version: str
) -> None:
    broken = copy.deepcopy(target(rendered(), ident))
    m.edit(broken, path, change)
    errors = m.validation_errors(broken, version)
    assert any(expected in e for e in errors), errors


def test_config_schema_is_strict_where_it_matters() -> None:
    """The hand-written schema rejects unknown fields at every level we use, not only the top."""
    jsonschema.Draft202012Validator.check_schema(KSC_SCHEMA)
    config = scheduler_config(rendered())
    KSC_VALIDATOR.validate(config)
    for path in (
        "x",
        "leaderElection.x",
        "profiles[0].x",
        f"{X0}.x",
        f"{X0}.managedResources[0].x",
    ):
        broken = copy.deepcopy(config)
        m.edit(broken, path, 1)
        with pytest.raises(jsonschema.ValidationError):
            KSC_VALIDATOR.validate(broken)


# --------------------------------------------------------------------------- RBAC evaluator


def test_builtin_kube_scheduler_role_cannot_hold_our_lease() -> None:
    """Why the leader-election Role exists: system:kube-scheduler names its own Lease only."""
    builtin_only = [
        o for o in rendered() if o["metadata"]["name"] == "spotpack-scheduler:kube-scheduler"
    ]
    authorizer = m.RBAC(builtin_only, BUILTIN_ROLES)
    lease = {"group": "coordination.k8s.io", "namespace": NS}
    assert authorizer.allows(SCHEDULER_SA, m.Request("create", "leases", **lease))
    assert not authorizer.allows(SCHEDULER_SA, m.Request("get", "leases", name=NAME, **lease))
    assert authorizer.allows(
        SCHEDULER_SA, m.Request("get", "leases", name="kube-scheduler", **lease)
    )


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        (_rule("get", "pods"), m.Request("get", "pods", namespace="a", name="p"), True),
        (_rule("get", "pods"), m.Request("get", "pods/log", namespace="a", name="p"), False),
        (_rule("create", "*/binding"), m.Request("create", "pods/binding", namespace="a"), True),
        (_rule("create", "pods/*"), m.Request("create", "pods/binding", namespace="a"), False),
        (_rule("*", "*", "*"), m.Request("delete", "secrets", namespace="a", name="s"), True),
        (
            _rule("get", "leases", "coordination.k8s.io"),
            m.Request("get", "leases", "coordination.k8s.io", name="l"),
            True,
        ),
        (
            _rule("get", "leases"),
            m.Request("get", "leases", "coordination.k8s.io", name="l"),
            False,
        ),
        (_rule("create", "leases", names="l"), m.Request("create", "leases"), False),
        (
            _rule("list", "configmaps", names="c"),
            m.Request("list", "configmaps", namespace="a"),
            False,
        ),
        (
            _rule("get", "configmaps", names="c"),
            m.Request("get", "configmaps", namespace="a", name="d"),
            False,
        ),
    ],
)
def test_rule_matching(rule: Obj, request_: m.Request, allowed: bool) -> None:
    assert m.rule_allows(rule, request_) is allowed


def _binding(
    kind: str, role_kind: str, role: str, namespace: str = "", subject: Obj | None = None
) -> Obj:
    meta: Obj = {"name": f"b-{role}"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [subject or {"kind": "ServiceAccount", "name": NAME, "namespace": NS}],
    }


def test_rolebinding_grants_only_in_its_namespace() -> None:
    objs = [_binding("RoleBinding", "ClusterRole", "system:volume-scheduler", namespace="team-a")]
    authorizer = m.RBAC(objs, BUILTIN_ROLES)
    pvc = "persistentvolumeclaims"
    assert authorizer.allows(SCHEDULER_SA, m.Request("get", pvc, namespace="team-a", name="c"))
    assert not authorizer.allows(SCHEDULER_SA, m.Request("get", pvc, namespace="team-b", name="c"))
    assert not authorizer.allows(SCHEDULER_SA, m.Request("list", pvc)), "not cluster-wide"


def test_group_subjects_and_other_accounts() -> None:
    group = {"kind": "Group", "name": f"system:serviceaccounts:{NS}"}
    authorizer = m.RBAC(
        [_binding("ClusterRoleBinding", "ClusterRole", "system:volume-scheduler", subject=group)],
        BUILTIN_ROLES,
    )
    assert authorizer.allows(SCHEDULER_SA, m.Request("list", "persistentvolumes"))
    other = m.service_account("team-a", NAME)
    assert not authorizer.allows(other, m.Request("list", "persistentvolumes"))


def test_unknown_roles_are_errors_not_empty_grants() -> None:
    authorizer = m.RBAC([_binding("ClusterRoleBinding", "ClusterRole", "nope")], BUILTIN_ROLES)
    with pytest.raises(m.RBACError):
        authorizer.allows(SCHEDULER_SA, m.Request("get", "pods", namespace="a", name="p"))
    aggregated = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
    }
    authorizer = m.RBAC([aggregated, _binding("ClusterRoleBinding", "ClusterRole", "agg")])
    with pytest.raises(m.RBACError):
        authorizer.allows(SCHEDULER_SA, m.Request("get", "pods", namespace="a", name="p"))


# --------------------------------------------------------------------------- the extender's settings


def test_extender_env_is_what_the_extender_reads() -> None:
    """Every SPOTPACK_EXTENDER_* variable names a setting and parses (typos would be ignored)."""
    settings = pytest.importorskip("extender.settings", reason="extender settings not present")
    values = env(rendered())
    prefix = "SPOTPACK_EXTENDER_"
    fields = {name.removeprefix(prefix).lower(): value for name, value in values.items()}
    assert set(fields) <= set(settings.ExtenderSettings.model_fields), set(fields) - set(
        settings.ExtenderSettings.model_fields
    )
    parsed = settings.ExtenderSettings(**fields)
    assert parsed.host == "127.0.0.1" and parsed.port == 8444
    assert not parsed.cert_file and not parsed.key_file, "empty: plain HTTP"
    assert parsed.bind_timeout_seconds < seconds(extender_config(rendered())["httpTimeout"])


# --------------------------------------------------------------------------- the exec probe, for real


class _Health(http.server.BaseHTTPRequestHandler):
    codes: ClassVar[dict[str, int]] = {"/healthz": 200, "/readyz": 503}

    def do_GET(self) -> None:
        self.send_response(self.codes.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run_probe(probe: str, port: int) -> subprocess.CompletedProcess[str]:
    """The probe's own command, with this interpreter for python3 and ``port`` in the URL."""
    command = list(container(rendered(), EXTENDER)[probe]["exec"]["command"])
    url = urllib.parse.urlsplit(command[-1])
    command[0] = sys.executable
    command[-1] = url._replace(netloc=f"{url.hostname}:{port}").geturl()
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_exec_probes_report_what_the_extender_answers(health_server: int) -> None:
    live = _run_probe("livenessProbe", health_server)
    assert live.returncode == 0, live.stderr
    ready = _run_probe("readinessProbe", health_server)
    assert ready.returncode == 1 and "HTTP 503" in ready.stderr, ready
    down = _run_probe("livenessProbe", _closed_port())
    assert down.returncode == 1 and "Traceback" not in down.stderr, down
    assert "/healthz" in down.stderr
