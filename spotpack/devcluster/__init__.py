"""An in-memory Kubernetes API server for tests, benchmarks and ``make run``.

It speaks enough of the real API (core v1 namespaces, nodes, pods, events,
configmaps, secrets, services; pods/binding, pods/eviction, status
subresources; coordination.k8s.io leases; list/watch with selectors,
resourceVersions and 410 Expired; merge, strategic-merge and JSON patches)
that the kubernetes python client and our informer run against it unchanged,
so every service is tested against a real HTTP server on loopback rather than
against monkeypatched client methods.

Typical use::

    with DevCluster(seed_files=["dev/cluster.yaml"]) as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        cluster.store.compact()            # next watch from an old version: 410
        cluster.store.close_watches()      # every open watch ends
        cluster.store.refuse_evictions()   # evictions answer 429, as a PDB would
        cluster.store.inject_fault("pods/binding", "create", code=500, times=1)

Writes made through ``cluster.store`` bypass the API's rules (as writing to
etcd would): a pod created there keeps the status it was given. Writes through
HTTP follow the API: a created pod starts ``Pending``, a pod's status changes
only through ``pods/status``, its node only through ``pods/binding``.
"""

from spotpack.devcluster.errors import ApiError
from spotpack.devcluster.runner import DevCluster
from spotpack.devcluster.selectors import parse_field_selector, parse_label_selector
from spotpack.devcluster.server import ApiServer
from spotpack.devcluster.store import Store

__all__ = [
    "ApiError",
    "ApiServer",
    "DevCluster",
    "Store",
    "parse_field_selector",
    "parse_label_selector",
]
