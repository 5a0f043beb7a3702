"""Covariate balance: standardised mean differences of every feature, each arm vs control.

    SMD = (mean_a − mean_c) / sqrt((var_a + var_c) / 2)

with sample variances (ddof = 1).  Categorical features are one-hot encoded (``col_level``
columns, as ``pandas.get_dummies`` names them); |SMD| > 0.1 is flagged.  With logged or
estimated propensities the same numbers are also computed with inverse-propensity weights:
a targeted logging policy is imbalanced by design, and what matters for identification is
whether weighting restores balance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserError

SMD_THRESHOLD = 0.1
MAX_LEVELS = 30


def design_matrix(frame: pd.DataFrame, features: list[str], max_levels: int = MAX_LEVELS) -> pd.DataFrame:
    """Numeric features as they are (plus a ``col_missing`` indicator when any value is
    missing); text, categorical and boolean features one-hot, rare levels beyond the
    ``max_levels`` most frequent folded into ``col_other``."""
    parts = {}
    for col in features:
        values = frame[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            text = values.astype("string").fillna("(missing)")
            top = text.value_counts().index[:max_levels]
            text = text.where(text.isin(top), "other")
            for level in sorted(text.unique()):
                parts[f"{col}_{level}"] = (text == level).to_numpy(dtype=float)
        else:
            numeric = values.to_numpy(dtype=float, na_value=np.nan)
            parts[col] = numeric
            if np.isnan(numeric).any():
                parts[f"{col}_missing"] = np.isnan(numeric).astype(float)
    return pd.DataFrame(parts, index=frame.index)


def _weighted_stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and unbiased (reliability-weighted) variances, ignoring NaNs."""
    mask = ~np.isnan(x)
    ww = np.where(mask, w[:, None], 0.0)
    xz = np.where(mask, x, 0.0)
    v1 = ww.sum(axis=0)
    v2 = (ww**2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (ww * xz).sum(axis=0) / v1
        dev = np.where(mask, x - mean, 0.0)
        var = (ww * dev**2).sum(axis=0) / (v1 - v2 / v1)
    return mean, var


def smd_matrix(x: pd.DataFrame, action: np.ndarray, labels: list[str], control: str,
               weights: np.ndarray | None = None) -> pd.DataFrame:
    """SMD of every column of ``x``: rows = columns of ``x``, columns = non-control arms.
    With ``weights=None`` the plain sample means and variances (ddof = 1); otherwise weighted
    means and the unbiased weighted variance, which equals the ddof = 1 variance when all
    weights are equal.  A feature constant in both groups has SMD 0 when the means agree.
    """
    values = x.to_numpy(dtype=float)
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    stats = {arm: _weighted_stats(values[action == arm], w[action == arm]) for arm in labels}
    return smd_from_stats(stats, list(x.columns), labels, control)


def smd_from_stats(stats: dict, columns: list[str], labels: list[str], control: str) -> pd.DataFrame:
    """The SMD table from each arm's (means, variances) of the design columns."""
    mean_c, var_c = stats[control]
    out = {}
    for arm in labels:
        if arm == control:
            continue
        mean_a, var_a = stats[arm]
        pooled = np.sqrt((var_a + var_c) / 2.0)
        diff = mean_a - mean_c
        with np.errstate(invalid="ignore", divide="ignore"):
            smd = np.where(pooled > 0, diff / pooled, np.where(np.isclose(diff, 0.0), 0.0, np.inf * np.sign(diff)))
        out[arm] = smd
    return pd.DataFrame(out, index=columns)


@dataclass(frozen=True)
class BalanceResult:
    """SMDs per (one-hot) feature and arm, raw and, when propensities exist, weighted."""

    smd: pd.DataFrame
    smd_weighted: pd.DataFrame | None
    threshold: float = SMD_THRESHOLD

    @property
    def max_abs_smd(self) -> float:
        return float(np.nanmax(np.abs(self.smd.to_numpy()))) if self.smd.size else 0.0

    @property
    def max_abs_smd_weighted(self) -> float | None:
        if self.smd_weighted is None or not self.smd_weighted.size:
            return None
        return float(np.nanmax(np.abs(self.smd_weighted.to_numpy())))

    def flagged(self, weighted: bool = False) -> pd.DataFrame:
        """(feature, arm, smd) rows above the threshold, largest first."""
        frame = self.smd_weighted if weighted and self.smd_weighted is not None else self.smd
        long = frame.rename_axis("feature").reset_index().melt(id_vars="feature", var_name="arm", value_name="smd")
        long = long[long["smd"].abs() > self.threshold]
        return long.reindex(long["smd"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        long = self.smd.rename_axis("feature").reset_index().melt(id_vars="feature", var_name="arm", value_name="smd")
        if self.smd_weighted is not None:
            weighted = self.smd_weighted.rename_axis("feature").reset_index().melt(
                id_vars="feature", var_name="arm", value_name="smd_weighted")
            long = long.merge(weighted, on=["feature", "arm"])
        long["flag"] = long["smd"].abs() > self.threshold
        return long

    def to_dict(self) -> dict:
        out = {"max_abs_smd": self.max_abs_smd, "smd": {f: row.to_dict() for f, row in self.smd.iterrows()}}
        if self.smd_weighted is not None:
            out["max_abs_smd_weighted"] = self.max_abs_smd_weighted
            out["smd_weighted"] = {f: row.to_dict() for f, row in self.smd_weighted.iterrows()}
        return out


def balance(log, propensity: np.ndarray | None = None, features: list[str] | None = None) -> BalanceResult:
    """Balance of ``log``'s features (or ``features``) between each arm and control.

    Parameters
    ----------
    log : core.schema.ExperimentLog
    propensity : array, optional
        Probability of each row's logged arm; adds the inverse-propensity-weighted SMDs.
    features : list of str, optional
        Defaults to the log's features.
    """
    features = list(log.features if features is None else features)
    if not features:
        raise UserError("no features are mapped, so balance cannot be checked; map at least one pre-treatment column")
    x = design_matrix(log.frame, features)
    action = log.action
    raw = smd_matrix(x, action, list(log.labels), log.control)
    weighted = None
    if propensity is not None:
        weighted = smd_matrix(x, action, list(log.labels), log.control, 1.0 / np.asarray(propensity, dtype=float))
    return BalanceResult(raw, weighted)
