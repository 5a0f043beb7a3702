"""Calibration by bins: can the predicted effects be taken at face value?

Units are split into bins of predicted effect (deciles by default; equal counts, ties kept in
one bin).  Per bin: the mean prediction and the observed uplift, the difference of
(inverse-propensity weighted, Hájek) means of the arm and the control within the bin, with a
normal interval from the same variance as the readout.  Done separately for the value head and
the cost head.  The calibration slope and intercept are a weighted least-squares line of
observed on predicted across bins, weighting each bin by 1 / Var(observed): a slope of 1 means
differences between predictions are real to scale; below 1, the model exaggerates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..diagnostics.readout import hajek_mean_var
from ..errors import UserError


def equal_count_bins(score, n_bins: int) -> np.ndarray:
    """Bin index 0 (lowest scores) … n_bins−1, equal counts, tied scores in the same bin."""
    score = np.asarray(score, dtype=float)
    ranks = stats.rankdata(score, method="min") - 1  # ties share the lowest rank
    return np.minimum((ranks * n_bins) // len(score), n_bins - 1).astype(int)


@dataclass(frozen=True)
class Calibration:
    """Per-bin table and the weighted calibration line."""

    table: pd.DataFrame
    slope: float
    intercept: float
    monotonicity: float

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def to_dict(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept, "monotonicity": self.monotonicity,
                "bins": self.table.to_dict("records")}


def calibration_bins(y, score, treatment, weights=None, n_bins: int = 10, alpha: float = 0.05) -> Calibration:
    """Observed against predicted effect in bins of the prediction.

    Parameters
    ----------
    y : array
        Outcome (value or cost) of the rows of one arm and the control.
    score : array
        Predicted effect of that arm for each row (τ value or τ cost).
    treatment : array of 0/1
    weights : array, optional
        Inverse propensities; Hájek means within each bin.
    n_bins : int
        Number of bins (default deciles).

    A bin without treated or without control rows has no observed uplift (NaN) and is left out
    of the slope; its ``note`` says why.
    """
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    treatment = np.asarray(treatment).astype(int)
    if not (len(y) == len(score) == len(treatment)):
        raise UserError("y, score and treatment differ in length")
    if np.isnan(score).any():
        raise UserError(f"the score has {int(np.isnan(score).sum())} missing values; score every row")
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise UserError(f"the number of bins must be a whole number ≥ 2, got {n_bins!r}")
    n_bins = int(min(n_bins, len(np.unique(score))))
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    bins = equal_count_bins(score, max(n_bins, 1)) if n_bins > 1 else np.zeros(len(y), dtype=int)
    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    for b in range(max(n_bins, 1)):
        in_bin = bins == b
        t_rows, c_rows = in_bin & (treatment == 1), in_bin & (treatment == 0)
        n_t, n_c = int(t_rows.sum()), int(c_rows.sum())
        moments = [hajek_mean_var(y[r], w[r]) if k >= 2 else None for r, k in ((t_rows, n_t), (c_rows, n_c))]
        rows.append(bin_row(b, n_t, n_c, float(score[in_bin].mean()) if in_bin.any() else float("nan"), *moments, z))
    return calibration_from_rows(rows)


def bin_row(b: int, n_t: int, n_c: int, predicted: float, treated: tuple[float, float] | None,
            control: tuple[float, float] | None, z: float) -> dict:
    """One bin's row: counts, mean prediction, and the observed uplift from each arm's Hájek
    (mean, variance of the mean) — ``None`` for an arm with fewer than 2 rows."""
    row = {"bin": b + 1, "n": int(n_t + n_c), "n_treated": int(n_t), "n_control": int(n_c), "predicted": predicted,
           "observed": float("nan"), "se": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "note": ""}
    if n_t < 2 or n_c < 2:
        row["note"] = "fewer than 2 treated rows" if n_t < 2 else "fewer than 2 control rows"
    else:
        observed, se = treated[0] - control[0], float(np.sqrt(treated[1] + control[1]))
        row.update(observed=observed, se=se, ci_low=observed - z * se, ci_high=observed + z * se)
    return row


def calibration_from_rows(rows: list[dict]) -> Calibration:
    """The calibration line and monotonicity from the bins' rows (see :func:`bin_row`)."""
    table = pd.DataFrame(rows)
    usable = table["observed"].notna() & (table["se"] > 0)
    slope = intercept = float("nan")
    if usable.sum() >= 2 and table.loc[usable, "predicted"].nunique() >= 2:
        x, obs, wts = (table.loc[usable, c].to_numpy() for c in ("predicted", "observed", "se"))
        wts = 1.0 / wts**2
        xm, ym = np.average(x, weights=wts), np.average(obs, weights=wts)
        sxx = np.sum(wts * (x - xm) ** 2)
        slope = float(np.sum(wts * (x - xm) * (obs - ym)) / sxx)
        intercept = float(ym - slope * xm)
    observed = table.loc[table["observed"].notna(), "observed"].to_numpy()
    monotonicity = float(stats.spearmanr(np.arange(len(observed)), observed)[0]) if len(observed) >= 3 else float("nan")
    return Calibration(table, slope, intercept, monotonicity)


def bins_from_counts(counts: np.ndarray, n_bins: int) -> np.ndarray:
    """:func:`equal_count_bins` from the row counts of the distinct scores (ascending): the bin
    of each distinct score."""
    counts = np.asarray(counts, dtype=np.int64)
    n_bins = int(min(n_bins, len(counts)))
    if n_bins <= 1:
        return np.zeros(len(counts), dtype=int)
    ranks = np.r_[0, np.cumsum(counts)[:-1]]
    return np.minimum((ranks * n_bins) // counts.sum(), n_bins - 1).astype(int)
