"""Choosing an uplift learner without ground truth (``--learner auto``).

Every candidate (S, T, X, DR, causal forest) is scored on its **out-of-fold** predictions
with criteria that need no true effects:

Primary — the doubly robust pseudo-outcome loss (Saito & Yasui 2020; Kennedy 2023).  For offer
``k`` against control and a row ``i`` of either arm, with out-of-fold outcome models ``μ̂`` and
the out-of-fold probability ``q̂ᵢ`` of offer ``k`` among rows of the two arms (clipped to
[0.01, 0.99]),

    ψᵢ = μ̂ₖ(xᵢ) − μ̂₀(xᵢ) + 1[Aᵢ=k]·(Yᵢ − μ̂ₖ(xᵢ))/q̂ᵢ − 1[Aᵢ=0]·(Yᵢ − μ̂₀(xᵢ))/(1 − q̂ᵢ).

``E[ψ | x] = τ(x)`` whenever either ``μ̂`` or ``q̂`` is right (in a randomised log ``q̂`` is), so
``mean((ψ − τ̂)²)`` differs between two candidates by exactly the difference of their mean
squared errors against the true effects, plus noise: it ranks candidates as √PEHE would.  The
loss of each head and offer is divided by that of a constant effect (the variance of ψ), and
the criterion is the mean of these relative losses over heads and offers — below 1 means the
candidate beats "everyone gets the average effect".  Lower is better.

Near-ties — candidates within one standard error of the best (the paired standard error of
the per-row loss differences) are tied; among tied candidates the most **stable** wins:
the mean pairwise Spearman correlation of the value-head effects that the cross-fitting fold
models predict for the same probe customers (each fold model trained on different rows).

Also reported (not used to pick): calibration by bins of the value head (slope and intercept
of observed on predicted uplift, 1 and 0 are ideal) and the ranking monotonicity of observed
uplift across the bins (Spearman correlation of bin order and observed uplift, 1 is ideal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .calibration import calibration_bins
from .pseudo import dr_pseudo_outcome

CRITERION = "dr_loss"
NAMES = {"s": "S-learner", "t": "T-learner", "x": "X-learner", "dr": "DR-learner", "cf": "Causal forest (DML)"}


def fold_stability(probe_predictions: np.ndarray) -> float:
    """Mean pairwise Spearman correlation across fold models: ``(folds × probe rows × arms)``."""
    preds = np.asarray(probe_predictions, dtype=float)
    if preds.shape[0] < 2:
        return float("nan")
    values = []
    for j in range(preds.shape[2]):
        ranks = np.apply_along_axis(stats.rankdata, 1, preds[:, :, j])
        if np.any(np.ptp(ranks, axis=1) == 0):
            continue  # a constant prediction has no ranking to compare
        corr = np.corrcoef(ranks)
        values.append(corr[np.triu_indices_from(corr, 1)].mean())
    return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class Candidate:
    """One learner's scores; ``score`` is the criterion (lower is better)."""

    learner: str
    params: dict
    score: float
    se: float
    gap_se: float
    stability: float
    calibration_slope: float
    calibration_intercept: float
    monotonicity: float
    losses: dict

    def to_dict(self) -> dict:
        return {"learner": self.learner, "params": self.params, "score": self.score, "se": self.se,
                "gap_se": self.gap_se, "stability": self.stability, "calibration_slope": self.calibration_slope,
                "calibration_intercept": self.calibration_intercept, "monotonicity": self.monotonicity,
                "losses": self.losses}


@dataclass(frozen=True)
class Selection:
    """The scored candidates and the choice, with the sentence that explains it."""

    criterion: str
    chosen: str
    reason: str
    candidates: tuple
    skipped: dict

    def to_dict(self) -> dict:
        return {"criterion": self.criterion, "chosen": self.chosen, "reason": self.reason,
                "candidates": [c.to_dict() for c in self.candidates], "skipped": dict(self.skipped)}

    def to_frame(self) -> pd.DataFrame:
        rows = [{"learner": NAMES.get(c.learner, c.learner), "DR loss (relative)": c.score,
                 "± SE of the gap to the best": c.se, "gap in SEs": c.gap_se, "stability": c.stability,
                 "calibration slope": c.calibration_slope, "calibration intercept": c.calibration_intercept,
                 "monotonicity": c.monotonicity, "chosen": c.learner == self.chosen} for c in self.candidates]
        return pd.DataFrame(rows)


