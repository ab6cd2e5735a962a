"""The production manifests under deploy/: schema-valid, and saying what we mean.

Three layers:

1. Every object reachable from deploy/kustomization.yaml (and the cert-manager
   overlay) validates against the Kubernetes JSON schemas shipped by
   kubernetes-validate, in strict mode (unknown fields rejected), for the oldest
   Kubernetes we support, the release where matchConditions went GA, and the
   newest schema set installed. cert-manager CRs are checked against small
   schemas written here. Broken copies prove the validator is not a no-op.
2. Property checks (replicas, security context, probes, RBAC, webhook policy,
   selectors, ...) written as functions over the rendered objects. Each runs on
   the real manifests (must pass) and on deliberately broken copies (must
   fail), so no check can silently pass on anything.
3. The two webhooks' CEL matchConditions: structurally (exact complements,
   every dialect key present, bounded comprehension nesting) and, when the
   cel-python evaluator is installed, evaluated on sample pods against a plain
   Python statement of the intent.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests import manifests as m
from tests.manifests import DELETE, Append, Remove, Replace, edit

Obj = dict[str, Any]

NS = "spotpack-system"
WEBHOOK = "spotpack-webhook"
MWC = "spotpack"
TLS_SECRET = "spotpack-webhook-tls"
IMAGE = "ghcr.io/spotpack/spotpack:0.1.0"
CONTAINER_PORT = 8443

CERT_MANAGER_OVERLAY = m.DEPLOY_DIR / "overlays" / "cert-manager"
ENTRY_POINTS = {"deploy": m.DEPLOY_DIR, "overlays/cert-manager": CERT_MANAGER_OVERLAY}

MIN_K8S = "1.28"  # matchConditions beta (on by default)
GA_K8S = "1.30"  # matchConditions GA
K8S_VERSIONS = (MIN_K8S, GA_K8S, m.schema_versions()[-1])

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}
CERT_MANAGER_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}

EXPECTED_FAILURE_POLICY = {"pods.spotpack.io": "Ignore", "gpu-pods.spotpack.io": "Fail"}
GENERAL, GPU = "pods.spotpack.io", "gpu-pods.spotpack.io"
SYSTEM_NAMESPACES = ("kube-system", "kube-node-lease", "kube-public", NS)
OPT_OUT = {"spotpack.io/opt-out": "true"}

EXPECTED_ENV = {
    "SPOTPACK_WEBHOOK_CERT_FILE": "/etc/spotpack/tls/tls.crt",
    "SPOTPACK_WEBHOOK_KEY_FILE": "/etc/spotpack/tls/tls.key",
    "SPOTPACK_WEBHOOK_PORT": "8443",
    "SPOTPACK_WEBHOOK_LABEL_SCHEME": "karpenter",
    "SPOTPACK_WEBHOOK_SCHEDULER_NAME": "spotpack-scheduler",
    "SPOTPACK_WEBHOOK_LOG_FORMAT": "json",
    "SPOTPACK_WEBHOOK_CATALOG_FILE": "/etc/spotpack/catalog/catalog.json",
}
LABEL_SCHEMES = {"karpenter", "eks", "gke", "aks"}
# Webhook settings that deploy/values/spotpack.env sets (test_deploy_install.py checks them).
VALUES_SETTINGS = {"SPOTPACK_WEBHOOK_ROLE_CAPACITY", "SPOTPACK_WEBHOOK_PREFERRED_WEIGHT"}

# The intent of the GPU matchCondition, stated once in Python.
GPU_EXACT_KEYS = frozenset(
    {
        "nvidia.com/gpu",
        "nvidia.com/gpumem",
        "nvidia.com/gpumem-percentage",
        "nvidia.com/gpucores",
        "aliyun.com/gpu-mem",
    }
)
GPU_KEY_PREFIXES = ("volcano.sh/vgpu-", "koordinator.sh/gpu")
GPU_ANNOTATIONS = frozenset({"gpu-fraction", "gpu-memory"})


def is_gpu_key(key: str) -> bool:
    return key in GPU_EXACT_KEYS or key.startswith(GPU_KEY_PREFIXES)


def requests_gpu(pod: Obj) -> bool:
    """Reference predicate: any (init)container asks for a GPU key, or a KAI annotation."""
    spec = pod["spec"]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        resources = c.get("resources") or {}
        for section in ("limits", "requests"):
            if any(is_gpu_key(k) for k in resources.get(section) or {}):
                return True
    return bool(GPU_ANNOTATIONS & set(pod["metadata"].get("annotations") or {}))


# --------------------------------------------------------------------------- rendering


def rendered(entry: str = "deploy") -> list[Obj]:
    """A fresh deep copy of what ``entry`` renders to (tests mutate their copy)."""
    return copy.deepcopy(_rendered(entry))


_CACHE: dict[str, list[Obj]] = {}


def _rendered(entry: str) -> list[Obj]:
    if entry not in _CACHE:
        _CACHE[entry] = m.render(ENTRY_POINTS[entry]).objects
    return _CACHE[entry]


def deployment(objs: list[Obj]) -> Obj:
    return m.find(objs, "Deployment", WEBHOOK)


def pod_spec(objs: list[Obj]) -> Obj:
    return deployment(objs)["spec"]["template"]["spec"]


def template_labels(objs: list[Obj]) -> dict[str, str]:
    return deployment(objs)["spec"]["template"]["metadata"]["labels"]


def container(objs: list[Obj]) -> Obj:
    (found,) = [c for c in pod_spec(objs)["containers"] if c["name"] == "webhook"]
    return found


def mwc(objs: list[Obj]) -> Obj:
    return m.find(objs, "MutatingWebhookConfiguration", MWC)


def webhook(objs: list[Obj], name: str) -> Obj:
    (found,) = [w for w in mwc(objs)["webhooks"] if w["name"] == name]
    return found


def resolve_container_port(ctr: Obj, port: int | str) -> int | None:
    """The containerPort a probe/Service/NetworkPolicy port means (by name or number)."""
    for p in ctr.get("ports", []):
        if port in (p.get("name"), p["containerPort"]):
            return int(p["containerPort"])
    return None


def condition(objs: list[Obj], name: str) -> str:
    conditions = webhook(objs, name).get("matchConditions") or []
    assert len(conditions) == 1, f"{name}: expected exactly one matchCondition"
    return conditions[0]["expression"]


def squash(expr: str) -> str:
    """CEL without whitespace (no string literal here contains any)."""
    return re.sub(r"\s+", "", expr)


# --------------------------------------------------------------------------- checks

CHECKS: dict[str, Callable[[list[Obj]], None]] = {}


def check(fn: Callable[[list[Obj]], None]) -> Callable[[list[Obj]], None]:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@check
def check_namespaces(objs: list[Obj]) -> None:
    ns = m.find(objs, "Namespace", NS)
    assert ns["metadata"]["name"] == NS
    for obj in objs:
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"{obj['kind']} {meta['name']} is cluster-scoped"
        elif (obj["kind"], meta.get("namespace")) == ("RoleBinding", "kube-system"):
            # deploy/scheduler: kube-scheduler reads its client CAs there, and a
            # RoleBinding grants only in its own namespace (test_deploy_scheduler.py).
            assert obj["roleRef"]["name"] == "extension-apiserver-authentication-reader"
        else:
            assert meta.get("namespace") == NS, f"{obj['kind']} {meta['name']} not in {NS}"


@check
def check_replicas(objs: list[Obj]) -> None:
    assert deployment(objs)["spec"]["replicas"] == 2
    strategy = deployment(objs)["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0, "rollouts must keep both replicas"


@check
def check_pod_security(objs: list[Obj]) -> None:
    spec = pod_spec(objs)
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 65532
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for ctr in spec["containers"] + spec.get("initContainers", []):
        sc = ctr["securityContext"]
        assert sc.get("runAsNonRoot", True) is True
        assert sc.get("runAsUser", pod_sc["runAsUser"]) == 65532
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc.get("privileged", False) is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("seccompProfile", pod_sc["seccompProfile"]) == {"type": "RuntimeDefault"}


@check
def check_container_contract(objs: list[Obj]) -> None:
    ctr = container(objs)
    assert ctr["image"] == IMAGE
    assert ctr["command"] == ["spotpack", "webhook"]
    assert "args" not in ctr
    assert [(p.get("name"), p["containerPort"]) for p in ctr["ports"]] == [
        ("https", CONTAINER_PORT)
    ]
    # As the container sees it: deploy/values (envFrom, shared keys) resolved.
    env = m.container_env(objs, NS, ctr)
    assert {name: env.get(name) for name in EXPECTED_ENV} == EXPECTED_ENV
    assert env["SPOTPACK_WEBHOOK_LABEL_SCHEME"] in LABEL_SCHEMES
    assert int(env["SPOTPACK_WEBHOOK_PORT"]) == CONTAINER_PORT
    assert env["SPOTPACK_WEBHOOK_OWN_NAMESPACE"] == "<fieldRef metadata.namespace>"
    unexpected = {
        name
        for name in env
        if name.startswith("SPOTPACK_WEBHOOK_") and name not in EXPECTED_ENV
    } - {"SPOTPACK_WEBHOOK_OWN_NAMESPACE", *VALUES_SETTINGS}
    assert not unexpected, f"not a setting the manifests expect: {unexpected}"
    assert ctr["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }


@check
def check_probes(objs: list[Obj]) -> None:
    ctr = container(objs)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ctr[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["scheme"] == "HTTPS", probe
        assert resolve_container_port(ctr, get["port"]) == CONTAINER_PORT, probe


@check
def check_scheduling(objs: list[Obj]) -> None:
    spec = pod_spec(objs)
    labels = template_labels(objs)
    assert spec.get("priorityClassName") == "system-cluster-critical"
    assert spec.get("automountServiceAccountToken") is True
    assert spec["serviceAccountName"] == WEBHOOK
    m.find(objs, "ServiceAccount", WEBHOOK)
    assert any(t.get("key") == "CriticalAddonsOnly" for t in spec["tolerations"])
    by_node = [
        c
        for c in spec.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname"
        and c["whenUnsatisfiable"] == "DoNotSchedule"
    ]
    assert by_node, "replicas must be spread across nodes"
    for constraint in by_node:
        assert m.selector_matches(constraint["labelSelector"], labels)


@check
def check_tls_volume(objs: list[Obj]) -> None:
    spec, ctr = pod_spec(objs), container(objs)
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    cert_dir = str(Path(env["SPOTPACK_WEBHOOK_CERT_FILE"]).parent)
    assert str(Path(env["SPOTPACK_WEBHOOK_KEY_FILE"]).parent) == cert_dir
    volumes = {v["name"]: v for v in spec["volumes"]}
    tls_mounts = [mt for mt in ctr["volumeMounts"] if mt["mountPath"] == cert_dir]
    assert len(tls_mounts) == 1, f"exactly one mount at {cert_dir}"
    mount = tls_mounts[0]
    assert mount.get("readOnly") is True
    secret = volumes[mount["name"]]["secret"]
    assert secret["secretName"] == TLS_SECRET
    assert not secret.get("items"), "items would rename/hide tls.crt and tls.key"
    assert not secret.get("optional", False)
    for c in spec["containers"] + spec.get("initContainers", []):
        for mt in c.get("volumeMounts", []):
            if mt["name"] == mount["name"]:
                assert "subPath" not in mt and "subPathExpr" not in mt, "subPath never updates"
    tmp = [mt["name"] for mt in ctr["volumeMounts"] if mt["mountPath"] == "/tmp"]
    assert len(tmp) == 1, "the root FS is read-only: /tmp must be an emptyDir"
    assert "emptyDir" in volumes[tmp[0]]


@check
def check_pdb(objs: list[Obj]) -> None:
    pdb = m.find(objs, "PodDisruptionBudget", WEBHOOK)
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["minAvailable"] < deployment(objs)["spec"]["replicas"], "drains must work"


@check
def check_service(objs: list[Obj]) -> None:
    svc = m.find(objs, "Service", WEBHOOK)
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 443
    assert resolve_container_port(container(objs), port["targetPort"]) == CONTAINER_PORT


@check
def check_selectors_match_template(objs: list[Obj]) -> None:
    labels = template_labels(objs)
    dep = deployment(objs)
    selectors = {
        "Deployment": dep["spec"]["selector"],
        "PodDisruptionBudget": m.find(objs, "PodDisruptionBudget", WEBHOOK)["spec"]["selector"],
        "Service": {"matchLabels": m.find(objs, "Service", WEBHOOK)["spec"]["selector"]},
        "NetworkPolicy": m.find(objs, "NetworkPolicy", WEBHOOK)["spec"]["podSelector"],
    }
    for owner, selector in selectors.items():
        assert selector.get("matchLabels") or selector.get("matchExpressions"), owner
        assert m.selector_matches(selector, labels), f"{owner} selector misses the pods"
    assert "app.kubernetes.io/version" not in dep["spec"]["selector"].get("matchLabels", {})


@check
def check_networkpolicy(objs: list[Obj]) -> None:
    netpol = m.find(objs, "NetworkPolicy", WEBHOOK)
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {
        resolve_container_port(container(objs), p["port"])
        for rule in netpol["spec"]["ingress"]
        for p in rule["ports"]
    }
    assert ingress_ports == {CONTAINER_PORT}, "only the HTTPS port may be reachable"


@check
def check_rbac(objs: list[Obj]) -> None:
    """All roles bound to the webhook's ServiceAccount: exactly namespaces get/list/watch."""
    subject = {"kind": "ServiceAccount", "name": WEBHOOK, "namespace": NS}
    bindings = [
        b
        for b in list(m.iter_kind(objs, "ClusterRoleBinding"))
        + list(m.iter_kind(objs, "RoleBinding"))
        if subject in b.get("subjects", [])
    ]
    assert [b["kind"] for b in bindings] == ["ClusterRoleBinding"]
    rules = []
    for binding in bindings:
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        rules.extend(m.find(objs, ref["kind"], ref["name"])["rules"])
    assert len(rules) == 1
    (rule,) = rules
    assert set(rule) == {"apiGroups", "resources", "verbs"}
    assert rule["apiGroups"] == [""]
    assert rule["resources"] == ["namespaces"]
    assert sorted(rule["verbs"]) == ["get", "list", "watch"]


