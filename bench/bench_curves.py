"""Qini/uplift curves with 1,000-resample bootstrap bands on 1 million rows, against a naive
loop that resamples rows and recomputes the curve (timed on a few resamples, extrapolated).

    .venv/bin/python bench/bench_curves.py [--rows 1000000] [--naive 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.evaluation.curves import curve_bands, qini_auc_score, qini_curve, uplift_curve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive", type=int, default=20, help="resamples actually run by the naive loop")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    t = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    y = rng.exponential(20, n) * rng.binomial(1, 0.1 + 0.05 * t * (x > 0))
    score = x + rng.normal(scale=1.0, size=n)

    start = time.perf_counter()
    qini_curve(y, score, t)
    uplift_curve(y, score, t)
    point = qini_auc_score(y, score, t)
    t_point = time.perf_counter() - start

    start = time.perf_counter()
    bands = curve_bands(y, score, t, n_boot=1000, seed=0)
    t_fast = time.perf_counter() - start

    start = time.perf_counter()
    naive = []
    for b in range(args.naive):
        rows = rng.integers(0, n, n)
        qini_curve(y[rows], score[rows], t[rows])
        uplift_curve(y[rows], score[rows], t[rows])
        naive.append(qini_auc_score(y[rows], score[rows], t[rows]))
    per_resample = (time.perf_counter() - start) / args.naive
    t_naive = per_resample * 1000

    fast_sd = np.std(bands["qini_auc_replicates"], ddof=1)
    print(f"rows {n:,}: curves + normalised Qini {t_point:.2f} s")
    print(f"1,000-resample bands (sorted once, binned Poisson bootstrap): {t_fast:.2f} s")
    print(f"naive loop: {per_resample:.2f} s per resample → {t_naive:.0f} s for 1,000 (measured on {args.naive}) "
          f"→ ratio naive/fast {t_naive / t_fast:.0f}x")
    print(f"normalised Qini {point:.4f}; bootstrap SD fast {fast_sd:.4f} vs naive {np.std(naive, ddof=1):.4f} "
          f"({args.naive} resamples)")


if __name__ == "__main__":
    main()
