"""Fairness audit of who gets offers: per group of a user-chosen attribute (region, age band,
…) the offer rate, spend per customer and predicted benefit per customer, their ratios to the
largest group with 95% intervals, and how much of an offer-rate gap the budget explains.

Ratios of two independent group means use the delta method on the log scale:

    Var(ln(m_g / m_ref)) ≈ s_g² / (n_g·m_g²) + s_ref² / (n_ref·m_ref²),

interval = ratio · exp(±1.96·√Var) (undefined when a mean is 0).

The budget's part.  A customer is *eligible* when the model predicts some offer adds value
(within the CPI limit, when one is set).  If eligible customers of two groups get offers at the
same rate, an offer-rate gap comes from whom the model expects an offer to help, not from the
budget; if the rate among the eligible differs, the budget cut (most value per cost first)
lands unevenly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError
from ..joins import lookup_on_id


def ratio_interval(x_group, x_reference, alpha: float = 0.05) -> tuple[float, float, float]:
    """Ratio of two independent means with a delta-method (log-scale) interval."""
    x_group, x_reference = np.asarray(x_group, dtype=float), np.asarray(x_reference, dtype=float)
    mg, mr = x_group.mean(), x_reference.mean()
    if mg <= 0 or mr <= 0:
        return (float(mg / mr) if mr > 0 else float("nan")), float("nan"), float("nan")
    var = x_group.var() / (len(x_group) * mg**2) + x_reference.var() / (len(x_reference) * mr**2)
    z = stats.norm.ppf(1 - alpha / 2)
    ratio = mg / mr
    return float(ratio), float(ratio * np.exp(-z * np.sqrt(var))), float(ratio * np.exp(z * np.sqrt(var)))


def check_groups(frame: pd.DataFrame, attribute: str) -> np.ndarray:
    """The group of every customer (missing values form their own); refuses a missing column or a single group."""
    if attribute not in frame.columns:
        raise UserError(f"fairness attribute '{attribute}' is not a column of the log")
    groups = frame[attribute].astype("string").fillna("(missing)").to_numpy()
    levels = np.unique(groups)
    if len(levels) < 2:
        raise UserError(f"attribute '{attribute}' has a single group ({levels[0] if len(levels) else 'no rows'}); "
                        "a fairness audit compares groups — choose an attribute with at least two")
    return groups


@dataclass(frozen=True)
class FairnessAudit:
    attribute: str
    reference: str
    table: pd.DataFrame
    notes: list[str]

    def to_dict(self) -> dict:
        return {"attribute": self.attribute, "reference_group": self.reference,
                "groups": self.table.to_dict("records"), "notes": self.notes}


def fairness_audit(attribute: pd.Series, action, control: str, spend=None, benefit=None, eligible=None,
                   alpha: float = 0.05) -> FairnessAudit:
    """Offer rates, spend and predicted benefit per group of ``attribute`` (see the module docstring).

    Parameters
    ----------
    attribute : Series
        The group of every customer (missing values form their own group).
    action : array
        The offer each customer got (``control`` for none).
    spend, benefit : array, optional
        Cost and predicted incremental value of each customer's offer (0 for none).
    eligible : bool array, optional
        Customers the model finds some offer worth sending to.
    """
    name = str(attribute.name)
    groups = check_groups(attribute.to_frame(name), name)
    levels, sizes = np.unique(groups, return_counts=True)
    offered = (np.asarray(action).astype(str) != str(control)).astype(float)
    reference = str(levels[np.argmax(sizes)])
    columns = {"offer_rate": offered}
    if spend is not None:
        columns["spend_per_customer"] = np.asarray(spend, dtype=float)
    if benefit is not None:
        columns["benefit_per_customer"] = np.asarray(benefit, dtype=float)
    rows = []
    ref = groups == reference
    for level in levels:
        rows_g = groups == level
        row = {"group": str(level), "n": int(rows_g.sum())}
        for metric, values in columns.items():
            row[metric] = float(values[rows_g].mean())
            ratio, low, high = ratio_interval(values[rows_g], values[ref], alpha)
            row[f"{metric}_ratio"], row[f"{metric}_ratio_low"], row[f"{metric}_ratio_high"] = ratio, low, high
        if eligible is not None:
            eligible = np.asarray(eligible, dtype=bool)
            row["eligible_rate"] = float(eligible[rows_g].mean())
            among = rows_g & eligible
            row["offer_rate_among_eligible"] = float(offered[among].mean()) if among.any() else float("nan")
            if among.any() and (ref & eligible).any():
                ratio, low, high = ratio_interval(offered[among], offered[ref & eligible], alpha)
            else:
                ratio = low = high = float("nan")
            row["eligible_offer_rate_ratio"], row["eligible_offer_rate_ratio_low"], row["eligible_offer_rate_ratio_high"] = ratio, low, high
        rows.append(row)
    table = pd.DataFrame(rows)
    notes = []
    for row in rows:
        if row["group"] == reference:
            continue
        text = f"'{row['group']}' gets offers at {row['offer_rate_ratio']:.2f}× the rate of '{reference}'"
        if np.isfinite(row["offer_rate_ratio_low"]):
            text += f" (95% CI {row['offer_rate_ratio_low']:.2f}–{row['offer_rate_ratio_high']:.2f})"
        if eligible is not None and np.isfinite(row.get("eligible_offer_rate_ratio", np.nan)):
            low, high = row["eligible_offer_rate_ratio_low"], row["eligible_offer_rate_ratio_high"]
            if np.isfinite(low) and low <= 1 <= high:
                text += (f"; among customers the model finds an offer worth sending the rates match "
                         f"({row['eligible_offer_rate_ratio']:.2f}×), so the gap comes from whom the model expects an offer "
                         "to help, not from the budget")
            else:
                text += (f"; among customers the model finds an offer worth sending the ratio is "
                         f"{row['eligible_offer_rate_ratio']:.2f}× (95% CI {low:.2f}–{high:.2f}): the budget cut, which keeps "
                         "the most value per cost, lands unevenly on this group")
        notes.append(text)
    return FairnessAudit(name, reference, table, notes)


def audit_log(log, attribute: str, scores: pd.DataFrame | None = None) -> FairnessAudit:
    """The audit of a live log: offers sent, realised spend and, with predictions (``id``,
    ``tau_value__<offer>``), the predicted benefit of each customer's offer and who the model
    finds worth an offer (some τ value > 0)."""
    check_groups(log.frame, attribute)
    action = np.asarray(log.action).astype(str)
    benefit = eligible = None
    predicted = lookup_on_id(log, scores, "predictions file")
    if predicted is not None:
        values = pd.DataFrame({o: pd.to_numeric(predicted[f"tau_value__{o}"], errors="coerce")
                               for o in log.treatments if f"tau_value__{o}" in predicted.columns})
        benefit = np.zeros(log.n)  # the predicted effect of the offer each customer got (0 for none)
        for offer in values.columns:
            sent = action == offer
            benefit[sent] = np.nan_to_num(values[offer].to_numpy()[sent])
        eligible = (values.fillna(-np.inf) > 0).any(axis=1).to_numpy()
    return fairness_audit(log.frame[attribute], action, log.control, spend=log.cost, benefit=benefit, eligible=eligible)
