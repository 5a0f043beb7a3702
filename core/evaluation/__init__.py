"""Model evaluation: ranking curves, calibration by bins, stability, and the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from ..engines.local import LocalEngine
from .arms import evaluate_of
from .calibration import Calibration, calibration_bins  # noqa: F401
from .curves import cost_ranking
from .results import MIN_EVENTS, TOP_FRACTIONS, ArmEvaluation, Evaluation  # noqa: F401

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


def evaluate(log, scores: pd.DataFrame, n_bins: int = 10, arms=None) -> Evaluation:
    """Evaluate predictions ``scores`` (columns ``tau_value__<arm>`` and ``tau_cost__<arm>``,
    row-aligned with ``log``) for every non-control arm.  Curves rank customers as
    :func:`rankings` says (by ``score__<arm>`` when a ranking learner made the predictions);
    calibration bins always compare the predicted τ with the observed uplift.  The numbers come
    from :func:`core.evaluation.arms.evaluate_of`, as on any engine.

    Parameters
    ----------
    log : core.schema.ExperimentLog
    scores : DataFrame
    n_bins : int
        Calibration bins.
    arms : list of str, optional
        Arms to evaluate (default: every non-control arm with a ``tau_value__`` column).
    """
    if len(scores) != log.n:
        raise UserError(f"the scores have {len(scores):,} rows but the log has {log.n:,}; join them on id first")
    arms = check_arms(log, scores.columns, arms)
    wanted = [c for c in scores.columns if str(c).startswith(PREDICTION_PREFIXES)]
    joined = log.with_columns({c: pd.to_numeric(scores[c], errors="coerce").to_numpy(dtype=float) for c in wanted})
    return evaluate_of(LocalEngine(), joined, arms, n_bins)


PREDICTION_PREFIXES = ("tau_value__", "tau_cost__", "score__")


def check_arms(log, score_columns, arms=None) -> list[str]:
    """The arms to evaluate: ``arms``, or every offer the predictions have a ``tau_value__``
    column for; each must be an arm of the log."""
    arms = list(arms or [a for a in log.treatments if f"tau_value__{a}" in score_columns])
    unknown = [a for a in arms if a not in log.labels]
    if unknown:
        raise UserError(f"arm(s) {', '.join(map(repr, unknown))} not in the log; arms: {', '.join(log.labels)}")
    if not arms:
        raise UserError("the scores have no tau_value__<arm> column for any arm of the log; arms: " + ", ".join(log.treatments))
    return arms


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
