"""A stored campaign (monitoring series) end to end, as the Monitor page and the report run it:
the series' days as a log under its mapping, the model's predictions for its customers, then
:func:`core.monitoring.daily.monitor`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError
from ..schema import ColumnMap, ExperimentLog
from .daily import Monitoring, Pacing, Thresholds, monitor


@dataclass(frozen=True)
class Campaign:
    log: ExperimentLog
    scores: pd.DataFrame | None
    result: Monitoring


def model_key(config: dict, fitted) -> str | None:
    """The fitted model whose predictions the calibration check uses: the saved allocation's,
    else the recommended one, else the first fitted (the Monitor page and the report agree)."""
    keys = list(fitted)
    for key in ((config.get("allocation") or {}).get("model"), config.get("recommended_model")):
        if key in keys:
            return key
    return keys[0] if keys else None


def predictions(model, log: ExperimentLog) -> pd.DataFrame | None:
    """The model's τ for every customer of ``log`` with ``id`` (None when the log has no id or
    lacks the model's features: calibration then cannot be checked)."""
    if model is None or not log.columns.id:
        return None
    missing = [f for f in model.features_ if f not in log.frame.columns]
    if missing:
        return None
    scores = model.predict(log.frame)
    scores.insert(0, "id", np.asarray(log.ids))
    return scores


def monitor_series(workspace, series: str, reference: pd.DataFrame | None = None, model=None,
                   plan: pd.DataFrame | None = None, thresholds: Thresholds | None = None,
                   pacing: Pacing | None = None, psi_bins: int = 10) -> Campaign:
    """Monitor every stored day of ``series`` (its stored mapping) against ``reference``."""
    info = workspace.series_info(series)
    if info is None:
        raise UserError(f"no days stored for campaign '{series}' yet; upload the first day's log")
    if not info["mapping"]:
        raise UserError(f"campaign '{series}' has no stored column mapping")
    log = ExperimentLog.from_frame(workspace.load_series(series), ColumnMap.from_dict(info["mapping"]), require_value=True)
    scores = predictions(model, log)
    result = monitor(log, reference=reference, plan=plan, scores=scores, psi_bins=psi_bins,
                     thresholds=thresholds, pacing=pacing)
    return Campaign(log, scores, result)
