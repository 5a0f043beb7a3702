"""Stability: would the same customers be ranked the same way again?

- Across bootstrap refits (bagging): the mean pairwise Spearman correlation of each arm's
  predictions from the different bags.
- Across time: :func:`core.uplift.stability.time_split_stability` fits models on the early and
  on the late half of the log and correlates their scores (it fits models, so it lives with them).
- Monotonicity of observed uplift across bins is reported by :mod:`.calibration`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import UserError


def bag_rank_correlation(bags: np.ndarray) -> np.ndarray:
    """Mean pairwise Spearman correlation across bags, per arm.  ``bags``: (bags × n × arms)."""
    bags = np.asarray(bags, dtype=float)
    if bags.ndim != 3 or bags.shape[0] < 2:
        raise UserError("rank stability across refits needs at least 2 bootstrap refits (bagging ≥ 2)")
    out = []
    for k in range(bags.shape[2]):
        ranks = np.apply_along_axis(stats.rankdata, 1, bags[:, :, k])
        corr = np.corrcoef(ranks)
        out.append(float(corr[np.triu_indices_from(corr, 1)].mean()))
    return np.array(out)