@check
def check_webhook_config(objs: list[Obj]) -> None:
    config = mwc(objs)
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert [w["name"] for w in config["webhooks"]] == list(EXPECTED_FAILURE_POLICY)
    svc = m.find(objs, "Service", WEBHOOK)
    svc_ports = {p["port"] for p in svc["spec"]["ports"]}
    for w in config["webhooks"]:
        name = w["name"]
        assert w["failurePolicy"] == EXPECTED_FAILURE_POLICY[name], name
        assert w["admissionReviewVersions"] == ["v1"], name
        assert w["sideEffects"] == "None", name
        assert w["matchPolicy"] == "Equivalent", name
        assert 1 <= w["timeoutSeconds"] <= 5, name
        assert w["reinvocationPolicy"] == "IfNeeded", name
        assert w["rules"] == [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ], name
        client = w["clientConfig"]
        assert "url" not in client, name
        assert client["service"] == {
            "name": svc["metadata"]["name"],
            "namespace": svc["metadata"]["namespace"],
            "path": "/mutate",
            "port": 443,
        }, name
        assert client["service"]["port"] in svc_ports, name


@check
def check_ca_bundle(objs: list[Obj]) -> None:
    """No caBundle, or a base64 PEM certificate (an overlay's own, cabundle-patch.yaml.example).

    The shipped manifests carry none: the install Job, cert-manager's cainjector
    or the user's patch sets it, and a value here would be put back by every apply.
    """
    for w in mwc(objs)["webhooks"]:
        if "caBundle" not in w["clientConfig"]:
            continue
        try:
            decoded = base64.b64decode(w["clientConfig"]["caBundle"], validate=True)
        except binascii.Error as exc:
            raise AssertionError(f"{w['name']}: caBundle is not base64") from exc
        assert b"-----BEGIN CERTIFICATE-----" in decoded, w["name"]


