"""From predictions to candidate offers: prune, rank, explain.

For customer x and offer a, the cost per incremental unit of value is ``CPI = τc / τv``.  An
offer is a candidate only when it adds value (``τv > 0``), its CPI is at most the threshold, and
the customer is eligible for it.  Predicted costs below 0 are model noise (an incentive never
pays the company) and count as 0, so such an offer is free.  At the budget frontier's
marginal efficiency λ (incremental value per unit of cost), ``score_a(x) = τv − λ·τc`` explains
each pick: the chosen offer has the highest score, and a score below 0 is not worth the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import UserError, setting


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
        arms = score_arms(scores)
    if not arms:
        raise UserError("the scores have no tau_value__<arm> columns; use the predictions of `fit` or `predict`")
    missing = [f"tau_{h}__{a}" for a in arms for h in ("value", "cost") if f"tau_{h}__{a}" not in scores.columns]
    if missing:
        raise UserError(f"the scores lack column(s) {', '.join(missing)}; allocation needs a value and a cost per offer "
                        "(map a cost column or constant costs per arm before fitting)")
    tau_value = scores[[f"tau_value__{a}" for a in arms]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    tau_cost = scores[[f"tau_cost__{a}" for a in arms]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    no_cost = [a for k, a in enumerate(arms) if np.isnan(tau_cost[:, k]).all()]
    if no_cost:
        raise UserError(f"the predictions have no cost for {', '.join(no_cost)} (no cost was mapped when the model was fitted); "
                        "give a cost per offer sent, or budget a number of offers (every offer costs 1)")
    for name, values in (("tau_value", tau_value), ("tau_cost", tau_cost)):
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise UserError(f"column '{name}__{arms[col]}' has {int(bad[:, col].sum())} missing or infinite values "
                            f"(first at row {row + 1}); every customer needs a prediction")
    return prune(tuple(arms), tau_value, tau_cost, cpi_max, eligible)


COST_BASES = {
    "model": "the model's predicted incremental cost (cost head)",
    "per_send": "a fixed cost per offer sent",
    "count": "a number of offers (every offer costs 1)",
}


def plan_offer_costs(basis: str, arms, offer_costs: Mapping[str, float] | None = None) -> dict[str, float] | None:
    """Constant cost per offer sent that replaces the cost head, or ``None`` to use the model's.

    ``basis``: ``model`` (predicted τ cost), ``per_send`` (``offer_costs``: arm → money per offer
    sent) or ``count`` (each offer costs 1, so the budget is a number of offers).
    """
    if basis not in COST_BASES:
        raise UserError(f"cost basis '{basis}' is not one of {', '.join(COST_BASES)}")
    if basis == "model":
        return None
    if basis == "count":
        return {str(a): 1.0 for a in arms}
    offer_costs = dict(offer_costs or {})
    missing = [str(a) for a in arms if str(a) not in offer_costs]
    if missing:
        raise UserError(f"no cost per offer sent for {', '.join(missing)}; give one for every offer")
    out = {}
    for arm in arms:
        cost = offer_costs[str(arm)]
        if cost is None or not np.isfinite(float(cost)) or float(cost) < 0:
            raise UserError(f"the cost per offer sent for '{arm}' must be a number ≥ 0, got {cost}")
        out[str(arm)] = float(cost)
    return out


def with_offer_costs(scores: pd.DataFrame, offer_costs: Mapping[str, float] | None) -> pd.DataFrame:
    """The predictions with every ``tau_cost__<arm>`` set to that offer's constant cost per send.

    Sending offer a to anyone costs ``offer_costs[a]`` and sending nothing costs 0, so the
    incremental cost is the constant itself.  ``None`` returns ``scores`` unchanged.
    """
    if offer_costs is None:
        return scores
    out = scores.copy()
    for arm, cost in offer_costs.items():
        out[f"tau_cost__{arm}"] = float(cost)
    return out


def score_arms(scores: pd.DataFrame) -> list[str]:
    """The offers a predictions frame covers (its ``tau_value__<arm>`` columns)."""
    return [c[len("tau_value__"):] for c in scores.columns if c.startswith("tau_value__")]


def candidates_for_plan(scores: pd.DataFrame, allocation: Mapping) -> Candidates:
    """The option table of a saved allocation setting: its cost basis and CPI limit.

    ``allocation`` as the Allocation page saves it: ``cost_basis`` (default ``model``),
    ``offer_costs`` (for ``per_send``) and ``cpi_max``.  Pages, report and CLI share it, so a
    plan is the same wherever it is rebuilt.
    """
    costs = plan_offer_costs(allocation.get("cost_basis") or "model", score_arms(scores), allocation.get("offer_costs"))
    return candidates_from_scores(with_offer_costs(scores, costs), cpi_max=allocation.get("cpi_max"))


def budget_text(allocation: Mapping) -> str:
    """A saved allocation setting's budget in words: "budget 20,000" or "at most 500 offers"."""
    budget = float(allocation.get("budget") or 0.0)
    if allocation.get("cost_basis") == "count":
        return f"at most {budget:,.0f} offers"
    suffix = " at a fixed cost per offer sent" if allocation.get("cost_basis") == "per_send" else ""
    return f"budget {budget:,.0f}{suffix}"


