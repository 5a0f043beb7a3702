"""Allocation speed: the fast LP-hull frontier against the exact MILP, in one run.

    .venv/bin/python bench/bench_allocate.py [--big 1000000] [--mid 100000] [--small 20000]

1. fast on `big` customers × 4 offers: frontier build + integral plan; then re-answering new
   budgets (totals in O(log S), and the full per-customer plan).
2. exact (CBC) vs fast on `mid` customers: time ratio and value gap.
3. CBC vs HiGHS on `small` customers (both at relative gap 1e-9): which exact engine to default to.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.decision.allocate import Frontier, allocate_exact, allocate_fast  # noqa: E402
from core.decision.policy import prune  # noqa: E402


def instance(n: int, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    values = rng.normal(1.0, 2.0, (n, k))
    costs = rng.gamma(2.0, 1.0, (n, k))
    return prune(tuple(f"offer{j}" for j in range(k)), values, costs, cpi_max=3.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--mid", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    args = parser.parse_args()

    big = instance(args.big)
    budget = 0.1 * args.big
    start = time.perf_counter()
    frontier = Frontier(big)
    build = time.perf_counter() - start
    start = time.perf_counter()
    plan = allocate_fast(big, budget, "none", frontier)
    first_plan = time.perf_counter() - start
    budgets = np.linspace(0.01, 0.3, 25) * args.big
    start = time.perf_counter()
    for b in budgets:
        frontier.at(b)
    totals = (time.perf_counter() - start) / len(budgets)
    start = time.perf_counter()
    for b in budgets[:5]:
        frontier.plan(b, fill=False)
    full = (time.perf_counter() - start) / 5
    print(f"fast, {args.big:,} customers × 4 offers: frontier {build:.2f} s + plan {first_plan:.2f} s = {build + first_plan:.2f} s "
          f"(value {plan.total_value:,.0f}, gap to LP bound {plan.gap:.2e})")
    print(f"re-answering a budget: totals {totals * 1e3:.3f} ms; full per-customer plan {full * 1e3:.1f} ms")

    mid = instance(args.mid, seed=1)
    budget = 0.1 * args.mid
    start = time.perf_counter()
    fast = allocate_fast(mid, budget, "none")
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    exact = allocate_exact(mid, budget, "none", solver="cbc")
    t_exact = time.perf_counter() - start
    print(f"{args.mid:,} customers: exact (CBC) {t_exact:.1f} s vs fast {t_fast:.3f} s → {t_exact / t_fast:,.0f}× faster; "
          f"fast value {fast.total_value:,.2f} vs exact {exact.total_value:,.2f} (relative gap {(exact.total_value - fast.total_value) / exact.total_value:.2e})")

    small = instance(args.small, seed=2)
    budget = 0.1 * args.small
    timings = {}
    for solver in ("cbc", "highs"):
        start = time.perf_counter()
        result = allocate_exact(small, budget, "none", solver=solver)
        timings[solver] = (time.perf_counter() - start, result.total_value)
    print(f"{args.small:,} customers, exact engines at gap 1e-9: CBC {timings['cbc'][0]:.1f} s (value {timings['cbc'][1]:,.3f}), "
          f"HiGHS {timings['highs'][0]:.1f} s (value {timings['highs'][1]:,.3f})")


if __name__ == "__main__":
    main()