@check
def check_webhook_selectors(objs: list[Obj]) -> None:
    own_ns = m.find(objs, "Namespace", NS)
    own_ns_labels = {**own_ns["metadata"].get("labels", {}), "kubernetes.io/metadata.name": NS}
    for w in mwc(objs)["webhooks"]:
        ns_sel, obj_sel = w["namespaceSelector"], w["objectSelector"]
        for ns in SYSTEM_NAMESPACES:
            name_only = {"kubernetes.io/metadata.name": ns}
            assert not m.selector_matches(ns_sel, name_only), f"{w['name']} reaches {ns}"
        assert not m.selector_matches(ns_sel, own_ns_labels), "the webhook must not admit itself"
        team = {"kubernetes.io/metadata.name": "team-a"}
        assert m.selector_matches(ns_sel, team)
        assert m.selector_matches(ns_sel, {"kubernetes.io/metadata.name": "default"})
        assert not m.selector_matches(ns_sel, {**team, **OPT_OUT}), "namespace opt-out"
        assert m.selector_matches(ns_sel, {**team, "spotpack.io/opt-out": "false"})
        assert m.selector_matches(obj_sel, {"app": "x"})
        assert m.selector_matches(obj_sel, {})
        assert not m.selector_matches(obj_sel, {"app": "x", **OPT_OUT}), "pod opt-out"


@check
def check_match_conditions(objs: list[Obj]) -> None:
    gpu, general = condition(objs, GPU), condition(objs, GENERAL)
    assert squash(general) == "!(" + squash(gpu) + ")", "conditions must be exact complements"
    literals = set(re.findall(r"'([^']*)'", gpu))
    assert literals == GPU_EXACT_KEYS | set(GPU_KEY_PREFIXES) | GPU_ANNOTATIONS
    flat = squash(gpu)
    for part in (
        "object.spec.containers.exists(",
        "has(object.spec.initContainers)&&object.spec.initContainers.exists(",
        "has(object.metadata.annotations)&&",
    ):
        assert part in flat, part
    for section in ("limits", "requests"):
        guarded = f"has(c.resources.{section})&&c.resources.{section}.exists(k,"
        assert flat.count(guarded) == 2, f"{section} of containers and initContainers"
    assert flat.count("has(c.resources)&&") == 2
    for prefix in GPU_KEY_PREFIXES:
        assert flat.count(f"k.startsWith('{prefix}')") == 4, prefix
    roots = set(re.findall(r"(?<![.\w'])([A-Za-z_]\w*)\s*\.", gpu))
    assert roots <= {"object", "c", "k"}, f"unexpected variables {roots - {'object', 'c', 'k'}}"
    assert comprehension_nesting(gpu) <= 2, "cost must stay linear in containers x keys"


def comprehension_nesting(expr: str) -> int:
    """Deepest nesting of exists()/all()/map()/filter() comprehensions in ``expr``."""
    stack: list[bool] = []
    deepest = 0
    for match in re.finditer(r"\.(?:exists|all|exists_one|map|filter)\(|[()]", expr):
        token = match.group()
        if token == ")":
            stack.pop()
        else:
            stack.append(token != "(")
            deepest = max(deepest, sum(stack))
    assert not stack, "unbalanced parentheses"
    return deepest


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name", list(CHECKS))
def test_check_holds_for_the_real_manifests(entry: str, name: str) -> None:
    CHECKS[name](rendered(entry))


# --------------------------------------------------------------------------- mutations
#
# A mutation names an object ("Kind/name"), a path into it and a change. Paths
# are dotted keys, `[N]` list indexes, `[name=X]` list items by name and
# `["a.b/c"]` keys that contain dots.