def free_picks(candidates: Candidates, choice: np.ndarray) -> int:
    """Customers whose chosen offer has an expected incremental cost of 0 (predicted ≤ 0 counts as
    0): they are in the plan at any budget, even 0."""
    rows = np.flatnonzero(np.asarray(choice) >= 0)
    return int((candidates.tau_cost[rows, np.asarray(choice)[rows]] <= 0).sum())


def _nice_ceiling(x: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``x``."""
    exponent = math.floor(math.log10(x))
    for step in (1, 2, 5, 10):
        if step * 10**exponent >= x * (1 - 1e-12):
            return float(step * 10**exponent)
    return float(10 ** (exponent + 1))


def cpi_scale(tau_value: np.ndarray, tau_cost: np.ndarray) -> tuple[float, float]:
    """A CPI limit range and starting value that fit these predictions.

    Returns ``(upper, start)``: ``upper`` is the 99th percentile of the CPI τc/τv over offers
    that add value (τv > 0), rounded up to 1, 2 or 5 × 10^k, so the slider reaches past almost
    every offer whatever the units; ``start`` is their median CPI (about half the offers pass).
    Costs below 0 count as 0, as in :func:`prune`.  ``(1.0, 0.5)`` when no offer adds value at
    a positive cost.
    """
    tau_value = np.asarray(tau_value, dtype=float)
    tau_cost = np.maximum(np.asarray(tau_cost, dtype=float), 0.0)
    adds = (tau_value > 0) & np.isfinite(tau_cost)
    cpi = tau_cost[adds] / tau_value[adds]
    cpi = cpi[cpi > 0]
    if cpi.size == 0:
        return 1.0, 0.5
    upper = _nice_ceiling(float(np.quantile(cpi, 0.99)))
    return upper, float(np.median(cpi))


def empty_plan_reason(tau_value: np.ndarray, tau_cost: np.ndarray, cpi_max: float | None, budget: float) -> str | None:
    """Why a plan gives nobody an offer, in the user's terms; ``None`` when some offer fits.

    Checked in order: no offer adds value; the CPI limit removes every offer that does (names
    the lowest CPI); the budget is below the cheapest remaining offer (names its cost).
    """
    tau_value = np.asarray(tau_value, dtype=float)
    tau_cost = np.maximum(np.asarray(tau_cost, dtype=float), 0.0)
    adds = tau_value > 0
    if not adds.any():
        return "no offer is predicted to add value for any customer (every τ value ≤ 0), so sending nothing is best"
    cpi = np.where(adds, tau_cost / np.where(adds, tau_value, 1.0), np.inf)
    passing = adds if cpi_max is None else adds & (cpi <= cpi_max)
    if not passing.any():
        return (f"the CPI limit {cpi_max:.3g} removes every offer: the lowest cost per incremental unit of value of any "
                f"offer is {cpi[adds].min():.3g}; raise the limit above it")
    cheapest = float(tau_cost[passing].min())
    if cheapest > budget:
        return (f"the budget {budget:,.4g} is below the cheapest worthwhile offer's expected cost {cheapest:,.4g}; "
                "raise the budget")
    return None


def prune(arms, tau_value, tau_cost, cpi_max: float | None = None, eligible: np.ndarray | None = None) -> Candidates:
    """Keep offers with τv > 0, CPI ≤ ``cpi_max`` and eligibility; costs below 0 become 0."""
    tau_value = np.asarray(tau_value, dtype=float)
    tau_cost = np.maximum(np.asarray(tau_cost, dtype=float), 0.0)
    if cpi_max is not None and (not np.isfinite(cpi_max) or cpi_max < 0):
        raise UserError(f"{setting('cpi_max')} must be a number ≥ 0, got {cpi_max}")
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
