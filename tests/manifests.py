"""Load the kustomize trees under deploy/ and validate objects offline.

A deliberately small stand-in for ``kustomize build`` so the manifests can be
tested without the binary: it follows ``resources``, ``components``,
``patches`` (strategic-merge patches given by ``path``) and
``configMapGenerator`` (``envs``, ``files``, ``literals``, ``behavior``,
``options.labels``/``annotations``; names get kustomize's content hash and
every reference from a pod template is rewritten) and refuses every other
kustomization feature, so what the tests see is what kustomize renders
(test_deploy_install.py compares it with ``kubectl kustomize`` where kubectl is
installed). A kustomization that starts using a transformer (namespace, labels,
images, ...) must teach this module first, or the tests fail loudly.

Validation uses the Kubernetes JSON schemas that the ``kubernetes-validate``
package ships (one directory per Kubernetes minor version, with a ``-strict``
variant in which every object has ``additionalProperties: false``, so unknown
fields are rejected like the API server's strict field validation). The
package's own ``validate()`` re-reads a 1.2 MB definitions file on every call;
here the compiled validators are cached per (version, kind, apiVersion).

For property tests it also offers a small RBAC authorizer (:class:`RBAC`: may
this ServiceAccount do that, given the rendered bindings and the built-in roles
they name) and :func:`edit`, which makes deliberately broken copies.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from packaging.version import Version
from referencing import Registry, Resource

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy"

KUSTOMIZATION_FILE = "kustomization.yaml"
SUPPORTED_KEYS = frozenset(
    {"apiVersion", "kind", "resources", "components", "patches", "configMapGenerator"}
)
GENERATOR_KEYS = frozenset(
    {"name", "namespace", "behavior", "envs", "files", "literals", "options"}
)
GENERATOR_OPTION_KEYS = frozenset({"labels", "annotations"})
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
KINDS = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}

Obj = dict[str, Any]


class KustomizeError(Exception):
    """The tree uses something this loader does not understand, or is inconsistent."""


@dataclass
class Tree:
    """What one kustomization renders to, and every file it read on the way.

    ``patches`` is only used for a Component: kustomize applies a component's
    patches to the objects of the kustomization that lists it, so they are
    handed to the parent rather than applied to the component's own objects.
    """

    objects: list[Obj] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)
    patches: list[Obj] = field(default_factory=list)
    generators: list[tuple[str, Obj]] = field(default_factory=list)
    """(behavior, ConfigMap) of a Component, applied to the parent like its patches."""
    generated: set[tuple[str, str]] = field(default_factory=set)
    """(namespace, name) of the ConfigMaps generators made: hashed at the end of render()."""


# --------------------------------------------------------------------------- YAML


def load_yaml_documents(path: Path) -> list[Obj]:
    """Every non-empty YAML document in ``path``; each must be a mapping."""
    with path.open(encoding="utf-8") as fh:
        docs = [doc for doc in yaml.safe_load_all(fh) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise KustomizeError(f"{path}: document is not a mapping: {doc!r}")
    return docs


# --------------------------------------------------------------------------- kustomize


def _read_kustomization(directory: Path, kind: str) -> Obj:
    path = directory / KUSTOMIZATION_FILE
    if not path.is_file():
        raise KustomizeError(f"{directory}: no {KUSTOMIZATION_FILE}")
    (doc,) = load_yaml_documents(path)
    if doc.get("kind") != kind or doc.get("apiVersion") != KINDS[kind]:
        raise KustomizeError(f"{path}: expected {KINDS[kind]} {kind}")
    unknown = set(doc) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported kustomization keys {sorted(unknown)}")
    return doc


def _entry_path(directory: Path, entry: object) -> Path:
    if not isinstance(entry, str) or "://" in entry or entry.startswith("git@"):
        raise KustomizeError(f"{directory}: only local paths are supported, got {entry!r}")
    path = (directory / entry).resolve()
    if path.is_dir() and (path == directory or path in directory.parents):
        # kustomize: "cycle detected: candidate root contains visited root".
        raise KustomizeError(f"{directory}: {entry!r} contains this kustomization (a cycle)")
    if path.is_file() and directory not in path.parents:
        # kustomize's default load restrictor: files must live under the root.
        raise KustomizeError(f"{directory}: file {entry!r} is outside the kustomization root")
    return path


def _identity(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def render(directory: Path) -> Tree:
    """Render the kustomization in ``directory`` (recursively) like ``kustomize build``."""
    tree = _build(directory.resolve(), "Kustomization")
    _hash_generated_names(tree)
    seen: set[tuple[str, str, str]] = set()
    for obj in tree.objects:
        ident = _identity(obj)
        if ident in seen:
            raise KustomizeError(f"{directory}: duplicate object {ident}")
        seen.add(ident)
    return tree


def _build(directory: Path, kind: str) -> Tree:
    kustomization = _read_kustomization(directory, kind)
    tree = Tree(files={directory / KUSTOMIZATION_FILE})
    for entry in kustomization.get("resources", []):
        path = _entry_path(directory, entry)
        if path.is_dir():
            sub = _build(path, "Kustomization")
            tree.objects.extend(sub.objects)
            tree.files |= sub.files
            tree.generated |= sub.generated
        else:
            tree.objects.extend(load_yaml_documents(path))
            tree.files.add(path)
    for entry in kustomization.get("components", []):
        component = _build(_entry_path(directory, entry), "Component")
        tree.objects.extend(component.objects)
        tree.files |= component.files
        tree.generated |= component.generated
        for behavior, config_map in component.generators:
            _add_generated(tree, behavior, config_map)
        for patch in component.patches:
            tree.objects = apply_patch(tree.objects, patch)
    for behavior, config_map in _generators(directory, kustomization, tree):
        if kind == "Component":
            tree.generators.append((behavior, config_map))
        else:
            _add_generated(tree, behavior, config_map)
    own_patches = []
    for path in _patch_paths(directory, kustomization):
        tree.files.add(path)
        own_patches.extend(load_yaml_documents(path))
    if kind == "Component":
        tree.patches = own_patches
    else:
        for patch in own_patches:
            tree.objects = apply_patch(tree.objects, patch)
    return tree


# --------------------------------------------------------------------------- generators


def _generators(directory: Path, kustomization: Obj, tree: Tree) -> list[tuple[str, Obj]]:
    """The ConfigMaps ``configMapGenerator`` describes, with their behavior (unhashed names)."""
    found = []
    for spec in kustomization.get("configMapGenerator", []):
        unknown = set(spec) - GENERATOR_KEYS
        options = spec.get("options") or {}
        unknown |= {f"options.{k}" for k in set(options) - GENERATOR_OPTION_KEYS}
        if unknown:
            raise KustomizeError(f"{directory}: unsupported configMapGenerator keys {unknown}")
        behavior = spec.get("behavior", "create")
        if behavior not in ("create", "merge", "replace"):
            raise KustomizeError(f"{directory}: unknown behavior {behavior!r}")
        data: dict[str, str] = {}
        for entry in spec.get("envs", []):
            path = _entry_path(directory, entry)
            tree.files.add(path)
            data.update(parse_env_file(path))
        for entry in spec.get("files", []):
            key, sep, name = entry.partition("=")
            path = _entry_path(directory, name if sep else key)
            tree.files.add(path)
            data[key if sep else path.name] = path.read_text(encoding="utf-8")
        for literal in spec.get("literals", []):
            key, sep, value = literal.partition("=")
            if not sep:
                raise KustomizeError(f"{directory}: literal {literal!r} has no '='")
            data[key] = value
        metadata: Obj = {"name": spec["name"]}
        if spec.get("namespace"):
            metadata["namespace"] = spec["namespace"]
        for key in ("labels", "annotations"):
            if options.get(key):
                metadata[key] = dict(options[key])
        found.append(
            (
                behavior,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data},
            )
        )
    return found


def parse_env_file(path: Path) -> dict[str, str]:
    """kustomize's env-file rules: ``KEY=VALUE`` per line, the value taken verbatim (no
    quotes, trailing blanks kept), leading blanks and ``#`` comment lines skipped.

    A line without ``=`` makes kustomize read the variable from its own
    environment; that would make the rendering depend on the machine, so it is
    an error here.
    """
    pairs: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise KustomizeError(f"{path}:{number}: no '=' (kustomize would read ${key})")
        if not _ENV_NAME.fullmatch(key):
            raise KustomizeError(f"{path}:{number}: {key!r} is not a valid variable name")
        pairs[key] = value
    return pairs


def _add_generated(tree: Tree, behavior: str, config_map: Obj) -> None:
    meta = config_map["metadata"]
    ident = (meta.get("namespace", ""), meta["name"])
    existing = [
        i
        for i, o in enumerate(tree.objects)
        if o.get("kind") == "ConfigMap" and _identity(o)[1:] == ident
    ]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"ConfigMap {ident} is generated twice (use behavior: merge)")
        tree.objects.append(config_map)
        tree.generated.add(ident)
        return
    if not existing or ident not in tree.generated:
        raise KustomizeError(f"behavior {behavior}: no generated ConfigMap {ident} to change")
    current = tree.objects[existing[0]]
    merged = copy.deepcopy(current)
    for key in ("labels", "annotations"):
        if key in meta:
            merged["metadata"][key] = {**merged["metadata"].get(key, {}), **meta[key]}
    base = merged.get("data", {}) if behavior == "merge" else {}
    merged["data"] = {**base, **config_map["data"]}
    tree.objects[existing[0]] = merged


def kustomize_hash(config_map: Obj) -> str:
    """The suffix kustomize appends to a generated ConfigMap's name (api/hasher, v5).

    sha256 of Go's ``json.Marshal`` of ``{"data", "kind", "name"}`` (keys sorted,
    no spaces, ``<>&`` escaped), first ten hex digits, with 0 1 3 a e replaced
    by g h k m t. ``name`` is always empty: kustomize v5 looks the name up as a
    single field called ``metadata/name``, which never exists, so only the data
    counts (checked against ``kubectl kustomize`` in test_deploy_install.py).
    """
    encoded = json.dumps(
        {"data": config_map.get("data") or {}, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for char, escape in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        encoded = encoded.replace(char, escape)
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _hash_generated_names(tree: Tree) -> None:
    """Append the hash to every generated ConfigMap and point the references at it."""
    renamed: dict[tuple[str, str], str] = {}
    for obj in tree.objects:
        ident = _identity(obj)
        if obj.get("kind") == "ConfigMap" and ident[1:] in tree.generated:
            new_name = f"{ident[2]}-{kustomize_hash(obj)}"
            obj["metadata"]["name"] = new_name
            renamed[ident[1:]] = new_name
    for obj in tree.objects:
        namespace = obj.get("metadata", {}).get("namespace", "")
        for spec in pod_specs(obj):
            for ref in _config_map_refs(spec):
                new_name = renamed.get((namespace, ref.get("name", "")))
                if new_name:
                    ref["name"] = new_name


def pod_specs(obj: Obj) -> list[Obj]:
    """The pod spec(s) inside a workload object (Pod, Deployment, Job, CronJob, ...)."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def _config_map_refs(spec: Obj) -> Iterator[Obj]:
    """Every ``{name: ...}`` that names a ConfigMap in a pod spec (kustomize's nameReference)."""
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield volume["configMap"]
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield source["configMap"]
    for ctr in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        for source in ctr.get("envFrom") or []:
            if "configMapRef" in source:
                yield source["configMapRef"]
        for env in ctr.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref is not None:
                yield ref