DEP = "Deployment/spotpack-webhook"
POD = "spec.template.spec"
CTR = f"{POD}.containers[name=webhook]"
SC = f"{CTR}.securityContext"
ENV = f"{CTR}.env"
MWC_ID = "MutatingWebhookConfiguration/spotpack"
W_GPU = f"webhooks[name={GPU}]"
W_GEN = f"webhooks[name={GENERAL}]"
SVC = "Service/spotpack-webhook"
PDB = "PodDisruptionBudget/spotpack-webhook"
NETPOL = "NetworkPolicy/spotpack-webhook"
ROLE = "ClusterRole/spotpack-webhook"
NAME_LABEL = '["app.kubernetes.io/name"]'
INSTANCE_LABEL = '["app.kubernetes.io/instance"]'

def target(objs: list[Obj], ident: str) -> Obj:
    kind, name = ident.split("/")
    return m.find(objs, kind, name)


EXTRA_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "extra"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    "subjects": [{"kind": "ServiceAccount", "name": WEBHOOK, "namespace": NS}],
}
GPU_KEYS_TEXT = "'nvidia.com/gpucores', 'aliyun.com/gpu-mem'"

# (id, check that must fail, object, path, change)
MUTATIONS: list[tuple[str, str, str, str, Any]] = [
    ("deployment-in-default", "namespaces", DEP, "metadata.namespace", "default"),
    ("namespace-missing", "namespaces", "Namespace/spotpack-system", "kind", "Namespaces"),
    ("one-replica", "replicas", DEP, "spec.replicas", 1),
    ("rollout-drops-replica", "replicas", DEP, "spec.strategy.rollingUpdate.maxUnavailable", 1),
    ("root-allowed", "pod_security", DEP, f"{POD}.securityContext.runAsNonRoot", False),
    ("runs-as-root", "pod_security", DEP, f"{POD}.securityContext.runAsUser", 0),
    ("writable-root-fs", "pod_security", DEP, f"{SC}.readOnlyRootFilesystem", False),
    ("privilege-escalation", "pod_security", DEP, f"{SC}.allowPrivilegeEscalation", True),
    ("keeps-capabilities", "pod_security", DEP, f"{SC}.capabilities.drop", ["NET_RAW"]),
    ("adds-capability", "pod_security", DEP, f"{SC}.capabilities.add", ["NET_ADMIN"]),
    ("unconfined-seccomp", "pod_security", DEP, f"{SC}.seccompProfile.type", "Unconfined"),
    ("container-as-root", "pod_security", DEP, f"{SC}.runAsUser", 0),
    ("host-network", "pod_security", DEP, f"{POD}.hostNetwork", True),
    ("wrong-image", "container_contract", DEP, f"{CTR}.image", "ghcr.io/spotpack/spotpack:x"),
    ("wrong-command", "container_contract", DEP, f"{CTR}.command", ["spotpack", "extender"]),
    ("wrong-port", "container_contract", DEP, f"{CTR}.ports[0].containerPort", 9443),
    (
        "bad-label-scheme",
        "container_contract",
        DEP,
        f"{ENV}[name=SPOTPACK_WEBHOOK_LABEL_SCHEME].value",
        "azure",
    ),
    ("env-port", "container_contract", DEP, f"{ENV}[name=SPOTPACK_WEBHOOK_PORT].value", "9443"),
    ("text-logs", "container_contract", DEP, f"{ENV}[name=SPOTPACK_WEBHOOK_LOG_FORMAT].value", ""),
    (
        "own-namespace-literal",
        "container_contract",
        DEP,
        f"{ENV}[name=SPOTPACK_WEBHOOK_OWN_NAMESPACE]",
        {"name": "SPOTPACK_WEBHOOK_OWN_NAMESPACE", "value": NS},
    ),
    ("no-memory-limit", "container_contract", DEP, f"{CTR}.resources.limits", DELETE),
    ("cpu-limit", "container_contract", DEP, f"{CTR}.resources.limits.cpu", "1"),
    ("liveness-path", "probes", DEP, f"{CTR}.livenessProbe.httpGet.path", "/health"),
    ("readiness-on-healthz", "probes", DEP, f"{CTR}.readinessProbe.httpGet.path", "/healthz"),
    ("readiness-http", "probes", DEP, f"{CTR}.readinessProbe.httpGet.scheme", "HTTP"),
    ("probe-wrong-port", "probes", DEP, f"{CTR}.livenessProbe.httpGet.port", 8080),
    ("probe-unknown-port-name", "probes", DEP, f"{CTR}.readinessProbe.httpGet.port", "http"),
    ("no-priority-class", "scheduling", DEP, f"{POD}.priorityClassName", DELETE),
    ("no-token", "scheduling", DEP, f"{POD}.automountServiceAccountToken", False),
    ("default-service-account", "scheduling", DEP, f"{POD}.serviceAccountName", "default"),
    ("no-toleration", "scheduling", DEP, f"{POD}.tolerations", []),
    ("no-node-spread", "scheduling", DEP, f"{POD}.topologySpreadConstraints", []),
    (
        "spread-selector-misses",
        "scheduling",
        DEP,
        f"{POD}.topologySpreadConstraints[0].labelSelector.matchLabels{NAME_LABEL}",
        "other",
    ),
    ("tls-subpath", "tls_volume", DEP, f"{CTR}.volumeMounts[name=tls].subPath", "tls.crt"),
    ("tls-writable", "tls_volume", DEP, f"{CTR}.volumeMounts[name=tls].readOnly", False),
    ("tls-wrong-secret", "tls_volume", DEP, f"{POD}.volumes[name=tls].secret.secretName", "x"),
    ("tls-optional", "tls_volume", DEP, f"{POD}.volumes[name=tls].secret.optional", True),
    (
        "tls-items",
        "tls_volume",
        DEP,
        f"{POD}.volumes[name=tls].secret.items",
        [{"key": "tls.crt", "path": "cert.pem"}],
    ),
    (
        "cert-elsewhere",
        "tls_volume",
        DEP,
        f"{ENV}[name=SPOTPACK_WEBHOOK_CERT_FILE].value",
        "/certs/tls.crt",
    ),
    ("tmp-moved", "tls_volume", DEP, f"{CTR}.volumeMounts[name=tmp].mountPath", "/scratch"),
    ("pdb-blocks-drains", "pdb", PDB, "spec.minAvailable", 2),
    ("pdb-zero", "pdb", PDB, "spec.minAvailable", 0),
    ("service-port-80", "service", SVC, "spec.ports[0].port", 80),
    ("service-target-number", "service", SVC, "spec.ports[0].targetPort", 8080),
    ("service-target-name", "service", SVC, "spec.ports[0].targetPort", "http"),
    ("service-nodeport", "service", SVC, "spec.type", "NodePort"),
    ("service-selector", "selectors_match_template", SVC, f"spec.selector{INSTANCE_LABEL}", "x"),
    (
        "pdb-selector",
        "selectors_match_template",
        PDB,
        f"spec.selector.matchLabels{NAME_LABEL}",
        "other",
    ),
    ("netpol-selects-all", "selectors_match_template", NETPOL, "spec.podSelector", {}),
    (
        "template-label",
        "selectors_match_template",
        DEP,
        f"spec.template.metadata.labels{INSTANCE_LABEL}",
        "renamed",
    ),
    (
        "version-in-selector",
        "selectors_match_template",
        DEP,
        'spec.selector.matchLabels["app.kubernetes.io/version"]',
        "0.1.0",
    ),
    ("netpol-other-port", "networkpolicy", NETPOL, "spec.ingress[0].ports[0].port", 9443),
    ("netpol-ingress-only", "networkpolicy", NETPOL, "spec.policyTypes", ["Ingress"]),
    ("rbac-update-verb", "rbac", ROLE, "rules[0].verbs", Append("update")),
    ("rbac-wildcard-verb", "rbac", ROLE, "rules[0].verbs", ["*"]),
    ("rbac-pods", "rbac", ROLE, "rules[0].resources", Append("pods")),
    ("rbac-all-groups", "rbac", ROLE, "rules[0].apiGroups", ["*"]),
    (
        "rbac-secrets-rule",
        "rbac",
        ROLE,
        "rules",
        Append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
    ),
    ("rbac-extra-binding", "rbac", "*", "", Append(EXTRA_BINDING)),
    (
        "rbac-unbound",
        "rbac",
        "ClusterRoleBinding/spotpack-webhook",
        "subjects[0].namespace",
        "default",
    ),
    ("gpu-ignore", "webhook_config", MWC_ID, f"{W_GPU}.failurePolicy", "Ignore"),
    ("general-fail", "webhook_config", MWC_ID, f"{W_GEN}.failurePolicy", "Fail"),
    ("v1beta1", "webhook_config", MWC_ID, f"{W_GPU}.admissionReviewVersions", Append("v1beta1")),
    ("side-effects", "webhook_config", MWC_ID, f"{W_GEN}.sideEffects", "NoneOnDryRun"),
    ("match-exact", "webhook_config", MWC_ID, f"{W_GPU}.matchPolicy", "Exact"),
    ("slow-timeout", "webhook_config", MWC_ID, f"{W_GPU}.timeoutSeconds", 10),
    ("no-reinvocation", "webhook_config", MWC_ID, f"{W_GEN}.reinvocationPolicy", "Never"),
    ("update-too", "webhook_config", MWC_ID, f"{W_GPU}.rules[0].operations", Append("UPDATE")),
    ("pods-status", "webhook_config", MWC_ID, f"{W_GEN}.rules[0].resources", Append("pods/x")),
    ("cluster-scope", "webhook_config", MWC_ID, f"{W_GEN}.rules[0].scope", "*"),
    ("wrong-path", "webhook_config", MWC_ID, f"{W_GPU}.clientConfig.service.path", "/validate"),
    ("wrong-service", "webhook_config", MWC_ID, f"{W_GEN}.clientConfig.service.name", "spotpack"),
    ("wrong-port-mwc", "webhook_config", MWC_ID, f"{W_GEN}.clientConfig.service.port", 8443),
    ("renamed-webhook", "webhook_config", MWC_ID, f"{W_GPU}.name", "gpu.spotpack.io"),
    ("ca-not-base64", "ca_bundle", MWC_ID, f"{W_GPU}.clientConfig.caBundle", "not base64!"),
    ("ca-empty", "ca_bundle", MWC_ID, f"{W_GEN}.clientConfig.caBundle", ""),
    (
        "kube-system-included",
        "webhook_selectors",
        MWC_ID,
        f"{W_GPU}.namespaceSelector.matchExpressions[0].values",
        Remove("kube-system"),
    ),
    (
        "self-included",
        "webhook_selectors",
        MWC_ID,
        f"{W_GEN}.namespaceSelector.matchExpressions[0].values",
        Remove(NS),
    ),
    (
        "ns-opt-out-ignored",
        "webhook_selectors",
        MWC_ID,
        f"{W_GEN}.namespaceSelector.matchExpressions[1].values",
        ["yes"],
    ),
    ("pod-opt-out-ignored", "webhook_selectors", MWC_ID, f"{W_GPU}.objectSelector", {}),
    (
        "selector-inverted",
        "webhook_selectors",
        MWC_ID,
        f"{W_GEN}.namespaceSelector.matchExpressions[0].operator",
        "In",
    ),
    (
        "not-complement",
        "match_conditions",
        MWC_ID,
        f"{W_GEN}.matchConditions[0].expression",
        Replace("!(", "("),
    ),
    (
        "gpu-skips-init",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions[0].expression",
        Replace("object.spec.initContainers.exists", "object.spec.containers.exists"),
    ),
    (
        "gpu-drops-aliyun",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions[0].expression",
        Replace(", 'aliyun.com/gpu-mem'", ""),
    ),
    (
        "gpu-unguarded-init",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions[0].expression",
        Replace("has(object.spec.initContainers) &&", ""),
    ),
    (
        "gpu-unguarded-resources",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions[0].expression",
        Replace("has(c.resources) &&", ""),
    ),
    (
        "gpu-uses-oldobject",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions[0].expression",
        Replace("object.metadata", "oldObject.metadata"),
    ),
    (
        "two-conditions",
        "match_conditions",
        MWC_ID,
        f"{W_GPU}.matchConditions",
        Append({"name": "x", "expression": "true"}),
    ),
]


