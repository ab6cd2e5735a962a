"""spotpack: put Kubernetes workloads on the cheapest capacity that is safe for them.

The package root holds the shared core: pure values and decisions (roles,
policy, vGPU model, placement, catalog, packing, scoring). Adapters that touch
the outside world live in subpackages: ``kube`` (Kubernetes API), ``cloud``
(cloud APIs), ``tls`` (certificates), ``serving`` (gunicorn). The services
``webhook``, ``extender`` and ``provisioner`` build on this package and never
import each other.
"""

__version__ = "0.1.0"
