"""The resource types the dev cluster serves, and the discovery documents built from them.

One table drives routing, storage, defaults and discovery, so adding a resource
is one line here. Plurals are unique across the served groups, which is why the
store keys objects by plural alone (core ``events`` is served; the duplicate
``events.k8s.io`` view of the same objects is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CRUD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource: where it lives in the URL space and how it behaves."""

    plural: str
    kind: str
    namespaced: bool
    group: str = ""
    version: str = "v1"
    short_names: tuple[str, ...] = ()
    has_status: bool = False

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise (the wire form)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


_TYPES = (
    ResourceType("namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True),
    ResourceType("nodes", "Node", namespaced=False, short_names=("no",), has_status=True),
    ResourceType("pods", "Pod", namespaced=True, short_names=("po",), has_status=True),
    ResourceType("events", "Event", namespaced=True, short_names=("ev",)),
    ResourceType("configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    ResourceType("secrets", "Secret", namespaced=True),
    ResourceType("services", "Service", namespaced=True, short_names=("svc",), has_status=True),
    ResourceType("leases", "Lease", namespaced=True, group="coordination.k8s.io"),
    # `spotpack certs --kube-secret ... --patch-webhook` writes caBundle into ours.
    ResourceType(
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
        group="admissionregistration.k8s.io",
    ),
)

RESOURCES: dict[str, ResourceType] = {t.plural: t for t in _TYPES}
_BY_KIND: dict[tuple[str, str], ResourceType] = {(t.api_version, t.kind): t for t in _TYPES}

# Subresources served, per resource: name -> (kind in discovery, verbs).
SUBRESOURCES: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "pods": {
        "status": ("Pod", STATUS_VERBS),
        "binding": ("Binding", ("create",)),
        "eviction": ("Eviction", ("create",)),
    },
    "nodes": {"status": ("Node", STATUS_VERBS)},
    "namespaces": {"status": ("Namespace", STATUS_VERBS)},
    "services": {"status": ("Service", STATUS_VERBS)},
}

# Field selectors each resource supports besides metadata.name/metadata.namespace,
# with the value a missing field compares as (kube's field-label conversion funcs).
FIELD_LABELS: dict[str, dict[str, str]] = {
    "pods": {
        "spec.nodeName": "",
        "spec.restartPolicy": "",
        "spec.schedulerName": "",
        "spec.serviceAccountName": "",
        "spec.hostNetwork": "false",
        "status.phase": "",
        "status.podIP": "",
        "status.nominatedNodeName": "",
    },
    "nodes": {"spec.unschedulable": "false"},
    "namespaces": {"status.phase": ""},
    "secrets": {"type": ""},
    "events": {
        "involvedObject.kind": "",
        "involvedObject.namespace": "",
        "involvedObject.name": "",
        "involvedObject.uid": "",
        "involvedObject.apiVersion": "",
        "involvedObject.resourceVersion": "",
        "involvedObject.fieldPath": "",
        "reason": "",
        "reportingComponent": "",
        "source": "",
        "type": "",
    },
}


def resource_for(plural: str) -> ResourceType | None:
    return RESOURCES.get(plural)


def resource_for_kind(api_version: str, kind: str) -> ResourceType | None:
    """Map a manifest's ``apiVersion``/``kind`` to its resource (used when seeding)."""
    return _BY_KIND.get((api_version, kind))


def group_versions() -> list[tuple[str, str]]:
    """Every (group, version) served, core group first."""
    seen: list[tuple[str, str]] = []
    for t in _TYPES:
        if (t.group, t.version) not in seen:
            seen.append((t.group, t.version))
    return seen


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The ``APIResourceList`` for one group/version, or None if it is not served."""
    types = [t for t in _TYPES if t.group == group and t.version == version]
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        resources.append(
            {
                "name": t.plural,
                "singularName": t.kind.lower(),
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": list(CRUD_VERBS),
                "shortNames": list(t.short_names),
            }
        )
        for sub, (kind, verbs) in SUBRESOURCES.get(t.plural, {}).items():
            resources.append(
                {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": kind,
                    "verbs": list(verbs),
                }
            )
    if group == "":
        resources.append(
            {
                "name": "bindings",
                "singularName": "binding",
                "namespaced": True,
                "kind": "Binding",
                "verbs": ["create"],
            }
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions() -> dict[str, Any]:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def api_group(group: str) -> dict[str, Any] | None:
    """``/apis/<group>``: one named group, or None if it is not served."""
    versions = [
        {"groupVersion": f"{g}/{v}", "version": v} for g, v in group_versions() if g == group
    ]
    if not group or not versions:
        return None
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def api_group_list() -> dict[str, Any]:
    """``/apis``: every named group."""
    groups = []
    for name in dict.fromkeys(g for g, _ in group_versions() if g):
        doc = api_group(name)
        assert doc is not None
        doc.pop("kind")
        doc.pop("apiVersion")
        groups.append(doc)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def version_info() -> dict[str, str]:
    """``/version``: looks like a v1.30 server so clients that gate on it are content."""
    return {
        "major": "1",
        "minor": "30",
        "gitVersion": "v1.30.0-spotpack-devcluster",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
