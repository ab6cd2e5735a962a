"""Seeded pending-pod mixes for the provisioner benchmark, as raw Pod dicts.

Pods look as they do after spotpack's webhook mutated them: the capacity
decision in ``spotpack.io/capacity-applied``, a required node affinity on
``karpenter.sh/capacity-type`` for spot-only and on-demand-only pods, vGPU
requests in HAMi's canonical form.

Mixes (``size`` pods each, the same ``seed`` giving the same pods):

* ``cpu``: Spark applications, 1 driver (on-demand only) and 4-60 executors
  (spot only) each; executors 1-8 vCPU, 2-32 GiB, identical within an app.
* ``gpu``: inference deployments of 2-12 replicas (spot-preferred; one in
  five on-demand only): vGPU slices of 2-24 GiB, some whole cards, some two
  vGPUs per replica.
* ``mixed``: Spark apps with spot-preferred executors, a third arm64-only,
  one in five pinned to a zone, plus GPU deployments (a sixth of the pods).

Seed scenarios: ``spark_seed`` (1 driver + 20 executors) and
``inference_seed`` (6 replicas of 8 GiB vGPU slices).
"""

from __future__ import annotations

import random
from typing import Any

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
CAPACITY_KEY = "karpenter.sh/capacity-type"
GIB = 1024

Pod = dict[str, Any]


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu_m: int,
    mem_mib: int,
    capacity: str,
    labels: dict[str, str] | None = None,
    gpu: dict[str, str] | None = None,
    arch: str | None = None,
    zone: str | None = None,
    owner_uid: str | None = None,
) -> Pod:
    """A pending pod; ``capacity`` is spot, on-demand, spot-preferred or any."""
    requests: dict[str, str] = {"cpu": f"{cpu_m}m", "memory": f"{mem_mib}Mi"}
    limits: dict[str, str] = {"memory": f"{mem_mib}Mi"}
    if gpu:
        requests.update(gpu)
        limits.update(gpu)
    terms: list[dict[str, Any]] = []
    if capacity == "spot":
        terms.append({"key": CAPACITY_KEY, "operator": "In", "values": ["spot"]})
    elif capacity == "on-demand":
        terms.append({"key": CAPACITY_KEY, "operator": "NotIn", "values": ["spot"]})
    if zone:
        terms.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]})
    spec: dict[str, Any] = {
        "containers": [
            {"name": "main", "image": "app", "resources": {"requests": requests, "limits": limits}}
        ]
    }
    if terms:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": terms}]
                }
            }
        }
    if arch:
        spec["nodeSelector"] = {"kubernetes.io/arch": arch}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": labels or {},
        "annotations": {"spotpack.io/capacity-applied": capacity},
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {"kind": "ReplicaSet", "name": "rs", "uid": owner_uid, "controller": True}
        ]
    return {"metadata": metadata, "spec": spec, "status": {"phase": "Pending"}}


def _spark_app(
    rng: random.Random,
    app: str,
    executors: int,
    *,
    executor_capacity: str,
    arch: str | None = None,
    zone: str | None = None,
) -> list[Pod]:
    cpu = rng.choice((1, 2, 4, 8))
    mem = min(max(cpu * rng.choice((2, 4, 8)), 2), 32)
    labels = {"spark-app-selector": app, "spark-role": "driver"}
    drv_cpu = rng.choice((1, 2, 4))
    out = [
        pod(
            f"{app}-driver",
            cpu_m=drv_cpu * 1000,
            mem_mib=drv_cpu * 4 * GIB,
            capacity="on-demand",
            labels=labels,
            arch=arch,
            zone=zone,
        )
    ]
    labels = {"spark-app-selector": app, "spark-role": "executor"}
    out.extend(
        pod(
            f"{app}-exec-{i}",
            cpu_m=cpu * 1000,
            mem_mib=mem * GIB,
            capacity=executor_capacity,
            labels=labels,
            arch=arch,
            zone=zone,
        )
        for i in range(1, executors + 1)
    )
    return out