def apply_mutation(objs: list[Obj], ident: str, path: str, change: Any) -> None:
    if ident == "*":
        assert isinstance(change, Append) and not path
        objs.append(copy.deepcopy(change.value))
    else:
        edit(target(objs, ident), path, change)


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


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_object_validates_strictly(entry: str, version: str) -> None:
    problems = []
    for obj in _rendered(entry):
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        if not m.has_schema(obj, version):
            assert (obj["apiVersion"], obj["kind"]) in CERT_MANAGER_KINDS, (
                f"{ident}: {obj['apiVersion']} is not a Kubernetes {version} API "
                "and not a known CRD"
            )
            continue
        problems += [f"{ident}: {err}" for err in m.validation_errors(obj, version)]
    assert not problems, "\n".join(problems)


def test_schema_set_is_the_installed_kubernetes_validate() -> None:
    """The versions we claim are shipped, strict variants included."""
    assert kubernetes_validate.__version__.split(".")[0] == "1"
    for version in K8S_VERSIONS:
        assert version in m.schema_versions()
        assert m.schema_file("apps/v1", "Deployment", version).parent.name.endswith("-strict")


# (id, object, path, change, expected error text)
BROKEN: list[tuple[str, str, str, Any, str]] = [
    ("unknown-container-field", DEP, f"{CTR}.imagePullPolicyy", "Always", "'imagePullPolicyy'"),
    ("unknown-top-level", DEP, "specs", {}, "'specs' was unexpected"),
    ("unknown-metadata-field", SVC, "metadata.label", {}, "'label' was unexpected"),
    ("replicas-string", DEP, "spec.replicas", "two", "'two' is not of type"),
    ("timeout-string", MWC_ID, f"{W_GPU}.timeoutSeconds", "3s", "'3s' is not of type"),
    ("unknown-webhook-field", MWC_ID, f"{W_GPU}.failurePolicyy", "Fail", "'failurePolicyy'"),
    ("no-expression", MWC_ID, f"{W_GPU}.matchConditions[0].expression", DELETE, "'expression'"),
    ("rules-not-a-list", ROLE, "rules", {"verbs": ["get"]}, "is not of type 'array'"),
    ("service-port-string", SVC, "spec.ports[0].port", "443", "'443' is not of type"),
    ("env-not-a-list", DEP, f"{ENV}", {"A": "b"}, "is not of type 'array'"),
    ("wrong-kind", SVC, "kind", "Services", "no schema"),
]


