"""Model evaluation: ranking curves, calibration by bins, stability, and the leaderboard."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UserError
from .calibration import Calibration, calibration_bins
from .curves import aucc, cost_ranking, qini_auc_score, qini_coefficient, uplift_at_top, uplift_auc_score
from .horizon import horizon_ratios

TOP_FRACTIONS = (0.1, 0.2, 0.3)
# Fewer outcome events (non-zero outcomes: conversions, purchases) than this in an offer's arm or
# in the control and ranking metrics are noise: a Qini built on a handful of conversions moves by
# more than the gap between models when one customer changes sides.
MIN_EVENTS = 50


@dataclass(frozen=True)
class ArmEvaluation:
    """Every metric of one arm against control (rows of that arm and of the control only)."""

    arm: str
    n: int
    qini_normalized: float
    auuc_normalized: float
    qini_coefficient: float
    aucc: float | None
    uplift_at_top: dict
    calibration: Calibration
    calibration_cost: Calibration | None = None
    events: tuple[int, int] = (0, 0)  # non-zero outcomes in (this arm, control)
    horizon: object | None = None  # HorizonRatios when a long-horizon value is mapped

    @property
    def rare(self) -> bool:
        """Too few outcome events in this arm or the control to rank customers (see MIN_EVENTS)."""
        return min(self.events) < MIN_EVENTS

    def to_dict(self) -> dict:
        out = {"qini_normalized": self.qini_normalized, "auuc_normalized": self.auuc_normalized,
               "qini_coefficient": self.qini_coefficient,
               "calibration": self.calibration.table[["bin", "n", "predicted", "observed", "ci_low", "ci_high"]].to_dict("records"),
               "calibration_slope": self.calibration.slope, "calibration_intercept": self.calibration.intercept,
               "monotonicity": self.calibration.monotonicity, "n": self.n,
               "events": {"arm": self.events[0], "control": self.events[1]}, "too_few_events": self.rare,
               "uplift_at_top": {f"{int(f * 100)}%": v for f, v in self.uplift_at_top.items()}}
        if self.aucc is not None:
            out["aucc"] = self.aucc
        if self.horizon is not None:
            out["horizon_ratio"] = self.horizon.to_dict()
        if self.calibration_cost is not None:
            out["calibration_cost"] = self.calibration_cost.table[["bin", "n", "predicted", "observed", "ci_low", "ci_high"]].to_dict("records")
            out["calibration_cost_slope"] = self.calibration_cost.slope
        return out


@dataclass(frozen=True)
class Evaluation:
    arms: dict[str, ArmEvaluation]
    weighted: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {arm: result.to_dict() for arm, result in self.arms.items()}

    def summary(self) -> dict:
        """Averages over arms, for the leaderboard."""
        arms = list(self.arms.values())

        def mean(values):
            values = [v for v in values if v is not None and np.isfinite(v)]
            return float(np.mean(values)) if values else float("nan")

        return {"qini": mean([a.qini_normalized for a in arms]), "auuc": mean([a.auuc_normalized for a in arms]),
                "aucc": mean([a.aucc for a in arms]), "calibration_slope": mean([a.calibration.slope for a in arms]),
                "calibration_slope_cost": mean([a.calibration_cost.slope for a in arms if a.calibration_cost is not None]),
                "monotonicity": mean([a.calibration.monotonicity for a in arms]),
                "min_events": min(min(a.events) for a in arms) if arms else 0}


def inverse_propensity_weights(propensity) -> np.ndarray | None:
    """1/p when the propensities differ across rows, else ``None`` (plain, unweighted metrics)."""
    if propensity is None:
        return None
    p = np.asarray(propensity, dtype=float)
    return None if np.ptp(p) < 1e-12 else 1.0 / p


def rankings(scores: pd.DataFrame, arm: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The orders an arm's customers are ranked in: for the Qini/uplift curves and for the cost
    curve.  A ranking learner's ``score__<arm>`` ranks both; otherwise τ value ranks the
    Qini/uplift curves and τ value / τ cost (:func:`~core.evaluation.curves.cost_ranking`) the
    cost curve (``None`` when there is no complete ``tau_cost__<arm>``)."""
    if f"score__{arm}" in scores.columns:
        score = scores[f"score__{arm}"].to_numpy(dtype=float)
        return score, score
    score = scores[f"tau_value__{arm}"].to_numpy(dtype=float)
    cost_col = f"tau_cost__{arm}"
    if cost_col not in scores.columns or not scores[cost_col].notna().all():
        return score, None
    return score, cost_ranking(score, scores[cost_col].to_numpy(dtype=float))