def _patch_paths(directory: Path, kustomization: Obj) -> list[Path]:
    paths = []
    for entry in kustomization.get("patches", []):
        if not isinstance(entry, dict) or set(entry) != {"path"}:
            raise KustomizeError(f"{directory}: only `patches: - path: FILE` is supported")
        paths.append(_entry_path(directory, entry["path"]))
    return paths


def strategic_merge(base: Any, patch: Any) -> Any:
    """A strategic merge for the cases deploy/ uses.

    Mappings merge key by key (``null`` deletes); lists of mappings that all
    carry ``name`` merge by name (the patch merge key of containers, volumes,
    env, webhooks, ...), in kustomize's order (the patch's items first, then the
    rest); any other value is replaced.
    """
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if _named_list(base) and _named_list(patch):
        # kustomize's order: the patch's items first (merged with the base item of
        # the same name), then the base items the patch does not name.
        by_name = {item["name"]: item for item in base}
        named = {item["name"] for item in patch}
        merged_list = [
            strategic_merge(by_name[item["name"]], item)
            if item["name"] in by_name
            else copy.deepcopy(item)
            for item in patch
        ]
        return merged_list + [copy.deepcopy(item) for item in base if item["name"] not in named]
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def apply_patch(objects: list[Obj], patch: Obj) -> list[Obj]:
    """Apply one strategic-merge patch to the object it names (kind, name, namespace)."""
    kind, namespace, name = _identity(patch)
    targets = [
        i
        for i, obj in enumerate(objects)
        if obj.get("kind") == kind
        and obj["metadata"].get("name") == name
        and (not namespace or obj["metadata"].get("namespace", "") == namespace)
    ]
    if len(targets) != 1:
        raise KustomizeError(f"patch for {kind} {namespace}/{name} matches {len(targets)} objects")
    result = list(objects)
    result[targets[0]] = strategic_merge(objects[targets[0]], patch)
    return result