@pytest.mark.parametrize("version", [MIN_K8S, K8S_VERSIONS[-1]])
@pytest.mark.parametrize(
    ("ident", "path", "change", "expected"),
    [row[1:] for row in BROKEN],
    ids=[row[0] for row in BROKEN],
)
def test_validator_rejects_broken_copies(
    ident: str, path: str, change: Any, expected: str, version: str
) -> None:
    broken = copy.deepcopy(target(rendered(), ident))
    edit(broken, path, change)
    try:
        errors = m.validation_errors(broken, version)
    except m.SchemaNotFoundError as exc:
        errors = [str(exc)]
    assert errors, "the validator accepted a broken object"
    assert any(expected in e for e in errors), errors


def _break_container_field(objs: list[Obj]) -> Obj:
    dep = deployment(objs)
    edit(dep, f"{CTR}.imagePullPolicyy", "Always")
    return dep


def test_strict_mode_is_what_rejects_unknown_fields() -> None:
    """The non-strict schemas accept an unknown field; strict ones do not."""
    broken = _break_container_field(rendered())
    assert m.validation_errors(broken, GA_K8S, strict=False) == []
    assert m.validation_errors(broken, GA_K8S, strict=True)


def test_cached_validator_agrees_with_kubernetes_validate() -> None:
    good = deployment(rendered())
    assert kubernetes_validate.validate(good, GA_K8S, strict=True) == GA_K8S
    bad = _break_container_field(rendered())
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, GA_K8S, strict=True)


# --------------------------------------------------------------------------- kustomize tree


def test_every_manifest_file_is_reachable() -> None:
    overlays = sorted(p for p in (m.DEPLOY_DIR / "overlays").iterdir() if p.is_dir())
    reached = set().union(*(m.render(p).files for p in [m.DEPLOY_DIR, *overlays]))
    # deploy/examples seeds the local in-memory cluster; it is not installed.
    # deploy/values: the files configMapGenerator reads.
    on_disk = {
        p.resolve()
        for pattern in ("*.yaml", "*.env", "catalog.json")
        for p in m.DEPLOY_DIR.rglob(pattern)
        if "examples" not in p.parts
    }
    assert on_disk - reached == set(), "manifests no kustomization lists"
    assert reached <= on_disk


def test_cert_manager_overlay_is_deploy_plus_the_component() -> None:
    """The overlay cannot include deploy/ itself (a kustomize cycle), so it repeats its list."""

    def ident(obj: Obj) -> tuple[str, str]:
        return (obj["kind"], obj["metadata"]["name"])

    def from_cert_job(obj: Obj) -> bool:
        return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "certs"

    plain = [o for o in rendered() if not from_cert_job(o)]
    overlay = rendered("overlays/cert-manager")
    assert len(plain) < len(rendered()), "deploy/ has the cert Job, the overlay replaces it"
    assert not [o for o in overlay if from_cert_job(o)]
    assert {ident(o) for o in plain} <= {ident(o) for o in overlay}
    extra = [o for o in overlay if ident(o) not in {ident(p) for p in plain}]
    assert {o["apiVersion"] for o in extra} == {"cert-manager.io/v1"}
    changed = [
        ident(o) for o in overlay if ident(o) in {ident(p) for p in plain} and o not in plain
    ]
    assert changed == [("MutatingWebhookConfiguration", MWC)]


def test_loader_refuses_a_kustomize_cycle(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "x"
    overlay.mkdir(parents=True)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n", encoding="utf-8"
    )
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../..]\n",
        encoding="utf-8",
    )
    with pytest.raises(m.KustomizeError, match="cycle"):
        m.render(overlay)


def test_loader_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: elsewhere\nresources: []\n",
        encoding="utf-8",
    )
    with pytest.raises(m.KustomizeError, match="namespace"):
        m.render(tmp_path)


def test_patch_must_hit_exactly_one_object() -> None:
    patch = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nope"}}
    with pytest.raises(m.KustomizeError):
        m.apply_patch(rendered(), patch)


@pytest.mark.parametrize(
    ("base", "patch", "expected"),
    [
        ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),
        ({"a": 1, "b": 2}, {"b": None}, {"a": 1}),
        (
            {"l": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]},
            {"l": [{"name": "y", "v": 3}, {"name": "z"}]},
            # kustomize's order: the patch's items, then the rest of the base
            {"l": [{"name": "y", "v": 3}, {"name": "z"}, {"name": "x", "v": 1}]},
        ),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
    ],
)
def test_strategic_merge(base: Obj, patch: Obj, expected: Obj) -> None:
    assert m.strategic_merge(base, patch) == expected


# --------------------------------------------------------------------------- caBundle


def test_no_ca_bundle_is_committed() -> None:
    """`kubectl apply` sets every field a manifest names: a committed caBundle (even a
    placeholder) would undo what the cert Job or cert-manager wrote into the cluster."""
    for entry in ENTRY_POINTS:
        assert all("caBundle" not in w["clientConfig"] for w in mwc(rendered(entry))["webhooks"])


