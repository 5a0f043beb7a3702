"""What an uplift model refuses to learn from: too few rows of an arm, a constant outcome, no
features, or a feature that gives the arm away (recorded after the offer was chosen)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError

MIN_ROWS_PER_ARM = 50


def check_log(log, min_rows: int = MIN_ROWS_PER_ARM) -> None:
    """Refuse logs no uplift model can learn from, naming every problem at once."""
    problems = []
    counts = pd.Series(log.action).value_counts()
    for label in log.labels:
        n = int(counts.get(label, 0))
        if n < min_rows:
            problems.append(f"arm '{label}' has {n} rows; uplift models need at least {min_rows} per arm")
    value = log.value
    if np.ptp(value) == 0:
        problems.append(f"value column '{log.columns.value}' is constant ({value[0]:g} in every row); there is no effect to learn")
    if log.columns.cost:
        cost = log.cost
        if np.ptp(cost) == 0:
            problems.append(f"cost column '{log.columns.cost}' is constant ({cost[0]:g} in every row); "
                            "give a constant cost per arm instead")
    if not log.features:
        problems.append("no features are mapped; uplift models need at least one pre-treatment column")
    action = pd.Series(log.action, index=log.frame.index)
    for feature in log.features:
        values = log.frame[feature]
        if values.isna().all():
            problems.append(f"feature '{feature}' has no values (all missing); drop it from the features")
            continue
        leak = _leaks_action(values, action)
        if leak:
            problems.append(f"feature '{feature}' {leak}; it was probably recorded after the offer was chosen — drop it")
    if problems:
        raise UserError(f"the log cannot be modelled ({len(problems)} problem{'s' if len(problems) > 1 else ''})", problems)


def _leaks_action(values: pd.Series, action: pd.Series) -> str | None:
    """Describe how ``values`` predicts the arm perfectly, or ``None``."""
    present = values.notna()
    values, action = values[present], action[present]
    if len(values) == 0 or action.nunique() < 2:
        return None
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        ranges = values.groupby(action).agg(["min", "max"]).sort_values("min")
        if len(ranges) >= 2 and (ranges["min"].iloc[1:].to_numpy() > ranges["max"].iloc[:-1].to_numpy()).all():
            return "separates the arms perfectly (each arm has its own range of values)"
        return None
    text = values.astype("string")
    if text.nunique() * 2 > len(text):
        return None  # id-like text: too few rows per level to call it a leak
    arms_per_level = action.groupby(text).nunique()
    if (arms_per_level == 1).all():
        return "determines the arm (every level occurs with a single arm)"
    return None
