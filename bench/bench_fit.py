"""Fit time and peak memory of the default X-learner: 3 offers × 2 heads, cross-fitted.

    .venv/bin/python bench/bench_fit.py --rows 100000 [--folds 5]
    .venv/bin/python bench/bench_fit.py --rows 1000000 --folds 3

Prints wall time, rows per second, the peak resident memory of the process, and the progress
lines the app's progress bar shows.  Baseline in the same run: one plain LightGBM regressor
on the value column (the cost of a single model), so the ratio says how many "single model
fits" the full cross-fitted two-head X-learner costs.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.features import lgbm_frame  # noqa: E402
from core.schema import ColumnMap, ExperimentLog  # noqa: E402
from core.simulate import simulate  # noqa: E402
from core.uplift.learners import UpliftModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    sim = simulate(args.rows, seed=0)
    log = ExperimentLog.from_frame(sim.log, ColumnMap(action="offer", control="no_offer", value="revenue",
                                                      cost="incentive_cost", propensity="propensity",
                                                      segment="lifecycle", time="send_date", id="customer_id"))
    print(f"simulated {args.rows:,} rows in {time.perf_counter() - start:.1f} s", flush=True)

    from lightgbm import LGBMRegressor

    x, _ = lgbm_frame(log.frame, list(log.features))
    start = time.perf_counter()
    LGBMRegressor(n_estimators=200, learning_rate=0.05, num_leaves=7, min_child_samples=100, n_jobs=2,
                  verbose=-1).fit(x, log.value)
    single = time.perf_counter() - start

    def progress(fraction, message):
        print(f"  [{fraction:4.0%}] {message}", flush=True)

    start = time.perf_counter()
    model = UpliftModel(learner="x", folds=args.folds).fit(log, progress=progress)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows {args.rows:,} · folds {args.folds} · X-learner, 3 offers × 2 heads: {seconds:.1f} s "
          f"({args.rows / seconds:,.0f} rows/s) · peak RSS {peak_mb:,.0f} MB")
    print(f"baseline: one LightGBM regressor on all rows {single:.2f} s → the full fit costs {seconds / single:.0f}× that")
    assert model.oof_.notna().all().all()


if __name__ == "__main__":
    main()