# --------------------------------------------------------------------------- schemas


class SchemaNotFoundError(LookupError):
    """No schema for this kind/apiVersion in this Kubernetes version (e.g. a CRD)."""


def _schema_root() -> Path:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return Path(str(root))


@functools.cache
def schema_versions() -> tuple[str, ...]:
    """Kubernetes versions the installed kubernetes-validate ships, oldest first."""
    found = {
        m.group(1)
        for p in _schema_root().iterdir()
        if (m := re.fullmatch(r"v(\d+\.\d+)\.\d+-local-strict", p.name))
    }
    return tuple(sorted(found, key=Version))


def _schema_dir(version: str, strict: bool) -> Path:
    matches = sorted(_schema_root().glob(f"v{version}.*-local{'-strict' if strict else ''}"))
    matches = [m for m in matches if m.name.endswith("-local-strict") == strict]
    if len(matches) != 1:
        raise SchemaNotFoundError(f"kubernetes-validate ships no schemas for {version}")
    return matches[0]


@functools.cache
def _registry(version: str, strict: bool) -> Registry:
    path = _schema_dir(version, strict) / "_definitions.json"
    definitions = json.loads(path.read_text(encoding="utf-8"))
    return Resource.from_contents(definitions) @ Registry()


def schema_file(api_version: str, kind: str, version: str, strict: bool = True) -> Path:
    """kubernetes-validate's file naming: ``rbac.authorization.k8s.io/v1`` -> ``rbac-v1``."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return _schema_dir(version, strict) / f"{kind.lower()}-{group_version}.json"


@functools.cache
def _validator(api_version: str, kind: str, version: str, strict: bool) -> Any:
    path = schema_file(api_version, kind, version, strict)
    if not path.is_file():
        raise SchemaNotFoundError(f"no schema for {api_version} {kind} in Kubernetes {version}")
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_registry(version, strict))


def has_schema(obj: Mapping[str, Any], version: str) -> bool:
    return schema_file(obj["apiVersion"], obj["kind"], version).is_file()


def validation_errors(obj: Mapping[str, Any], version: str, strict: bool = True) -> list[str]:
    """Every schema violation of ``obj`` as "path: message"; empty when valid.

    Raises SchemaNotFoundError for kinds the Kubernetes schemas do not cover.
    """
    validator = _validator(obj["apiVersion"], obj["kind"], version, strict)
    return [
        f"{'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


# --------------------------------------------------------------------------- selectors


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression.

    An empty selector matches everything (as in namespaceSelector/objectSelector).
    """
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            raise ValueError(f"unknown selector operator {op!r}")
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- lookup


