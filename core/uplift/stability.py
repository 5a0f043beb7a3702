"""Time-split stability: models fitted on the early and on the late half of the log (split at
the median decision day) score every customer; the Spearman correlation of the two scores.

It fits uplift models, so it lives with them; the stability metrics that need no fit are in
:mod:`core.evaluation.stability`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from scipy import stats

from ..errors import UserError
from ..schema import ExperimentLog
from .model import UpliftModel


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