def evaluate(log, scores: pd.DataFrame, n_bins: int = 10, arms=None, weights="auto") -> Evaluation:
    """Evaluate predictions ``scores`` (columns ``tau_value__<arm>`` and ``tau_cost__<arm>``,
    row-aligned with ``log``) for every non-control arm.  Curves rank customers as
    :func:`rankings` says (by ``score__<arm>`` when a ranking learner made the predictions);
    calibration bins always compare the predicted τ with the observed uplift.

    Parameters
    ----------
    log : core.schema.ExperimentLog
    scores : DataFrame
    n_bins : int
        Calibration bins.
    arms : list of str, optional
        Arms to evaluate (default: every non-control arm with a ``tau_value__`` column).
    weights : "auto", None or array
        "auto": inverse logged propensities when they differ across rows.
    """
    if len(scores) != log.n:
        raise UserError(f"the scores have {len(scores):,} rows but the log has {log.n:,}; join them on id first")
    arms = list(arms or [a for a in log.treatments if f"tau_value__{a}" in scores.columns])
    unknown = [a for a in arms if a not in log.labels]
    if unknown:
        raise UserError(f"arm(s) {', '.join(map(repr, unknown))} not in the log; arms: {', '.join(log.labels)}")
    if not arms:
        raise UserError("the scores have no tau_value__<arm> column for any arm of the log; arms: " + ", ".join(log.treatments))
    w_all = inverse_propensity_weights(log.propensity) if isinstance(weights, str) else weights
    action = log.action
    value, cost = log.value, log.cost
    results, notes = {}, []
    for arm in arms:
        rows = (action == arm) | (action == log.control)
        if not (action == arm).any():
            raise UserError(f"arm '{arm}' has no rows in the log")
        t = (action[rows] == arm).astype(int)
        w = None if w_all is None else np.asarray(w_all)[rows]
        score = scores[f"tau_value__{arm}"].to_numpy(dtype=float)[rows]
        rank, cost_rank = rankings(scores, arm)
        rank = rank[rows]
        y = value[rows]
        arm_aucc = None
        calibration_cost = None
        if cost is not None and cost_rank is not None:
            try:
                arm_aucc = aucc(y, cost[rows], cost_rank[rows], t, w)
            except UserError as exc:
                notes.append(f"{arm}: no cost curve ({exc})")
        cost_col = f"tau_cost__{arm}"
        if cost is not None and cost_col in scores.columns and scores[cost_col].notna().all():
            tau_cost = scores[cost_col].to_numpy(dtype=float)[rows]
            if np.ptp(tau_cost) > 0:
                calibration_cost = calibration_bins(cost[rows], tau_cost, t, w, n_bins)
        events = (int(np.count_nonzero(y[t == 1])), int(np.count_nonzero(y[t == 0])))
        horizon = None
        if log.value_long is not None:
            horizon = horizon_ratios(y, log.value_long[rows], rank, t, w)
        results[arm] = ArmEvaluation(
            arm=arm, n=int(rows.sum()), events=events, horizon=horizon,
            qini_normalized=qini_auc_score(y, rank, t, w), auuc_normalized=uplift_auc_score(y, rank, t, w),
            qini_coefficient=qini_coefficient(y, rank, t, w), aucc=arm_aucc,
            uplift_at_top={f: uplift_at_top(y, rank, t, f, w) for f in TOP_FRACTIONS},
            calibration=calibration_bins(y, score, t, w, n_bins), calibration_cost=calibration_cost)
        if results[arm].rare:
            notes.append(f"Offer '{arm}': only {events[0]:,} non-zero outcomes under the offer and {events[1]:,} under "
                         f"'{log.control}' — fewer than {MIN_EVENTS} in an arm, so its curves and Qini are noise; "
                         "do not rank customers on them")
    return Evaluation(results, w_all is not None, notes)


def recommend(boards: dict[str, dict]) -> tuple[str | None, str]:
    """Pick a model from leaderboard rows (name → summary with qini, calibration_slope, stability).

    No model (``None``) when every row's ``min_events`` is below :data:`MIN_EVENTS`: nothing is
    recommended on noise.
    Highest average normalised Qini among the models whose value calibration slope lies in
    [0.5, 1.5] and whose stability (when measured) is at least 0.6; if none qualifies, the
    highest Qini, with the reason it falls short.
    """
    if not boards:
        return None, "no model fitted yet"
    events = [row.get("min_events") for row in boards.values() if row.get("min_events") is not None]
    if events and max(events) < MIN_EVENTS:
        return None, (f"no recommendation: the log has as few as {min(events):,} non-zero outcomes in an arm "
                      f"(fewer than {MIN_EVENTS}), so the models' Qini and calibration differ by noise")

    def ok(row):
        slope, stab = row.get("calibration_slope"), row.get("stability")
        return (slope is not None and np.isfinite(slope) and 0.5 <= slope <= 1.5) and (
            stab is None or not np.isfinite(stab) or stab >= 0.6)

    qualified = {k: v for k, v in boards.items() if ok(v)}
    pool = qualified or boards
    best = max(pool, key=lambda k: pool[k]["qini"] if np.isfinite(pool[k]["qini"]) else -np.inf)
    row = boards[best]
    if qualified:
        why = (f"highest Qini ({row['qini']:.3f}) among models whose predictions can be taken at face value "
               f"(calibration slope {row['calibration_slope']:.2f}, within 0.5–1.5)")
        if row.get("stability") is not None and np.isfinite(row["stability"]):
            why += f" and that rank customers stably (rank correlation {row['stability']:.2f})"
    else:
        why = f"highest Qini ({row['qini']:.3f}), but no model is well calibrated: treat its effect sizes with care"
    return best, why
