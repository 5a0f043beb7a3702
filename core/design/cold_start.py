"""Customers the model cannot score: a segment-level decision instead.

A new customer is *cold* when none of the model's features is known for them (a column missing
from the file, or every feature empty in their row), or when their lifecycle segment was never
seen in the training log.  Their τ value and τ cost per offer are the readout's average effects
within their segment (the segment's arm means, inverse-propensity weighted like the readout);
a segment unseen or too thin for a readout (fewer than 2 rows in an arm) gets the effects over
all customers.  The allocation then treats them like everyone else — the same budget and CPI
limit — and flags them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..diagnostics.readout import readout
from ..errors import UserError
from ..schema import ExperimentLog

ALL = "(all customers)"


def segment_effects(log) -> pd.DataFrame:
    """Readout effects per segment (rows) and ``tau_value__<offer>`` / ``tau_cost__<offer>``
    (columns), plus an :data:`ALL` row; segments too thin for a readout are left out."""
    def effects(sub) -> dict:
        ro = readout(sub).effects
        out = {f"tau_{r['outcome']}__{r['arm']}": float(r["effect"]) for _, r in ro.iterrows()}
        for arm in sub.treatments:
            out.setdefault(f"tau_cost__{arm}", float(sub.columns.action_cost_map.get(arm, np.nan))
                           if sub.columns.action_cost else np.nan)
        return out

    rows = {ALL: effects(log)}
    if log.columns.segment:
        segments = log.frame[log.columns.segment].astype("string").fillna("(missing)")
        for segment in sorted(segments.unique()):
            part = log.frame.loc[(segments == segment).to_numpy()].reset_index(drop=True)
            try:
                sub = ExperimentLog.from_frame(part, log.columns)
                if set(sub.labels) != set(log.labels):
                    continue
                rows[str(segment)] = effects(sub)
            except UserError:
                continue
    return pd.DataFrame.from_dict(rows, orient="index")


def score_with_cold_start(model, frame: pd.DataFrame, effects: pd.DataFrame, segment: str | None = None) -> pd.DataFrame:
    """The model's predictions where it can score a customer, segment-level effects where not.

    Returns the prediction columns plus ``cold_start`` (bool) and ``cold_start_reason``.
    ``effects`` is :func:`segment_effects` of the training log; ``segment`` its segment column.
    """
    n = len(frame)
    features = list(model.features_)
    present = [f for f in features if f in frame.columns]
    reason = np.full(n, "", dtype=object)
    if not present:
        reason[:] = "none of the model's features in the file"
    else:
        empty = frame[present].isna().all(axis=1).to_numpy()
        reason[empty] = "every model feature empty"
    known_segments = set(effects.index) - {ALL}
    seg = None
    if segment:
        if segment not in frame.columns:
            raise UserError(f"segment column '{segment}' is missing from the customers to score")
        seg = frame[segment].astype("string").fillna("(missing)").to_numpy()
        unseen = (reason == "") & ~np.isin(seg, list(known_segments))
        reason[unseen] = "segment not seen in the training log"
    cold = reason != ""
    columns = list(effects.columns)
    out = pd.DataFrame(np.nan, index=range(n), columns=columns)
    warm = np.flatnonzero(~cold)
    if len(warm):
        scoring = frame.iloc[warm].copy()
        for f in features:
            if f not in scoring.columns:
                scoring[f] = np.nan
        predicted = model.predict(scoring.reset_index(drop=True))
        out.iloc[warm, [columns.index(c) for c in predicted.columns if c in columns]] = \
            predicted[[c for c in predicted.columns if c in columns]].to_numpy()
    if cold.any():
        keys = np.full(n, ALL, dtype=object) if seg is None else np.where(np.isin(seg, list(known_segments)), seg, ALL)
        out.iloc[np.flatnonzero(cold)] = effects.loc[keys[cold], columns].to_numpy(dtype=float)
    out["cold_start"] = cold
    out["cold_start_reason"] = reason
    return out
