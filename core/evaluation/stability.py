"""Stability: would the same customers be ranked the same way again?

- Across bootstrap refits (bagging): the mean pairwise Spearman correlation of each arm's
  predictions from the different bags.
- Across time: models fitted on the early and on the late half of the log (split at the
  median decision day) score every customer; the Spearman correlation of the two scores.
- Monotonicity of observed uplift across bins is reported by :mod:`.calibration`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
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


@dataclass(frozen=True)
class TimeSplit:
    """Spearman correlation per arm between early-half and late-half models' scores."""

    cut: str
    n_early: int
    n_late: int
    correlation: dict[str, float]

    def to_dict(self) -> dict:
        return {"cut": self.cut, "n_early": self.n_early, "n_late": self.n_late, "correlation": self.correlation}


def time_split_stability(log, params: dict, progress=None) -> TimeSplit:
    """Fit the same learner on the early and the late half of ``log`` (by its time column)
    and compare how the two rank every customer."""
    from ..schema import ExperimentLog
    from ..uplift.model import UpliftModel

    if not log.columns.time:
        raise UserError("the time-split check needs a decision day / time column; map one in step 1")
    time = pd.to_datetime(log.frame[log.columns.time], errors="coerce")
    if time.isna().all():
        time = log.frame[log.columns.time]
    cut = time.sort_values().iloc[len(time) // 2]
    early = (time < cut).to_numpy()
    if early.sum() < 100 or (~early).sum() < 100:
        raise UserError(f"splitting '{log.columns.time}' at {cut} leaves too few rows on one side; the time split needs a spread of days")
    scores = []
    for i, rows in enumerate((early, ~early)):
        part = ExperimentLog.from_frame(log.frame[rows].reset_index(drop=True), log.columns)
        model = UpliftModel(**{**params, "bagging": 0}).fit(
            part, progress=None if progress is None else (lambda f, m, i=i: progress((i + f) / 2, f"{'early' if i == 0 else 'late'} half · {m}")))
        scores.append(model.predict(log.frame))
    correlation = {arm: float(stats.spearmanr(scores[0][f"tau_value__{arm}"], scores[1][f"tau_value__{arm}"])[0])
                   for arm in log.treatments}
    return TimeSplit(str(cut), int(early.sum()), int((~early).sum()), correlation)
