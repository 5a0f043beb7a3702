"""Fit speed and quality of the default uplift fit (``auto``) against baselines run in the same process.

    .venv/bin/python bench/bench_fit.py                       # the shipped 50,000-customer sample
    .venv/bin/python bench/bench_fit.py --rows 100000
    .venv/bin/python bench/bench_fit.py --rows 1000000 --folds 3 --skip-econml

Every timing is a ratio against something measured in the same run on the same rows:
- one plain LightGBM regressor (default settings) on the value column: the price of a single model;
- EconML's XLearner with the same folds and the previous fixed LightGBM setting (``backend="econml"``),
  the reference the native backend replaced.
Quality beside speed: √PEHE of the value and cost heads against the simulator's true effects,
averaged over the offers.  Progress lines (what the app's progress bar shows) go to stderr.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.features import lgbm_frame  # noqa: E402
from core.schema import ColumnMap, ExperimentLog  # noqa: E402
from core.simulate import ARMS, simulate  # noqa: E402
from core.uplift.model import UpliftModel  # noqa: E402
from core.uplift.names import model_title  # noqa: E402

MAPPING = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                    segment="lifecycle", time="send_date", id="customer_id")


def pehe(oof: pd.DataFrame, truth: pd.DataFrame, head: str) -> float:
    return float(np.mean([np.sqrt(np.mean((oof[f"tau_{head}__{a}"].to_numpy() - truth[f"true_tau_{head}__{a}"].to_numpy()) ** 2))
                          for a in ARMS[1:]]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=0, help="simulate this many rows (default: the shipped sample)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--skip-econml", action="store_true", help="leave out the EconML reference (slow on 1M rows)")
    args = parser.parse_args()
    if args.rows:
        sim = simulate(args.rows, seed=0)
        frame, truth, source = sim.log, sim.truth, f"simulated {args.rows:,} rows"
    else:
        frame = pd.read_parquet(ROOT / "data" / "sample_campaign.parquet")
        truth = pd.read_parquet(ROOT / "data" / "sample_campaign.parquet.truth.parquet")
        source = f"shipped sample, {len(frame):,} rows"
    log = ExperimentLog.from_frame(frame, MAPPING)

    from lightgbm import LGBMRegressor

    x, _ = lgbm_frame(log.frame, list(log.features))
    start = time.perf_counter()
    LGBMRegressor(n_jobs=2, verbose=-1).fit(x, log.value)
    single = time.perf_counter() - start

    def progress(fraction, message, state={"next": 0.0}):
        if fraction >= state["next"]:
            sys.stderr.write(f"  [{fraction:4.0%}] {message}\n")
            state["next"] = fraction + 0.1

    runs = [("auto (default)", dict(learner="auto")), ("native X-learner", dict(learner="x"))]
    if not args.skip_econml:
        runs.append(("EconML XLearner (reference)", dict(learner="x", backend="econml", tuning="fixed")))
    results = {}
    for name, params in runs:
        start = time.perf_counter()
        model = UpliftModel(folds=args.folds, **params).fit(log, progress=progress)
        seconds = time.perf_counter() - start
        results[name] = (seconds, pehe(model.oof_, truth, "value"), pehe(model.oof_, truth, "cost"),
                         model_title(params["learner"], model))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{source} · 3 offers × 2 heads · {args.folds} folds · one LightGBM fit on the same rows: {single:.2f} s · "
          f"peak RSS {peak_mb:,.0f} MB\n")
    print("| fit | seconds | × one LightGBM fit | √PEHE value | √PEHE cost | chosen |")
    print("|---|---|---|---|---|---|")
    for name, (seconds, pv, pc, title) in results.items():
        print(f"| {name} | {seconds:.1f} | {seconds / single:.0f}× | {pv:.3f} | {pc:.3f} | {title} |")
    if "EconML XLearner (reference)" in results:
        ref = results["EconML XLearner (reference)"][0]
        print(f"\nEconML XLearner / native X-learner: {ref / results['native X-learner'][0]:.1f}× · "
              f"EconML XLearner / auto: {ref / results['auto (default)'][0]:.1f}×")


if __name__ == "__main__":
    main()