def test_ca_bundle_patch_example_fills_every_webhook() -> None:
    example = m.DEPLOY_DIR / "webhook" / "cabundle-patch.yaml.example"
    (patch,) = m.load_yaml_documents(example)
    value = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    for w in patch["webhooks"]:
        assert set(w) == {"name", "clientConfig"}
        assert set(w["clientConfig"]) == {"caBundle"}
        w["clientConfig"]["caBundle"] = value.decode()
    before = rendered()
    after = m.apply_patch(before, patch)
    patched = mwc(after)
    assert {w["clientConfig"]["caBundle"] for w in patched["webhooks"]} == {value.decode()}
    assert [w["name"] for w in patched["webhooks"]] == list(EXPECTED_FAILURE_POLICY)
    for obj in (patched, *(o for o in after if o is not patched)):
        if m.has_schema(obj, GA_K8S):
            assert m.validation_errors(obj, GA_K8S) == []

    def without_ca(config: Obj) -> Obj:
        config = copy.deepcopy(config)
        for w in config["webhooks"]:
            w["clientConfig"].pop("caBundle", None)
        return config

    assert without_ca(patched) == without_ca(mwc(before)), "the patch changes only caBundle"


# --------------------------------------------------------------------------- cert-manager

_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"const": NS},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$"}
_ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}
# The subset of cert-manager.io/v1 that deploy/ uses, strict like the CRDs.
CERT_MANAGER_SCHEMAS: dict[str, Obj] = {
    "Issuer": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Issuer"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
                "properties": {
                    "selfSigned": {"type": "object", "additionalProperties": False},
                    "ca": {
                        "type": "object",
                        "required": ["secretName"],
                        "additionalProperties": False,
                        "properties": {"secretName": {"type": "string"}},
                    },
                },
            },
        },
    },
    "Certificate": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": "Certificate"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["secretName", "issuerRef"],
                "additionalProperties": False,
                "properties": {
                    "secretName": {"type": "string"},
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "isCA": {"type": "boolean"},
                    "duration": _DURATION,
                    "renewBefore": _DURATION,
                    "usages": {
                        "type": "array",
                        "items": {"enum": ["server auth", "digital signature", "key encipherment"]},
                    },
                    "privateKey": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                            "size": {"type": "integer"},
                            "rotationPolicy": {"enum": ["Never", "Always"]},
                        },
                    },
                    "issuerRef": _ISSUER_REF,
                },
            },
        },
    },
}


def _cert_manager_objects() -> list[Obj]:
    return [
        o
        for o in rendered("overlays/cert-manager")
        if o["apiVersion"].startswith("cert-manager.io/")
    ]


def _hours(duration: str) -> float:
    units = {"h": 1.0, "m": 1 / 60, "s": 1 / 3600, "ms": 1 / 3_600_000}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", duration))


def test_cert_manager_objects_match_their_schemas() -> None:
    objs = _cert_manager_objects()
    assert {o["kind"] for o in objs} == {"Issuer", "Certificate"}
    for obj in objs:
        jsonschema.validate(obj, CERT_MANAGER_SCHEMAS[obj["kind"]])
        spec = obj["spec"]
        if "duration" in spec:
            assert _hours(spec["renewBefore"]) < _hours(spec["duration"])