def select_learner(effects: dict, outcomes: dict, arm: np.ndarray, mu: dict, q: np.ndarray, *,
                   stability: dict | None = None, params: dict | None = None, weights=None,
                   skipped: dict | None = None, n_bins: int = 10, tie_se: float = 1.0) -> Selection:
    """Score candidates on out-of-fold predictions and choose one.

    Parameters
    ----------
    effects : {learner: {head: (n × arms−1) array}}
        Out-of-fold τ of every candidate, per head ("value", "cost").
    outcomes : {head: (n,) array}
        The observed value (and cost) of every row.
    arm : (n,) int array
        0 = control, k = the k-th offer.
    mu : {head: (n × arms) array}
        Out-of-fold outcome-model predictions for every arm.
    q : (n × arms−1) array
        Out-of-fold probability of offer k among rows of arms {0, k}.
    stability : {learner: float}, optional
        Fold-to-fold rank stability (see :func:`fold_stability`).
    weights : array, optional
        Inverse propensities for the calibration bins of targeted logs.
    tie_se : float
        Candidates within this many standard errors of the best are near-ties.
    """
    stability = stability or {}
    arm = np.asarray(arm)
    n = len(arm)
    n_offers = int(arm.max())
    heads = list(outcomes)
    contributions = {name: np.zeros(n) for name in effects}
    losses = {name: {} for name in effects}
    for head in heads:
        y = np.asarray(outcomes[head], dtype=float)
        for j in range(n_offers):
            rows = (arm == 0) | (arm == j + 1)
            psi = dr_pseudo_outcome(y[rows], arm[rows] == j + 1, mu[head][rows, j + 1], mu[head][rows, 0], q[rows, j])
            reference = float(np.mean((psi - psi.mean()) ** 2))
            if reference <= 0:
                continue
            scale = rows.sum() * reference * len(heads) * n_offers
            for name, est in effects.items():
                sq = (psi - est[head][rows, j]) ** 2
                contributions[name][rows] += sq / scale
                losses[name][f"{head}:{j + 1}"] = float(sq.mean() / reference)
    score = {name: float(c.sum()) for name, c in contributions.items()}
    best = min(score, key=score.get)
    gap_se, se = {}, {}
    for name in effects:
        diff = contributions[name] - contributions[best]
        se[name] = float(np.sqrt(n) * diff.std(ddof=1)) if name != best else 0.0
        gap_se[name] = (score[name] - score[best]) / se[name] if se[name] > 0 else 0.0
    tied = [name for name in effects if gap_se[name] <= tie_se]

    def stab(name):
        value = stability.get(name, float("nan"))
        return value if np.isfinite(value) else -np.inf

    chosen = max(tied, key=lambda name: (stab(name), -score[name])) if len(tied) > 1 else best
    reason = _reason(chosen, best, tied, score, gap_se, stability)
    candidates = []
    for name in sorted(effects, key=score.get):
        slope, intercept, mono = _calibration(outcomes["value"], effects[name]["value"], arm, weights, n_bins)
        candidates.append(Candidate(name, (params or {}).get(name, {}), score[name], se[name], gap_se[name],
                                    float(stability.get(name, float("nan"))), slope, intercept, mono, losses[name]))
    return Selection(CRITERION, chosen, reason, tuple(candidates), dict(skipped or {}))


def _calibration(y, tau, arm, weights, n_bins):
    slopes, intercepts, monos = [], [], []
    for j in range(tau.shape[1]):
        rows = (arm == 0) | (arm == j + 1)
        if np.ptp(tau[rows, j]) == 0:
            continue
        w = None if weights is None else np.asarray(weights)[rows]
        cal = calibration_bins(np.asarray(y)[rows], tau[rows, j], (arm[rows] == j + 1).astype(int), w, n_bins)
        slopes.append(cal.slope)
        intercepts.append(cal.intercept)
        monos.append(cal.monotonicity)

    def mean(values):
        values = [v for v in values if np.isfinite(v)]
        return float(np.mean(values)) if values else float("nan")

    return mean(slopes), mean(intercepts), mean(monos)


def _reason(chosen, best, tied, score, gap_se, stability) -> str:
    name = NAMES.get(chosen, chosen)
    others = sorted((k for k in score if k != chosen), key=score.get)
    if chosen == best and len(tied) == 1:
        runner = others[0] if others else None
        tail = (f"; next best {NAMES.get(runner, runner)} at {score[runner]:.4f}, {gap_se[runner]:.1f} standard errors worse"
                if runner else "")
        return (f"{name}: lowest doubly robust loss ({score[chosen]:.4f} relative to a constant effect; lower is "
                f"better){tail}")
    tied_names = ", ".join(NAMES.get(k, k) for k in sorted(tied, key=score.get))
    stab = stability.get(chosen, float("nan"))
    return (f"{name}: {tied_names} are within one standard error of each other on the doubly robust loss "
            f"(best {score[best]:.4f}); {name} ranks customers most stably across the cross-fitting folds "
            f"(rank correlation {stab:.2f})")
