"""Ranking metrics for uplift scores: Qini and uplift curves, their normalised areas.

Conventions (scikit-uplift's, documented in the CLI contract):

- Units are sorted by score, descending; tied scores form one group, so curve points sit only
  at distinct scores, and (0, 0) is prepended.  ``x`` is the number of units targeted.
- Qini curve: ``Q(k) = Y_t(k) − Y_c(k) · N_t(k) / N_c(k)`` (0 where ``N_c(k) = 0``), where
  ``Y_t, Y_c`` are the summed outcomes and ``N_t, N_c`` the counts of treated / control units
  among the top k.
- Uplift curve: ``U(k) = (Y_t(k)/N_t(k) − Y_c(k)/N_c(k)) · k`` (each ratio 0 where its count is 0).
- Areas by the trapezoid rule.  Normalised area = (model − random) / (perfect − random), where
  random is the straight line from (0, 0) to the curve's end and perfect is the curve of the
  score ``y·t − y·(1 − t)`` for Qini (``negative_effect=True``) and
  ``2·[y = t] + (y if #control responders > #treated non-responders else t)`` for the uplift
  curve, exactly as scikit-uplift.  For binary y the numbers equal scikit-uplift's
  ``qini_auc_score`` / ``uplift_auc_score``; the same formulas apply unchanged to continuous y.
- Qini coefficient (raw): the area between the Qini curve and the random line.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def _check(y, score, treatment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    treatment = np.asarray(treatment)
    if not (len(y) == len(score) == len(treatment)):
        raise UserError(f"y, score and treatment differ in length ({len(y)}, {len(score)}, {len(treatment)})")
    if len(y) == 0:
        raise UserError("no rows to evaluate")
    if np.isnan(score).any():
        raise UserError(f"the score has {int(np.isnan(score).sum())} missing values (first at row {int(np.flatnonzero(np.isnan(score))[0]) + 1}); "
                        "score every row or drop the unscored ones")
    if np.isnan(y).any():
        raise UserError(f"the outcome has {int(np.isnan(y).sum())} missing values")
    values = set(np.unique(treatment).tolist())
    if not values <= {0, 1, True, False}:
        raise UserError(f"treatment must be 0 (control) or 1 (treated), got values {sorted(values)[:5]}")
    treatment = treatment.astype(float)
    if treatment.sum() == 0 or treatment.sum() == len(treatment):
        which = "treated" if treatment.sum() == 0 else "control"
        raise UserError(f"there are no {which} rows; uplift metrics compare an arm with its control")
    return y, score, treatment


def _cumulative(y, score, treatment):
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treatment = y[order], score[order], treatment[order]
    thresholds = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    num_all = (thresholds + 1).astype(float)
    num_t = np.cumsum(treatment)[thresholds]
    num_c = num_all - num_t
    y_t = np.cumsum(y * treatment)[thresholds]
    y_c = np.cumsum(y * (1 - treatment))[thresholds]
    return num_all, num_t, num_c, y_t, y_c


def _ratio(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b != 0)


def qini_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points (x = units targeted, Q) of the Qini curve, (0, 0) first."""
    y, score, treatment = _check(y, score, treatment)
    num_all, num_t, num_c, y_t, y_c = _cumulative(y, score, treatment)
    return np.r_[0.0, num_all], np.r_[0.0, y_t - y_c * _ratio(num_t, num_c)]


def uplift_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points (x = units targeted, U) of the uplift curve, (0, 0) first."""
    y, score, treatment = _check(y, score, treatment)
    num_all, num_t, num_c, y_t, y_c = _cumulative(y, score, treatment)
    return np.r_[0.0, num_all], np.r_[0.0, (_ratio(y_t, num_t) - _ratio(y_c, num_c)) * num_all]


def perfect_qini_curve(y, treatment):
    y, treatment = np.asarray(y, dtype=float), np.asarray(treatment, dtype=float)
    return qini_curve(y, y * treatment - y * (1 - treatment), treatment)


def perfect_uplift_curve(y, treatment):
    y, treatment = np.asarray(y, dtype=float), np.asarray(treatment, dtype=float)
    control_responders = np.sum((y == 1) & (treatment == 0))
    treated_non_responders = np.sum((y == 0) & (treatment == 1))
    summand = y if control_responders > treated_non_responders else treatment
    return uplift_curve(y, 2 * (y == treatment) + summand, treatment)


def _area(x, q) -> float:
    return float(np.trapezoid(q, x))


def _normalised(actual, perfect) -> float:
    (xa, ya), (xp, yp) = actual, perfect
    random = xp[-1] * yp[-1] / 2.0
    denominator = _area(xp, yp) - random
    if denominator == 0:
        return float("nan")
    return (_area(xa, ya) - random) / denominator


def qini_auc_score(y, score, treatment) -> float:
    """Normalised area under the Qini curve (scikit-uplift's ``qini_auc_score``)."""
    return _normalised(qini_curve(y, score, treatment), perfect_qini_curve(y, treatment))


def uplift_auc_score(y, score, treatment) -> float:
    """Normalised area under the uplift curve (scikit-uplift's ``uplift_auc_score``)."""
    return _normalised(uplift_curve(y, score, treatment), perfect_uplift_curve(y, treatment))


def qini_coefficient(y, score, treatment) -> float:
    """Raw area between the Qini curve and the random line from (0, 0) to its end."""
    x, q = qini_curve(y, score, treatment)
    return _area(x, q) - x[-1] * q[-1] / 2.0


def bootstrap_scores(metric, y, score, treatment, n_boot: int = 200, seed: int = 0, paired_with=None) -> np.ndarray:
    """Seeded bootstrap replicates of ``metric(y, score, treatment)``.

    With ``paired_with`` (a second score), each replicate is the difference of the two
    metrics on the same resample, for a paired comparison of two models.
    """
    y, score, treatment = _check(y, score, treatment)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, len(y), len(y))
        value = metric(y[rows], score[rows], treatment[rows])
        if paired_with is not None:
            value -= metric(y[rows], np.asarray(paired_with, dtype=float)[rows], treatment[rows])
        out[b] = value
    return out
