"""All six OPE estimators with 1,000-resample bootstrap intervals on 1 million logged rows,
against a naive loop that resamples rows and recomputes every estimator (timed on a few
resamples, extrapolated to 1,000).

    .venv/bin/python bench/bench_ope.py [--rows 1000000] [--naive 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.ope.estimators import _from_sums, _stats_matrix, estimate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, k = args.rows, 4
    propensity_matrix = rng.dirichlet(np.ones(k) * 2, n)
    logged = (rng.uniform(size=(n, 1)) > np.cumsum(propensity_matrix, axis=1)).sum(axis=1).clip(0, k - 1)
    p = propensity_matrix[np.arange(n), logged]
    target = np.eye(k)[rng.integers(0, k, n)]
    q = rng.normal(10, 2, (n, k))
    y = q[np.arange(n), logged] + rng.normal(0, 5, n)
    pi_logged, q_logged, q_policy = target[np.arange(n), logged], q[np.arange(n), logged], (target * q).sum(axis=1)

    start = time.perf_counter()
    result = estimate(y, p, pi_logged, q_logged, q_policy, n_boot=1000, seed=0)
    t_fast = time.perf_counter() - start

    start = time.perf_counter()
    naive = []
    for _ in range(args.naive):
        rows = rng.integers(0, n, n)
        w = pi_logged[rows] / p[rows]
        naive.append(_from_sums(_stats_matrix(y[rows], q_logged[rows], q_policy[rows], w, np.inf).sum(axis=0)))
    per = (time.perf_counter() - start) / args.naive
    print(f"rows {n:,}: six estimators + 1,000-resample intervals in {t_fast:.2f} s")
    print(f"naive loop: {per:.3f} s per resample → {per * 1000:.0f} s for 1,000 (measured on {args.naive}) → ratio {per * 1000 / t_fast:.0f}x")
    for name in ("ips", "dr", "snips"):
        sd_naive = np.std([r[name] for r in naive], ddof=1)
        print(f"  {name}: {result.estimates[name].value:.4f}, bootstrap SE {result.estimates[name].se:.4f} (naive {sd_naive:.4f} from {args.naive})")


if __name__ == "__main__":
    main()
