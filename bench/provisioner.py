"""Provisioner planner benchmark: plan time, plan cost and a MILP lower bound, on generated mixes.

Against the packaged AWS catalog (us-east-1, zones a-c, every type spot and
on-demand), for each mix of :mod:`bench.scenarios` (``cpu``, ``gpu``,
``mixed``) at 100, 1,000 and 10,000 pending pods:

* plan time (median of ``--repeat`` runs; pods are read into ``PodDemand``
  values first, timed apart);
* the plan's cost, $/h, and its risk-adjusted cost (price + interruption
  probability x re-run cost);
* the lower bound from :func:`spotpack.provisioning.bound.lower_bound`
  (scipy's HiGHS) and its solve time, or "not solved in Ns";
* cost / bound.

The mixes plan for a cluster that allows both architectures
(``SPOTPACK_PROVISIONER_ARCHITECTURES=["amd64", "arm64"]``, ``--architectures``):
the ``mixed`` mix pins a third of its applications to arm64.

Then the seed scenarios (a Spark job, an inference service) against the
all-on-demand, whole-GPU baseline, twice: as a default install plans them
(amd64 only: Graviton is opt-in) and with arm64 allowed. No network. Ends
with one line::

    provisioner: cost_vs_bound=X plan_s_10k=Y

X is the worst cost/bound over the sizes up to 1,000 pods where the bound
solved; Y the slowest 10,000-pod plan (median over repeats).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import scipy

from bench.scenarios import MIXES, SEEDS, ZONES
from spotpack.capacity import SCHEMES
from spotpack.catalog import load_catalog
from spotpack.provisioning import (
    Offering,
    Plan,
    PodDemand,
    Resources,
    offerings_from_catalog,
    plan,
    pod_demand,
)
from spotpack.provisioning.bound import Bound, lower_bound, on_demand_baseline

MIP_GAP = 5e-3
"""HiGHS stops when its best solution is within 0.5% of its proven bound; the bound is reported."""
OVERHEAD = Resources(cpu_m=200, mem_mib=300, pods=3)
"""Daemonsets on every node (kube-proxy, CNI, log agent), as a small EKS cluster runs."""


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """HiGHS prints solver chatter from C++ straight to file descriptor 1: silence it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with Path(os.devnull).open("wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def read(pods: list[dict[str, Any]]) -> list[PodDemand]:
    scheme = SCHEMES["karpenter"]
    return [pod_demand(p, scheme, default_rerun_hours=1.0) for p in pods]


def timed_plan(
    demands: list[PodDemand], offerings: list[Offering], repeat: int
) -> tuple[Plan, float]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = plan(demands, (), offerings)
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)


def solve_bound(
    demands: list[PodDemand], offerings: list[Offering], limit: float
) -> tuple[Bound, float]:
    start = time.perf_counter()
    with quiet_stdout():
        bound = lower_bound(demands, offerings, time_limit=limit, mip_gap=MIP_GAP)
    return bound, time.perf_counter() - start


def run_mix(
    name: str,
    make: Callable[[int], list[dict[str, Any]]],
    size: int,
    offerings: list[Offering],
    args: argparse.Namespace,
) -> tuple[float, float | None]:
    pods = make(size)
    start = time.perf_counter()
    demands = read(pods)
    read_s = time.perf_counter() - start
    result, plan_s = timed_plan(demands, offerings, args.repeat if size >= 10_000 else 1)
    total = result.risk_adjusted_cost
    bound_text, ratio_text, ratio = "skipped", "-", None
    if size <= args.bound_max:
        bound, bound_s = solve_bound(demands, offerings, args.bound_limit)
        if bound.value is not None:
            ratio = total / bound.value
            bound_text = f"{bound.value:10.3f} ({bound_s:5.1f}s)"
            ratio_text = f"{ratio:.4f}"
        else:
            bound_text = f"not solved in {args.bound_limit:.0f}s"
    print(
        f"{name:6} {size:6d} {len(result.new_nodes):6d} {plan_s:8.3f} {read_s:7.2f} "
        f"{result.cost_per_hour:11.3f} {total:11.3f}  {bound_text:22} {ratio_text:>8}"
        + (f"  unplaceable={len(result.unplaceable)}" if result.unplaceable else "")
    )
    return plan_s, ratio


