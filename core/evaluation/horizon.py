"""Learning horizon vs accounting horizon.

Models rank customers on the short-horizon value (the label that arrives quickly); the business
books a longer one.  When the log also has the long-horizon value, the ratio between the two
effects is estimated per bin of predicted short-horizon effect:

    r_b = (Ȳlong_t − Ȳlong_c) / (Ȳshort_t − Ȳshort_c)      within bin b (Hájek means, as the readout)

with a delta-method interval (:func:`core.diagnostics.readout.effect_ratio`; shown only when the
bin's short-horizon effect is significant).  A plan's long-horizon value is Σ τ_short(i, a_i)·r_b(i),
each chosen customer's predicted effect scaled by the ratio of their bin (the overall ratio where
a bin's is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..diagnostics.readout import effect_ratio
from ..errors import UserError
from .calibration import equal_count_bins


@dataclass(frozen=True)
class HorizonRatios:
    """Per-bin ratios of one offer (``table``) and the overall one, with the bin edges."""

    table: pd.DataFrame
    overall: dict
    edges: np.ndarray

    def ratio_for(self, score: np.ndarray) -> np.ndarray:
        """The ratio to apply to each predicted effect: its bin's, or the overall where undefined."""
        bins = np.clip(np.searchsorted(self.edges, np.asarray(score, dtype=float), side="right") - 1, 0, len(self.table) - 1)
        per_bin = self.table["ratio"].where(self.table["defined"], self.overall["ratio"]).to_numpy(dtype=float)
        return per_bin[bins]

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def to_dict(self) -> dict:
        return {"overall": self.overall, "bins": self.table.to_dict("records")}


def horizon_ratios(short, long, score, treatment, weights=None, n_bins: int = 5, alpha: float = 0.05) -> HorizonRatios:
    """Long- over short-horizon effect per bin of ``score`` (equal-count bins) and overall.

    ``short``/``long``: the two outcomes of the rows of one offer and the control;
    ``treatment``: 1 for the offer's rows.
    """
    short, long, score = (np.asarray(a, dtype=float) for a in (short, long, score))
    t = np.asarray(treatment).astype(int)
    if not (len(short) == len(long) == len(score) == len(t)):
        raise UserError("short, long, score and treatment differ in length")
    w = np.ones(len(short)) if weights is None else np.asarray(weights, dtype=float)
    n_bins = int(max(1, min(n_bins, len(np.unique(score)))))
    bins = equal_count_bins(score, n_bins) if n_bins > 1 else np.zeros(len(score), dtype=int)
    rows = []
    for b in range(n_bins):
        in_bin = bins == b
        treated, control = in_bin & (t == 1), in_bin & (t == 0)
        row = {"bin": b + 1, "n": int(in_bin.sum()), "predicted": float(score[in_bin].mean())}
        if treated.sum() < 2 or control.sum() < 2:
            row.update(ratio=float("nan"), se=float("nan"), ci_low=float("nan"), ci_high=float("nan"), defined=False,
                       short_effect=float("nan"), long_effect=float("nan"))
        else:
            r = effect_ratio(long, short, treated, control, w, alpha)
            row.update(ratio=r["ratio"], se=r["se"], ci_low=r["ci_low"], ci_high=r["ci_high"], defined=r["defined"],
                       short_effect=r["denominator_effect"], long_effect=r["numerator_effect"])
        rows.append(row)
    overall = effect_ratio(long, short, t == 1, t == 0, w, alpha)
    edges = np.array([score[bins == b].min() for b in range(n_bins)])
    edges[0] = -np.inf
    return HorizonRatios(pd.DataFrame(rows), overall, edges)


def plan_long_value(tau_value_chosen: np.ndarray, arm_of_choice: np.ndarray, ratios: dict[str, HorizonRatios]) -> float:
    """Σ τ_short·r over the customers with an offer (``arm_of_choice`` names their offer, or is
    empty for no offer).  ``ratios``: per offer, e.g. from :func:`core.evaluation.evaluate`'s
    ``arms[offer].horizon``."""
    total = 0.0
    for arm, horizon in ratios.items():
        rows = arm_of_choice == arm
        if rows.any():
            total += float(np.sum(tau_value_chosen[rows] * horizon.ratio_for(tau_value_chosen[rows])))
    return total


def allocation_long_value(plan, candidates, ratios: dict[str, HorizonRatios]) -> float:
    """:func:`plan_long_value` of an :class:`core.decision.allocate.Allocation` over its candidates."""
    chosen = np.asarray(plan.choice)
    rows = chosen >= 0
    arm = np.where(rows, np.array(candidates.arms, dtype=object)[np.maximum(chosen, 0)], "")
    tau = np.where(rows, candidates.tau_value[np.arange(candidates.n), np.maximum(chosen, 0)], 0.0)
    return plan_long_value(tau, arm, ratios)
