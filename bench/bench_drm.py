"""Direct ranking against two-head learners: area under the cost curve (AUCC) on a suite of
cost structures, and training time.

    .venv/bin/python bench/bench_drm.py                 # the AUCC suite (5 seeds; about 30 minutes)
    .venv/bin/python bench/bench_drm.py --seeds 2 --rows 8000 --skip-cf   # a quick look
    .venv/bin/python bench/bench_drm.py --speed         # 100,000 rows × 3 offers: seconds per fit
    .venv/bin/python bench/bench_drm.py --from-csv runs.csv   # the tables of an earlier run's --csv

Every model is fitted with the same 5 cross-fitting folds and evaluated **out of fold** (no
setting was chosen on these seeds; the suite's seeds start at 100).  Two AUCCs per model and
offer:

- *observed*: the cost curve of the logged outcomes, as `evaluate` computes it (a ranking model
  ranks by its score, a two-head learner by τ value / τ cost);
- *true*: the same ranking with the simulator's true effects summed instead of observed ones
  (no outcome noise; the oracle ranks by the true ratio).

Suite: ``simulate_cost_structure`` with independent, correlated and heavy-tailed costs (two
arms, randomised), and the shipped campaign simulator (three offers, logged propensities:
inverse-propensity weighted).  Models: the direct ranking model with each scorer, its
constrained variant (default CPI limit), the DR-learner, the causal forest, and ``auto`` (the
best two-head learner by the doubly robust criterion).  Means over seeds with a t interval;
the paired difference DRM − auto per seed gives the interval of the comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.evaluation import evaluate, rankings  # noqa: E402
from core.schema import ColumnMap, ExperimentLog  # noqa: E402
from core.simulate import ARMS, COST_STRUCTURES, simulate, simulate_cost_structure  # noqa: E402
from core.uplift.model import UpliftModel  # noqa: E402

CAMPAIGN = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                     segment="lifecycle", time="send_date", id="customer_id")
STRUCTURE = ColumnMap(action="offer", control="no_offer", value="value", cost="cost")
MODELS = {
    "drm · lightgbm": {"learner": "drm", "ranking_scorer": "lightgbm"},
    "drm · linear": {"learner": "drm", "ranking_scorer": "linear"},
    "drm · mlp": {"learner": "drm", "ranking_scorer": "mlp"},
    "cdrm · lightgbm": {"learner": "cdrm", "ranking_scorer": "lightgbm"},
    "DR-learner": {"learner": "dr"},
    "causal forest": {"learner": "cf"},
    "auto (two-head)": {"learner": "auto"},
}


def true_aucc(score: np.ndarray, tau_value: np.ndarray, tau_cost: np.ndarray) -> float:
    order = np.argsort(-score, kind="stable")
    x = np.r_[0.0, np.cumsum(tau_cost[order]) / tau_cost.sum()]
    y = np.r_[0.0, np.cumsum(tau_value[order]) / tau_value.sum()]
    return float(np.trapezoid(y, x))


def suite(structure: str, rows: int, seed: int):
    if structure == "campaign":
        sim = simulate(rows, seed=seed)
        return ExperimentLog.from_frame(sim.log, CAMPAIGN), sim.truth, list(ARMS[1:])
    sim = simulate_cost_structure(rows, seed=seed, structure=structure)
    return ExperimentLog.from_frame(sim.log, STRUCTURE), sim.truth, ["offer"]


def run_suite(args) -> pd.DataFrame:
    records = []
    structures = list(COST_STRUCTURES) + ["campaign"]
    models = {k: v for k, v in MODELS.items() if not (args.skip_cf and v["learner"] == "cf")}
    for structure in structures:
        for seed in range(100, 100 + args.seeds):
            log, truth, offers = suite(structure, args.rows, seed)
            for name, params in models.items():
                start = time.perf_counter()
                model = UpliftModel(folds=5, seed=seed, **params).fit(log)
                seconds = time.perf_counter() - start
                result = evaluate(log, model.oof_)
                for offer in offers:
                    _, cost_rank = rankings(model.oof_, offer)
                    tv, tc = truth[f"true_tau_value__{offer}"].to_numpy(), truth[f"true_tau_cost__{offer}"].to_numpy()
                    records.append({"structure": structure, "seed": seed, "model": name, "offer": offer,
                                    "aucc": result.arms[offer].aucc, "true_aucc": true_aucc(cost_rank, tv, tc),
                                    "oracle": true_aucc(np.where(tc > 0, tv / np.maximum(tc, 1e-12), np.inf), tv, tc),
                                    "seconds": seconds,
                                    "chosen": getattr(model, "learner_", params["learner"])})
                print(f"{structure} seed {seed} {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return pd.DataFrame(records)


def interval(values) -> str:
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    if len(values) < 2:
        return f"{mean:.3f}"
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"{mean:.3f} ± {half:.3f}"


def summarise(frame: pd.DataFrame) -> str:
    per_seed = frame.groupby(["structure", "model", "seed"], as_index=False)[["aucc", "true_aucc", "oracle", "seconds"]].mean()
    lines = ["| cost structure | model | observed AUCC (OOF) | true-effect AUCC |", "|---|---|---|---|"]
    for (structure, model), part in per_seed.groupby(["structure", "model"], sort=False):
        lines.append(f"| {structure} | {model} | {interval(part['aucc'])} | {interval(part['true_aucc'])} |")
    lines.append("")
    lines.append("Paired per seed, DRM (LightGBM) − auto (two-head ratio), mean ± 95% t interval across seeds:")
    lines.append("")
    lines.append("| cost structure | Δ observed AUCC | Δ true-effect AUCC | oracle true AUCC |")
    lines.append("|---|---|---|---|")
    for structure, part in per_seed.groupby("structure", sort=False):
        wide = part.pivot(index="seed", columns="model", values=["aucc", "true_aucc"])
        diff_obs = wide["aucc"]["drm · lightgbm"] - wide["aucc"]["auto (two-head)"]
        diff_true = wide["true_aucc"]["drm · lightgbm"] - wide["true_aucc"]["auto (two-head)"]
        lines.append(f"| {structure} | {interval(diff_obs)} | {interval(diff_true)} | {part['oracle'].mean():.3f} |")
    chosen = frame[frame["model"] == "auto (two-head)"].groupby("structure")["chosen"].agg(lambda s: ", ".join(sorted(set(s))))
    lines.append("")
    lines.append("auto chose: " + "; ".join(f"{k}: {v}" for k, v in chosen.items()))
    return "\n".join(lines)


def speed(args) -> str:
    sim = simulate(100_000, seed=7)
    log = ExperimentLog.from_frame(sim.log, CAMPAIGN)
    out = ["| fit (100,000 rows, 3 offers, 5 folds, 2 threads) | seconds | × native X-learner |", "|---|---|---|"]
    timings = {}
    for name, params in [("native X-learner (baseline)", {"learner": "x"}), ("drm · lightgbm", {"learner": "drm"}),
                         ("drm · linear", {"learner": "drm", "ranking_scorer": "linear"}),
                         ("drm · mlp", {"learner": "drm", "ranking_scorer": "mlp"}),
                         ("cdrm · lightgbm", {"learner": "cdrm"})]:
        best = np.inf
        for _ in range(args.repeats):
            start = time.perf_counter()
            UpliftModel(folds=5, seed=0, n_jobs=2, **params).fit(log)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
        base = timings["native X-learner (baseline)"]
        out.append(f"| {name} | {best:.1f} | {best / base:.2f}× |")
        print(out[-1], file=sys.stderr, flush=True)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--skip-cf", action="store_true", help="leave the causal forest out (it takes most of the time)")
    parser.add_argument("--speed", action="store_true", help="only the 100,000-row timing")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--csv", help="also write every record here")
    parser.add_argument("--from-csv", help="summarise the records of an earlier run instead of running")
    args = parser.parse_args()
    if args.speed:
        print(speed(args))
        return
    frame = pd.read_csv(args.from_csv) if args.from_csv else run_suite(args)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(summarise(frame))


if __name__ == "__main__":
    main()