def iter_kind(objects: Iterable[Obj], kind: str) -> Iterator[Obj]:
    return (obj for obj in objects if obj.get("kind") == kind)


_HASH_SUFFIX = "-[2456789bcdfghkmt]{10}"  # kustomize_hash's alphabet


def find(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    """The one object of ``kind`` called ``name``; AssertionError otherwise.

    A generated ConfigMap is found by the name its generator gives (without the
    hash suffix kustomize appends).
    """
    objects = list(objects)
    found = [o for o in iter_kind(objects, kind) if o["metadata"].get("name") == name]
    if not found and kind == "ConfigMap":
        pattern = re.compile(re.escape(name) + _HASH_SUFFIX)
        found = [o for o in iter_kind(objects, kind) if pattern.fullmatch(o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------- environment


def container_env(objects: Iterable[Obj], namespace: str, ctr: Obj) -> dict[str, str]:
    """The environment a container starts with, as the kubelet builds it.

    ``envFrom`` first (in order, later sources winning), then ``env`` (winning
    over ``envFrom``). ConfigMap values are looked up in ``objects`` (in
    ``namespace``); what only exists at run time is a marker:
    ``<fieldRef metadata.name>``, ``<secret NAME KEY>``, ``<resource ...>``. A
    ConfigMap or key that is not rendered (and not optional) is an
    AssertionError: the pod would not start.
    """
    objects = list(objects)

    def config_map(name: str) -> dict[str, str]:
        found = [
            o
            for o in iter_kind(objects, "ConfigMap")
            if o["metadata"]["name"] == name and o["metadata"].get("namespace", "") == namespace
        ]
        assert len(found) == 1, f"ConfigMap {namespace}/{name} is not rendered"
        return dict(found[0].get("data") or {})

    env: dict[str, str] = {}
    for source in ctr.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            env.update(
                {prefix + k: v for k, v in config_map(source["configMapRef"]["name"]).items()}
            )
        elif "secretRef" in source:
            env[f"{prefix}<secret {source['secretRef']['name']}>"] = "<secret>"
    for entry in ctr.get("env") or []:
        name, source = entry["name"], entry.get("valueFrom") or {}
        if "value" in entry or not source:
            env[name] = str(entry.get("value", ""))
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = config_map(ref["name"])
            if ref["key"] in data:
                env[name] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"{name}: {ref['name']} has no key {ref['key']}"
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[name] = f"<secret {ref['name']} {ref['key']}>"
        elif "fieldRef" in source:
            env[name] = f"<fieldRef {source['fieldRef']['fieldPath']}>"
        else:
            env[name] = f"<resource {source['resourceFieldRef']['resource']}>"
    return env


# --------------------------------------------------------------------------- RBAC


class RBACError(LookupError):
    """A binding refers to a role that is neither rendered nor a known built-in."""


@dataclass(frozen=True)
class Identity:
    """Who is asking: a user name and the groups the authenticator adds."""

    user: str
    groups: frozenset[str]


def service_account(namespace: str, name: str) -> Identity:
    """The identity the API server gives a ServiceAccount token."""
    return Identity(
        user=f"system:serviceaccount:{namespace}:{name}",
        groups=frozenset(
            {
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            }
        ),
    )


@dataclass(frozen=True)
class Request:
    """One resource request as the RBAC authorizer sees it.

    ``resource`` is the plural, with ``/subresource`` when there is one
    (``pods/binding``). ``namespace`` is empty for cluster-scoped resources and
    for list/watch across all namespaces. ``name`` is empty when the request
    names no object: create, and list/watch without a name field selector.
    """

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Grant:
    """Which binding, role and rule allowed a request."""

    binding: str
    role: str
    rule: Obj


def _subject_matches(subject: Mapping[str, Any], who: Identity) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        namespace, name = subject.get("namespace", ""), subject["name"]
        return who.user == f"system:serviceaccount:{namespace}:{name}"
    if kind == "User":
        return bool(subject["name"] == who.user)
    if kind == "Group":
        return subject["name"] in who.groups
    raise RBACError(f"unknown subject kind {kind!r}")


def _resource_matches(rule_resources: Iterable[str], requested: str) -> bool:
    """RBAC's ResourceMatches: exact, ``*``, or ``*/subresource``; ``pods/*`` matches nothing."""
    subresource = requested.partition("/")[2]
    return any(
        r in ("*", requested) or (subresource and r == f"*/{subresource}") for r in rule_resources
    )


def rule_allows(rule: Mapping[str, Any], request: Request) -> bool:
    """One PolicyRule against one resource request (nonResourceURLs rules never match).

    A rule with ``resourceNames`` matches only requests that name one of them,
    so it never matches create, nor list/watch of the whole collection.
    """
    verbs = rule.get("verbs") or []
    groups = rule.get("apiGroups") or []
    names = rule.get("resourceNames") or []
    return (
        ("*" in verbs or request.verb in verbs)
        and ("*" in groups or request.group in groups)
        and _resource_matches(rule.get("resources") or [], request.resource)
        and (not names or request.name in names)
    )


class RBAC:
    """The RBAC authorizer over rendered objects plus built-in roles.

    ``builtin`` holds the Roles/ClusterRoles the API server creates itself
    (``system:kube-scheduler``, ...) that rendered bindings refer to; a binding
    to a role found in neither raises :class:`RBACError`, so a typo in a
    roleRef cannot pass as "grants nothing". Aggregated ClusterRoles are
    refused rather than guessed.
    """

    def __init__(self, objects: Iterable[Obj], builtin: Iterable[Obj] = ()) -> None:
        objects = list(objects)
        self._roles: dict[tuple[str, str, str], Obj] = {}
        for role in [*builtin, *objects]:  # rendered objects win over built-ins
            if role.get("kind") in ("Role", "ClusterRole"):
                self._roles[_identity(role)] = role
        self.bindings = [
            o for o in objects if o.get("kind") in ("RoleBinding", "ClusterRoleBinding")
        ]

    def role_for(self, binding: Obj) -> Obj:
        ref = binding["roleRef"]
        if ref.get("apiGroup") != "rbac.authorization.k8s.io":
            raise RBACError(
                f"{binding['metadata']['name']}: roleRef apiGroup {ref.get('apiGroup')!r}"
            )
        namespace = binding["metadata"].get("namespace", "") if ref["kind"] == "Role" else ""
        if ref["kind"] == "Role" and binding["kind"] == "ClusterRoleBinding":
            raise RBACError(
                f"{binding['metadata']['name']}: a ClusterRoleBinding cannot bind a Role"
            )
        role = self._roles.get((ref["kind"], namespace, ref["name"]))
        if role is None:
            raise RBACError(
                f"{binding['metadata']['name']}: no {ref['kind']} {namespace}/{ref['name']}"
            )
        if role.get("aggregationRule"):
            raise RBACError(f"{ref['name']}: aggregated ClusterRoles are not evaluated")
        return role

    def bindings_of(self, who: Identity) -> list[Obj]:
        return [
            b
            for b in self.bindings
            if any(_subject_matches(s, who) for s in b.get("subjects") or [])
        ]

    def grants(self, who: Identity, request: Request) -> list[Grant]:
        found = []
        for binding in self.bindings_of(who):
            meta = binding["metadata"]
            if binding["kind"] == "RoleBinding" and meta.get("namespace", "") != request.namespace:
                continue  # a RoleBinding grants only inside its own namespace
            role = self.role_for(binding)
            where = "/".join(
                [binding["kind"], *filter(None, [meta.get("namespace")]), meta["name"]]
            )
            for rule in role.get("rules") or []:
                if rule_allows(rule, request):
                    found.append(Grant(where, role["metadata"]["name"], rule))
        return found

    def allows(self, who: Identity, request: Request) -> bool:
        return bool(self.grants(who, request))


# --------------------------------------------------------------------------- edits
#
# Deliberately broken copies for property tests. A path is dotted keys, `[N]`
# list indexes, `[name=X]` list items by name and `["a.b/c"]` keys containing
# dots (the syntax test_deploy_manifests.py uses).

DELETE = "<delete>"


@dataclass(frozen=True)
class Append:
    value: Any


@dataclass(frozen=True)
class Remove:
    value: Any


@dataclass(frozen=True)
class Replace:
    """Replace the first ``old`` in a string value with ``new``."""

    old: str
    new: str


_PATH_TOKEN = re.compile(r'\.?([A-Za-z_]\w*)|\[(\d+)\]|\[name=([^\]]+)\]|\["([^"]+)"\]')


def _path_tokens(path: str) -> list[str | int | tuple[str]]:
    tokens: list[str | int | tuple[str]] = []
    pos = 0
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if not match:
            raise ValueError(f"bad path {path!r} at {pos}")
        key, index, name, quoted = match.groups()
        tokens.append(int(index) if index else (name,) if name else key or quoted)
        pos = match.end()
    return tokens


def _path_step(node: Any, token: str | int | tuple[str]) -> Any:
    if isinstance(token, tuple):
        (found,) = [item for item in node if item.get("name") == token[0]]
        return found
    return node[token]


def edit(obj: Any, path: str, change: Any) -> None:
    """Change ``obj`` in place at ``path``: set, DELETE, Append, Remove or Replace."""
    *parents, last = _path_tokens(path)
    node: Any = obj
    for token in parents:
        node = _path_step(node, token)
    if change == DELETE:
        if isinstance(last, tuple):
            node.remove(_path_step(node, last))
        else:
            del node[last]
    elif isinstance(change, Append):
        _path_step(node, last).append(copy.deepcopy(change.value))
    elif isinstance(change, Remove):
        _path_step(node, last).remove(change.value)
    elif isinstance(change, Replace):
        if change.old not in node[last]:
            raise ValueError(f"{change.old!r} not in {path}")
        node[last] = node[last].replace(change.old, change.new, 1)
    elif isinstance(last, tuple):
        (index,) = [i for i, item in enumerate(node) if item.get("name") == last[0]]
        node[index] = copy.deepcopy(change)
    else:
        node[last] = copy.deepcopy(change)
