"""``spotpack simulate``: replay a workload scenario through the real services, report cost.

A scenario (YAML, :mod:`.scenario`) says which workloads start and stop when,
how many replicas they want over time, and how often spot nodes are
interrupted. The engine (:mod:`.engine`) plays the parts a cluster has and the
stack lacks -- workload controllers, kube-scheduler (:mod:`.scheduler`), the
kubelet, the cloud's interruption warnings -- and sends every pod through the
real webhook, extender and provisioner over HTTP. What it observes is sampled
(:mod:`.observe`); every figure of the report (:mod:`.metrics`,
:mod:`.baseline`, :mod:`.report`) is computed from those samples, never from
constants.
"""