@pytest.mark.parametrize(
    ("kind", "breaker"),
    [
        ("Certificate", lambda spec: spec.update(dnsName=["x"])),
        ("Certificate", lambda spec: spec.update(duration="90d")),
        ("Certificate", lambda spec: spec.pop("secretName")),
        ("Issuer", lambda spec: spec.update(ca={"secret": "x"})),
        ("Issuer", lambda spec: spec.update(ca={"secretName": "x"}, selfSigned={})),
    ],
)
def test_cert_manager_schemas_reject_broken_copies(
    kind: str, breaker: Callable[[Obj], Any]
) -> None:
    obj = copy.deepcopy(next(o for o in _cert_manager_objects() if o["kind"] == kind))
    breaker(obj["spec"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(obj, CERT_MANAGER_SCHEMAS[kind])


def test_cert_manager_wiring() -> None:
    """inject-ca-from -> serving Certificate -> mounted Secret; CA chain up to selfSigned."""
    objs = rendered("overlays/cert-manager")
    annotation = mwc(objs)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    namespace, name = annotation.split("/")
    serving = m.find(objs, "Certificate", name)
    assert serving["metadata"]["namespace"] == namespace == NS
    (tls,) = [v for v in pod_spec(objs)["volumes"] if "secret" in v]
    assert serving["spec"]["secretName"] == tls["secret"]["secretName"] == TLS_SECRET
    svc = m.find(objs, "Service", WEBHOOK)
    api_server_name = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
    assert api_server_name in serving["spec"]["dnsNames"]
    assert "server auth" in serving["spec"]["usages"]
    assert not serving["spec"].get("isCA")

    ca_issuer = m.find(
        objs,
        serving["spec"]["issuerRef"].get("kind", "Issuer"),
        serving["spec"]["issuerRef"]["name"],
    )
    (ca_cert,) = [
        c
        for c in m.iter_kind(objs, "Certificate")
        if c["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
    ]
    assert ca_cert["spec"]["isCA"] is True
    root = m.find(objs, "Issuer", ca_cert["spec"]["issuerRef"]["name"])
    assert root["spec"] == {"selfSigned": {}}


def test_plain_deploy_has_no_cert_manager_dependency() -> None:
    objs = rendered()
    assert not [o for o in objs if o["apiVersion"].startswith("cert-manager.io/")]
    assert "cert-manager.io/inject-ca-from" not in (mwc(objs)["metadata"].get("annotations") or {})


# --------------------------------------------------------------------------- CEL


def _pod(
    containers: list[Obj] | None = None,
    init: list[Obj] | None = None,
    annotations: dict[str, str] | None = None,
) -> Obj:
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "p-", "namespace": "team-a"},
        "spec": {"containers": containers if containers is not None else [{"name": "main"}]},
    }
    if init is not None:
        pod["spec"]["initContainers"] = init
    if annotations is not None:
        pod["metadata"]["annotations"] = annotations
    return pod


def _ctr(
    limits: dict[str, str] | None = None, requests: dict[str, str] | None = None, **extra: Any
) -> Obj:
    resources: Obj = {}
    if limits is not None:
        resources["limits"] = limits
    if requests is not None:
        resources["requests"] = requests
    return {"name": "c", "image": "busybox", "resources": resources, **extra}


CPU = {"cpu": "500m", "memory": "1Gi"}
SAMPLE_PODS = {
    "no-resources-field": _pod([{"name": "main", "image": "busybox"}]),
    "empty-resources": _pod([_ctr()]),
    "cpu-only": _pod([_ctr(CPU, CPU)]),
    "claims-only": _pod([{"name": "c", "resources": {"claims": [{"name": "gpu"}]}}]),
    "plain-init": _pod([_ctr(CPU)], init=[_ctr(CPU)]),
    "empty-init-list": _pod([_ctr(CPU)], init=[]),
    "other-annotations": _pod([_ctr(CPU)], annotations={"team": "a", "gpu-fraction-hint": "x"}),
    "whole-gpu": _pod([_ctr({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"})]),
    "hami-request-only": _pod([_ctr(requests={"nvidia.com/gpumem": "4096"})]),
    "hami-percentage": _pod([_ctr({"nvidia.com/gpu": "1", "nvidia.com/gpumem-percentage": "50"})]),
    "hami-cores": _pod([_ctr({"nvidia.com/gpucores": "30"})]),
    "volcano": _pod([_ctr({"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-memory": "2048"})]),
    "koordinator-ratio": _pod([_ctr({"koordinator.sh/gpu-memory-ratio": "50"})]),
    "koordinator-shared": _pod([_ctr({"koordinator.sh/gpu.shared": "2"})]),
    "gpushare": _pod([_ctr({"aliyun.com/gpu-mem": "4"})]),
    "gpu-in-second-container": _pod([_ctr(CPU), _ctr({"nvidia.com/gpu": "1"})]),
    "gpu-only-in-init": _pod([_ctr(CPU)], init=[_ctr({"nvidia.com/gpu": "1"})]),
    "kai-fraction": _pod([_ctr(CPU)], annotations={"gpu-fraction": "0.5"}),
    "kai-memory": _pod([{"name": "main"}], annotations={"gpu-memory": "2000"}),
    "mig-is-not-a-dialect": _pod([_ctr({"nvidia.com/mig-1g.5gb": "1"})]),
    "amd-is-not-a-dialect": _pod([_ctr({"amd.com/gpu": "1"})]),
}
EXPECTED_GPU = {
    "whole-gpu",
    "hami-request-only",
    "hami-percentage",
    "hami-cores",
    "volcano",
    "koordinator-ratio",
    "koordinator-shared",
    "gpushare",
    "gpu-in-second-container",
    "gpu-only-in-init",
    "kai-fraction",
    "kai-memory",
}

CANDIDATE_KEYS = sorted(
    GPU_EXACT_KEYS
    | {"volcano.sh/vgpu-number", "volcano.sh/vgpu-memory-percentage", "volcano.sh/vgpu-cores"}
    | {"koordinator.sh/gpu", "koordinator.sh/gpu-core", "koordinator.sh/gpu-memory"}
    | {"cpu", "memory", "ephemeral-storage", "hugepages-2Mi", "nvidia.com/mig-1g.5gb"}
    | {"example.com/gpu", "aliyun.com/gpu-count", "volcano.sh/vgpu", "nvidia.com/gpus"}
)
PLACEMENTS = [
    (lst, section, index)
    for lst in ("containers", "initContainers")
    for section in ("limits", "requests")
    for index in (0, 1)
]


def _placed(key: str, lst: str, section: str, index: int) -> Obj:
    ctrs = [_ctr(CPU, CPU), _ctr(CPU, CPU)]
    ctrs[index]["resources"][section] = {**CPU, key: "1"}
    pod = _pod([_ctr(CPU)])
    pod["spec"][lst] = ctrs
    return pod


def test_reference_predicate_matches_the_table() -> None:
    """The Python statement of intent agrees with the hand-written expectations."""
    assert {name for name, pod in SAMPLE_PODS.items() if requests_gpu(pod)} == EXPECTED_GPU


Evaluator = Callable[[str, Obj], bool]


def make_evaluator(celpy: Any, objs: list[Obj]) -> Evaluator:
    """Compile both webhooks' matchConditions from ``objs``; evaluate them on a pod."""
    env = celpy.Environment()
    programs = {
        name: env.program(env.compile(condition(objs, name))) for name in EXPECTED_FAILURE_POLICY
    }

    def evaluate(webhook_name: str, pod: Obj) -> bool:
        result = programs[webhook_name].evaluate({"object": celpy.json_to_cel(pod)})
        assert isinstance(result, celpy.celtypes.BoolType), result
        return bool(result)

    return evaluate


@pytest.fixture(scope="module")
def celpy() -> Any:
    """cel-python, a pure-Python CEL implementation (the tests skip without it).

    It is more lenient than cel-go in one place: ``has(a.b.c)`` with ``a.b``
    absent is false there but an error in Kubernetes, so check_match_conditions
    insists on the ``has(c.resources)`` guard structurally.
    """
    return pytest.importorskip("celpy", reason="cel-python not installed: CEL not evaluated")


@pytest.fixture(scope="module")
def cel(celpy: Any) -> Evaluator:
    return make_evaluator(celpy, rendered())


def _assert_routed(cel: Evaluator, pod: Obj, gpu: bool) -> None:
    assert cel(GPU, pod) is gpu
    assert cel(GENERAL, pod) is (not gpu), "exactly one webhook must see every pod"


@pytest.mark.parametrize("name", list(SAMPLE_PODS))
def test_cel_routes_sample_pods(cel: Evaluator, name: str) -> None:
    _assert_routed(cel, SAMPLE_PODS[name], name in EXPECTED_GPU)


def test_cel_routes_every_candidate_key(cel: Evaluator) -> None:
    for key in CANDIDATE_KEYS:
        pod = _placed(key, "containers", "limits", 0)
        assert cel(GPU, pod) is is_gpu_key(key), key
        assert cel(GENERAL, pod) is not is_gpu_key(key), key


@pytest.mark.parametrize(("lst", "section", "index"), PLACEMENTS)
def test_cel_finds_gpu_wherever_it_is_requested(
    cel: Evaluator, lst: str, section: str, index: int
) -> None:
    _assert_routed(cel, _placed("volcano.sh/vgpu-memory", lst, section, index), gpu=True)
    _assert_routed(cel, _placed("hugepages-2Mi", lst, section, index), gpu=False)


@pytest.mark.parametrize(
    ("mutation_id", "pod_name"),
    [
        ("gpu-skips-init", "gpu-only-in-init"),
        ("gpu-drops-aliyun", "gpushare"),
        ("not-complement", "cpu-only"),
    ],
)
def test_cel_tests_catch_a_broken_condition(celpy: Any, mutation_id: str, pod_name: str) -> None:
    """The evaluation above is not vacuous: a wrong expression misroutes a sample pod."""
    (row,) = [row for row in MUTATIONS if row[0] == mutation_id]
    objs = rendered()
    apply_mutation(objs, *row[2:])
    broken = make_evaluator(celpy, objs)
    with pytest.raises(AssertionError):
        _assert_routed(broken, SAMPLE_PODS[pod_name], pod_name in EXPECTED_GPU)
