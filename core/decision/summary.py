"""What a plan does per offer: the table the Allocation page and the report show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .allocate import Allocation
from .policy import Candidates


def plan_summary(plan: Allocation, candidates: Candidates) -> pd.DataFrame:
    """One row per arm of the plan, the control (no offer) first, then every offer, including
    offers nobody gets (zeros).

    Columns: ``action``; ``customers`` assigned to it; ``spend``, the sum of their predicted
    incremental cost (τ cost) of that offer; ``incremental_value``, the sum of their predicted
    incremental value (τ value).  The control's spend and value are 0.  The sums over the rows
    are the plan's ``total_cost`` and ``total_value``.
    """
    choice = np.asarray(plan.choice)
    rows = np.flatnonzero(choice >= 0)
    tau_value, tau_cost = np.zeros(len(choice)), np.zeros(len(choice))
    tau_value[rows] = candidates.tau_value[rows, choice[rows]]
    tau_cost[rows] = candidates.tau_cost[rows, choice[rows]]
    action = np.where(choice >= 0, np.array(plan.arms, dtype=object)[np.maximum(choice, 0)], plan.control)
    frame = pd.DataFrame({"action": action, "tau_value": tau_value, "tau_cost": tau_cost})
    per_arm = frame.groupby("action").agg(customers=("action", "size"), spend=("tau_cost", "sum"),
                                          incremental_value=("tau_value", "sum"))
    labels = [plan.control, *plan.arms]
    per_arm = per_arm.reindex(labels).fillna(0).astype({"customers": int})
    return per_arm.rename_axis("action").reset_index()
