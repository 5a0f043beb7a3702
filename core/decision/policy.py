"""From predictions to candidate offers: prune, rank, explain.

For customer x and offer a, the cost per incremental unit of value is ``CPI = τc / τv``.  An
offer is a candidate only when it adds value (``τv > 0``), its CPI is at most the threshold, and
the customer is eligible for it.  Predicted costs below 0 are model noise (an incentive never
pays the company) and count as 0, so such an offer is free.  At the budget frontier's
marginal efficiency λ (incremental value per unit of cost), ``score_a(x) = τv − λ·τc`` explains
each pick: the chosen offer has the highest score, and a score below 0 is not worth the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError


@dataclass(frozen=True)
class Candidates:
    """Per-customer option table: arms (columns), value and cost effects, and the mask of
    offers that survived pruning."""

    arms: tuple[str, ...]
    tau_value: np.ndarray
    tau_cost: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        return self.tau_value.shape[0]

    def pruned_counts(self) -> dict[str, int]:
        return {a: int((~self.mask[:, k]).sum()) for k, a in enumerate(self.arms)}


def candidates_from_scores(scores: pd.DataFrame, arms=None, cpi_max: float | None = None,
                           eligible: np.ndarray | None = None) -> Candidates:
    """Build the option table from a predictions frame (``tau_value__<arm>``, ``tau_cost__<arm>``).

    Raises a :class:`UserError` naming any missing column, NaN or infinite value.
    """
    if arms is None:
        arms = [c[len("tau_value__"):] for c in scores.columns if c.startswith("tau_value__")]
    if not arms:
        raise UserError("the scores have no tau_value__<arm> columns; use the predictions of `fit` or `predict`")
    missing = [f"tau_{h}__{a}" for a in arms for h in ("value", "cost") if f"tau_{h}__{a}" not in scores.columns]
    if missing:
        raise UserError(f"the scores lack column(s) {', '.join(missing)}; allocation needs a value and a cost per offer "
                        "(map a cost column or constant costs per arm before fitting)")
    tau_value = scores[[f"tau_value__{a}" for a in arms]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    tau_cost = scores[[f"tau_cost__{a}" for a in arms]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    for name, values in (("tau_value", tau_value), ("tau_cost", tau_cost)):
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise UserError(f"column '{name}__{arms[col]}' has {int(bad[:, col].sum())} missing or infinite values "
                            f"(first at row {row + 1}); every customer needs a prediction")
    return prune(tuple(arms), tau_value, tau_cost, cpi_max, eligible)


def prune(arms, tau_value, tau_cost, cpi_max: float | None = None, eligible: np.ndarray | None = None) -> Candidates:
    """Keep offers with τv > 0, CPI ≤ ``cpi_max`` and eligibility; costs below 0 become 0."""
    tau_value = np.asarray(tau_value, dtype=float)
    tau_cost = np.maximum(np.asarray(tau_cost, dtype=float), 0.0)
    if cpi_max is not None and (not np.isfinite(cpi_max) or cpi_max < 0):
        raise UserError(f"--cpi-max must be a number ≥ 0, got {cpi_max}")
    mask = tau_value > 0
    if cpi_max is not None:
        mask &= tau_cost <= cpi_max * tau_value
    if eligible is not None:
        eligible = np.asarray(eligible, dtype=bool)
        if eligible.shape != mask.shape:
            raise UserError(f"the eligibility mask has shape {eligible.shape}; expected {mask.shape} (customers × offers)")
        mask &= eligible
    return Candidates(tuple(arms), tau_value, tau_cost, mask)


def explain(candidates: Candidates, choice: np.ndarray, lam: float, filled: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Score ``τv − λ·τc`` of each customer's chosen offer (0 for no offer) and a short reason.

    ``filled`` marks picks made only to use budget left over below the margin (their score
    can be negative: they beat sending nothing, not the marginal rate).
    """
    n = candidates.n
    chosen = choice >= 0
    score = np.zeros(n)
    rows = np.flatnonzero(chosen)
    score[rows] = candidates.tau_value[rows, choice[rows]] - lam * candidates.tau_cost[rows, choice[rows]]
    any_candidate = candidates.mask.any(axis=1)
    filled = np.zeros(n, dtype=bool) if filled is None else np.asarray(filled, dtype=bool)
    reasons = np.where(chosen & filled, "fills budget left over below the margin",
                       np.where(chosen, "best value net of λ·cost",
                                np.where(any_candidate, "not worth the budget at this λ", "no offer passes value/CPI/eligibility")))
    return score, reasons.tolist()
