"""Every learner's normalised Qini on a fixed 30% Hillstrom holdout, against a plain two-model
LightGBM baseline fitted the same way (visit, one e-mail vs No E-Mail).

    .venv/bin/python bench/hillstrom_qini.py [--arm "Womens E-Mail"] [--boot 300]

Prints a Markdown table for bench/RESULTS.md: Qini, bootstrap SE and 95% percentile interval,
and the paired difference to the baseline with its SE.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.evaluation.curves import bootstrap_scores, qini_auc_score  # noqa: E402
from core.io import read_table  # noqa: E402
from core.schema import ColumnMap, ExperimentLog  # noqa: E402
from core.uplift.baseline import two_model_scores  # noqa: E402
from core.uplift.model import UpliftModel  # noqa: E402
from core.uplift.names import LEARNERS  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "hillstrom.csv.gz"
FEATURES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]
ARM, CONTROL = "Mens E-Mail", "No E-Mail"


def split(seed: int = 0, arm: str = ARM):
    """Rows of one e-mail and of No E-Mail, a fixed stratified 70/30 split."""
    frame = read_table(DATA, str_columns=["segment"])
    frame = frame[frame["segment"].isin([arm, CONTROL])].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(frame), dtype=bool)
    for arm in (arm, CONTROL):
        rows = np.flatnonzero(frame["segment"] == arm)
        test[rng.choice(rows, size=int(round(0.3 * len(rows))), replace=False)] = True
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def learner_scores(train, test, learner: str, seed: int = 0, arm: str = ARM) -> np.ndarray:
    log = ExperimentLog.from_frame(train, ColumnMap(action="segment", control=CONTROL, value="visit", features=tuple(FEATURES)))
    model = UpliftModel(learner=learner, folds=5, seed=seed).fit(log)
    return model.predict(test)[f"tau_value__{arm}"].to_numpy()


def baseline_scores(train, test, seed: int = 0, arm: str = ARM) -> np.ndarray:
    return two_model_scores(train, train["segment"] == arm, train["visit"], test, FEATURES, seed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boot", type=int, default=300)
    parser.add_argument("--arm", default=ARM, choices=[ARM, "Womens E-Mail"])
    args = parser.parse_args()
    train, test = split(arm=args.arm)
    y, t = test["visit"].to_numpy(), (test["segment"] == args.arm).to_numpy().astype(int)
    start = time.perf_counter()
    base = baseline_scores(train, test, arm=args.arm)
    rows = [("two-model LightGBM (baseline)", base, time.perf_counter() - start)]
    for key, title in LEARNERS.items():
        start = time.perf_counter()
        rows.append((f"{title} (`{key}`)" + (" — app default" if key == "auto" else ""),
                     learner_scores(train, test, key, arm=args.arm), time.perf_counter() - start))
    print(f"{args.arm} vs {CONTROL}: train {len(train):,} rows, holdout {len(test):,} rows, {args.boot} bootstrap resamples\n")
    print("| model | Qini (normalised) | bootstrap SE | 95% interval | vs baseline (paired) | fit s |")
    print("|---|---|---|---|---|---|")
    for name, score, seconds in rows:
        q = qini_auc_score(y, score, t)
        reps = bootstrap_scores(qini_auc_score, y, score, t, args.boot, seed=1)
        diff = bootstrap_scores(qini_auc_score, y, score, t, args.boot, seed=1, paired_with=base)
        delta = q - qini_auc_score(y, base, t)
        vs = "—" if score is base else f"{delta:+.4f} ± {diff.std(ddof=1):.4f}"
        print(f"| {name} | {q:.4f} | {reps.std(ddof=1):.4f} | [{np.percentile(reps, 2.5):.4f}, {np.percentile(reps, 97.5):.4f}] | {vs} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