DEFAULT_ARCHITECTURES = ("amd64",)
"""SPOTPACK_PROVISIONER_ARCHITECTURES's default: what a default install may launch."""


def seeds(offerings: list[Offering], architectures: tuple[str, ...]) -> None:
    allowed = [o for o in offerings if o.arch in architectures]
    print(
        f"\nseed scenarios, architectures {'+'.join(architectures)} "
        "(baseline: all on-demand, each GPU pod on its own whole cards, same architectures):"
    )
    for name, make in SEEDS.items():
        demands = read(make())
        result = plan(demands, (), allowed)
        base = on_demand_baseline(demands, allowed)
        saving = 1 - result.risk_adjusted_cost / base.cost_per_hour
        types = ", ".join(
            f"{n.instance_type} {n.capacity} x{len(n.pods)} pods" for n in result.new_nodes
        )
        print(
            f"  {name}: plan ${result.cost_per_hour:.3f}/h (risk-adjusted "
            f"${result.risk_adjusted_cost:.3f}/h) vs baseline ${base.cost_per_hour:.3f}/h: "
            f"saves {saving:.1%}\n    nodes: {types}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per 10k plan (median)")
    parser.add_argument("--bound-limit", type=float, default=60.0, help="MILP time limit, s")
    parser.add_argument("--bound-max", type=int, default=10_000, help="largest size to bound")
    parser.add_argument(
        "--architectures",
        default="amd64,arm64",
        help="architectures the mixes may launch (the seeds run amd64 only, then these)",
    )
    args = parser.parse_args()
    architectures = tuple(a for a in args.architectures.split(",") if a)
    catalog = load_catalog()
    offerings = offerings_from_catalog(
        catalog, "us-east-1", ZONES, overhead=OVERHEAD, arches=architectures
    )
    print(
        f"provisioner planner: packaged AWS catalog, us-east-1 zones a-c, {len(offerings)} "
        f"offerings ({'+'.join(architectures)}); daemonsets {OVERHEAD.describe()} per node; "
        "bound = HiGHS's proven "
        f"bound (stops within {MIP_GAP:.1%} of its best solution, {args.bound_limit:.0f}s limit)"
    )
    print(
        f"{'mix':6} {'pods':>6} {'nodes':>6} {'plan_s':>8} {'read_s':>7} {'$/h':>11} "
        f"{'risk-adj':>11}  {'bound $/h (solve)':22} {'cost/bnd':>8}"
    )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    worst_ratio: float | None = None
    plan_10k: float | None = None
    for size in sizes:
        for name in args.mixes.split(","):
            plan_s, ratio = run_mix(name, MIXES[name], size, offerings, args)
            if ratio is not None and size <= 1000:
                worst_ratio = ratio if worst_ratio is None else max(worst_ratio, ratio)
            if size == 10_000:
                plan_10k = plan_s if plan_10k is None else max(plan_10k, plan_s)
    every = offerings_from_catalog(catalog, "us-east-1", ZONES, overhead=OVERHEAD)
    seeds(every, DEFAULT_ARCHITECTURES)
    if architectures != DEFAULT_ARCHITECTURES:
        seeds(every, architectures)
    print(
        f"\nmachine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, scipy {scipy.__version__} (HiGHS)"
    )
    ratio_text = f"{worst_ratio:.3f}" if worst_ratio is not None else "none"
    plan_text = f"{plan_10k:.3f}" if plan_10k is not None else "none"
    print(f"provisioner: cost_vs_bound={ratio_text} plan_s_10k={plan_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
