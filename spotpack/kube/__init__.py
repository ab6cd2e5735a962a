"""The Kubernetes adapter: client configuration and watch-based caches.

Only this package (and the dev cluster) imports the kubernetes client; the
core works on the plain dicts it hands over.
"""

from spotpack.kube.config import api_client_for_url, load_api_client
from spotpack.kube.informer import Backoff, Informer, key_for, object_key, strip_managed_fields

__all__ = [
    "Backoff",
    "Informer",
    "api_client_for_url",
    "key_for",
    "load_api_client",
    "object_key",
    "strip_managed_fields",
]
