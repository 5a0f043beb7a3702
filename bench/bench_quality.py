"""Quality of the default fit (``auto``) on public data with known or held-out answers.

    .venv/bin/python bench/bench_quality.py [--boot 300]

- IHDP (Hill 2011, ../shared/data/ihdp_npci, replications 1–10, known CATE mu1 − mu0): √PEHE of
  the out-of-fold effects, 5 folds, for ``auto``, the native X-learner, and EconML's
  ``XLearner`` with LightGBM's default settings on the same folds (the issue's yardstick).
- Hillstrom (data/hillstrom.csv.gz, visit): normalised Qini of each e-mail on a fixed 30%
  holdout for ``auto`` against the plain two-model (T-learner) LightGBM baseline, with the
  paired bootstrap difference.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from core.evaluation.curves import bootstrap_scores, qini_auc_score  # noqa: E402
from core.schema import ColumnMap, ExperimentLog  # noqa: E402
from core.uplift.model import UpliftModel  # noqa: E402
from core.uplift.names import LEARNERS  # noqa: E402
from hillstrom_qini import baseline_scores, learner_scores, split  # noqa: E402

IHDP = ROOT.parent / "shared" / "data" / "ihdp_npci"


def econml_default_x(frame: pd.DataFrame, features: list[str], folds: int = 5, seed: int = 0) -> np.ndarray:
    """EconML's XLearner with LightGBM's default settings, cross-fitted on the folds UpliftModel uses."""
    from econml.metalearners import XLearner
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.model_selection import StratifiedKFold

    x, t, y = frame[features].to_numpy(), frame["treatment"].to_numpy(), frame["y_factual"].to_numpy()
    out = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, t):
        est = XLearner(models=LGBMRegressor(verbose=-1, n_jobs=2), propensity_model=LGBMClassifier(verbose=-1, n_jobs=2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(y[train], t[train], X=x[train])
        out[test] = est.effect(x[test]).ravel()
    return out


def ihdp_table() -> None:
    features = [f"x{i}" for i in range(1, 26)]
    rows = {"auto (default)": [], "native X-learner": [], "EconML XLearner, LightGBM defaults": []}
    chosen = []
    for rep in range(1, 11):
        frame = pd.read_csv(IHDP / f"ihdp_npci_{rep}.csv", header=None)
        frame.columns = ["treatment", "y_factual", "y_cfactual", "mu0", "mu1"] + features
        truth = (frame["mu1"] - frame["mu0"]).to_numpy()
        log = ExperimentLog.from_frame(frame, ColumnMap(action="treatment", control="0", value="y_factual",
                                                        features=tuple(features)))
        for name, learner in (("auto (default)", "auto"), ("native X-learner", "x")):
            model = UpliftModel(learner=learner, folds=5).fit(log)
            rows[name].append(np.sqrt(np.mean((model.oof_["tau_value__1"].to_numpy() - truth) ** 2)))
            if learner == "auto":
                chosen.append(model.learner_)
        est = econml_default_x(frame, features)
        rows["EconML XLearner, LightGBM defaults"].append(np.sqrt(np.mean((est - truth) ** 2)))
    print("IHDP √PEHE, replications 1–10 (5-fold out-of-fold effects)\n")
    print("| model | mean √PEHE | " + " | ".join(f"rep {r}" for r in range(1, 11)) + " |")
    print("|---|---|" + "---|" * 10)
    for name, values in rows.items():
        print(f"| {name} | **{np.mean(values):.3f}** | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    print(f"\nauto chose: {', '.join(chosen)}\n")


def hillstrom_table(boot: int) -> None:
    print("Hillstrom visit, normalised Qini on a fixed 30% holdout (seed 0)\n")
    print("| e-mail | auto (default) | chosen | two-model baseline | auto − baseline (paired bootstrap SE) |")
    print("|---|---|---|---|---|")
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        train, test = split(arm=arm)
        y, t = test["visit"].to_numpy(), (test["segment"] == arm).to_numpy().astype(int)
        auto = learner_scores(train, test, "auto", arm=arm)
        base = baseline_scores(train, test, arm=arm)
        diff = bootstrap_scores(qini_auc_score, y, auto, t, boot, seed=1, paired_with=base)
        log = ExperimentLog.from_frame(train, ColumnMap(action="segment", control="No E-Mail", value="visit",
                                                        features=("recency", "history_segment", "history", "mens",
                                                                  "womens", "zip_code", "newbie", "channel")))
        chosen = LEARNERS[UpliftModel(folds=5).fit(log).learner_]
        qa, qb = qini_auc_score(y, auto, t), qini_auc_score(y, base, t)
        print(f"| {arm} | {qa:.4f} | {chosen} | {qb:.4f} | {qa - qb:+.4f} ± {diff.std(ddof=1):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boot", type=int, default=300)
    args = parser.parse_args()
    if IHDP.exists():
        ihdp_table()
    else:
        print("IHDP: ../shared/data/ihdp_npci is not beside this checkout; skipped\n")
    hillstrom_table(args.boot)


if __name__ == "__main__":
    main()