def _gpu_deployment(rng: random.Random, name: str, replicas: int) -> list[Pod]:
    shape = rng.random()
    if shape < 0.15:
        gpu = {"nvidia.com/gpu": "1"}  # a whole card
    elif shape < 0.3:
        gpu = {"nvidia.com/gpu": "2", "nvidia.com/gpumem": str(rng.choice((4, 8, 12)) * GIB)}
    else:
        gpu = {
            "nvidia.com/gpu": "1",
            "nvidia.com/gpumem": str(rng.choice((2, 4, 6, 8, 12, 16, 20, 24)) * GIB),
        }
    capacity = "on-demand" if rng.random() < 0.2 else "spot-preferred"
    cpu = rng.choice((1, 2, 4))
    mem = cpu * rng.choice((2, 4)) * GIB
    return [
        pod(
            f"{name}-{i}",
            cpu_m=cpu * 1000,
            mem_mib=mem,
            capacity=capacity,
            gpu=gpu,
            owner_uid=f"rs-{name}",
            labels={"app": name},
        )
        for i in range(replicas)
    ]


def _fill(rng: random.Random, size: int, make: Any) -> list[Pod]:
    pods: list[Pod] = []
    n = 0
    while len(pods) < size:
        pods.extend(make(rng, n, size - len(pods)))
        n += 1
    return pods[:size]


def cpu_mix(size: int, seed: int = 1) -> list[Pod]:
    """Spark apps: drivers on-demand only, executors spot only."""
    rng = random.Random(f"cpu-{size}-{seed}")

    def make(r: random.Random, n: int, left: int) -> list[Pod]:
        return _spark_app(
            r, f"app{n:04d}", min(r.randint(4, 60), max(left - 1, 1)), executor_capacity="spot"
        )

    return _fill(rng, size, make)


def gpu_mix(size: int, seed: int = 1) -> list[Pod]:
    """Inference deployments with vGPU slices, whole cards and 2-vGPU replicas."""
    rng = random.Random(f"gpu-{size}-{seed}")

    def make(r: random.Random, n: int, left: int) -> list[Pod]:
        return _gpu_deployment(r, f"inf{n:04d}", min(r.randint(2, 12), left))

    return _fill(rng, size, make)


def mixed_mix(size: int, seed: int = 1) -> list[Pod]:
    """Spark apps with spot-preferred executors, some arm64-only or zone-pinned, plus GPU pods."""
    rng = random.Random(f"mixed-{size}-{seed}")

    def make(r: random.Random, n: int, left: int) -> list[Pod]:
        if r.random() < 1 / 6:
            return _gpu_deployment(r, f"inf{n:04d}", min(r.randint(2, 12), left))
        arch = "arm64" if r.random() < 1 / 3 else None
        zone = r.choice(ZONES) if r.random() < 0.2 else None
        executors = min(r.randint(4, 60), max(left - 1, 1))
        return _spark_app(
            r, f"app{n:04d}", executors, executor_capacity="spot-preferred", arch=arch, zone=zone
        )

    return _fill(rng, size, make)


MIXES = {"cpu": cpu_mix, "gpu": gpu_mix, "mixed": mixed_mix}


def spark_seed() -> list[Pod]:
    """A Spark job: 1 driver (2 vCPU, 8 GiB, on-demand) and 20 executors (4 vCPU, 16 GiB, spot)."""
    app = "spark-seed"
    out = [
        pod(
            f"{app}-driver",
            cpu_m=2000,
            mem_mib=8 * GIB,
            capacity="on-demand",
            labels={"spark-app-selector": app, "spark-role": "driver"},
        )
    ]
    out.extend(
        pod(
            f"{app}-exec-{i}",
            cpu_m=4000,
            mem_mib=16 * GIB,
            capacity="spot",
            labels={"spark-app-selector": app, "spark-role": "executor"},
        )
        for i in range(1, 21)
    )
    return out


def inference_seed() -> list[Pod]:
    """An inference service: 6 replicas, each one vGPU of 8 GiB, 2 vCPU, 8 GiB (spot-preferred)."""
    return [
        pod(
            f"infer-{i}",
            cpu_m=2000,
            mem_mib=8 * GIB,
            capacity="spot-preferred",
            gpu={"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(8 * GIB)},
            owner_uid="rs-infer",
            labels={"app": "infer"},
        )
        for i in range(6)
    ]


SEEDS = {"spark 1 driver + 20 executors": spark_seed, "inference 6 x 8 GiB vGPU": inference_seed}
