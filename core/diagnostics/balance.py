"""Covariate balance: standardised mean differences of every feature, each arm vs control.

    SMD = (mean_a − mean_c) / sqrt((var_a + var_c) / 2)

with sample variances (ddof = 1).  Categorical features are one-hot encoded (``col_level``
columns, as ``pandas.get_dummies`` names them); |SMD| > 0.1 is flagged.  With logged or
estimated propensities the same numbers are also computed with inverse-propensity weights:
a targeted logging policy is imbalanced by design, and what matters for identification is
whether weighting restores balance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engines.base import Sums
from ..engines.local import LocalEngine
from ..errors import UserError

SMD_THRESHOLD = 0.1
MAX_LEVELS = 30


@dataclass
class DesignPart:
    """What the design columns need from the rows, adding up over any split of them: per
    feature, whether its values are numbers (a numeric type, or text whose every value reads as
    a number, as a CSV reader would type it), whether one is missing, and the count of each
    level of the non-numeric ones."""

    numeric: dict
    missing: dict
    levels: dict

    def __add__(self, other: "DesignPart") -> "DesignPart":
        return DesignPart({c: self.numeric[c] and other.numeric[c] for c in self.numeric},
                          {c: self.missing[c] or other.missing[c] for c in self.missing},
                          {c: self.levels[c] + other.levels[c] for c in self.levels})


def _is_number_column(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    present = values.dropna()
    return bool(len(present)) and not pd.to_numeric(present.astype(str), errors="coerce").isna().any()


def design_part(frame: pd.DataFrame, features: list[str]) -> DesignPart:
    """The :class:`DesignPart` of a batch of rows."""
    numeric = {col: _is_number_column(frame[col]) for col in features}
    missing = {col: bool(frame[col].isna().any()) for col in features}
    levels = {col: Counter(frame[col].astype("string").fillna("(missing)").value_counts().to_dict())
              for col in features}
    return DesignPart(numeric, missing, levels)


@dataclass(frozen=True)
class DesignSpec:
    """The design columns: per feature ``(name, kind, levels)``: numeric features as they are
    (``kind`` "number", plus a ``col_missing`` indicator when any value is missing), the others
    one-hot over their ``MAX_LEVELS`` most frequent levels (ties by name), the rest ``other``."""

    features: tuple
    missing: dict
    levels: dict

    @classmethod
    def of(cls, part: DesignPart, features: list[str], max_levels: int = MAX_LEVELS) -> "DesignSpec":
        kinds, levels = [], {}
        for col in features:
            if part.numeric[col]:
                kinds.append((col, "number"))
                continue
            counts = sorted(part.levels[col].items(), key=lambda kv: (-kv[1], kv[0]))
            top = [level for level, _ in counts[:max_levels]]
            levels[col] = (top, len(counts) > max_levels)
            kinds.append((col, "levels"))
        return cls(tuple(kinds), dict(part.missing), levels)

    @property
    def names(self) -> list[str]:
        out = []
        for col, kind in self.features:
            if kind == "number":
                out += [col, *([f"{col}_missing"] if self.missing[col] else [])]
            else:
                top, folded = self.levels[col]
                out += [f"{col}_{level}" for level in sorted(set(top) | ({"other"} if folded else set()))]
        return out


def design_matrix(frame: pd.DataFrame, features: list[str], max_levels: int = MAX_LEVELS,
                  spec: DesignSpec | None = None) -> pd.DataFrame:
    """Numeric features as they are (plus a ``col_missing`` indicator when any value is
    missing); text, categorical and boolean features one-hot, rare levels beyond the
    ``max_levels`` most frequent folded into ``col_other``.  ``spec`` (default: from ``frame``
    itself) fixes the columns for a batch of a larger log."""
    spec = spec or DesignSpec.of(design_part(frame, features), features, max_levels)
    parts = {}
    for col, kind in spec.features:
        values = frame[col]
        if kind == "number":
            numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            parts[col] = numeric
            if spec.missing[col]:
                parts[f"{col}_missing"] = np.isnan(numeric).astype(float)
        else:
            top, _ = spec.levels[col]
            text = values.astype("string").fillna("(missing)")
            text = text.where(text.isin(top), "other")
            for level in sorted(set(top) | ({"other"} if spec.levels[col][1] else set())):
                parts[f"{col}_{level}"] = (text == level).to_numpy(dtype=float)
    return pd.DataFrame(parts, index=frame.index)


def _first_sums(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σw, Σw² and Σw·x per column over the rows where x is present."""
    mask = ~np.isnan(x)
    ww = np.where(mask, w[:, None], 0.0)
    return ww.sum(axis=0), (ww**2).sum(axis=0), (ww * np.where(mask, x, 0.0)).sum(axis=0)


def _second_sum(x: np.ndarray, w: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Σw·(x − mean)² per column over the rows where x is present."""
    mask = ~np.isnan(x)
    ww = np.where(mask, w[:, None], 0.0)
    with np.errstate(invalid="ignore"):
        dev = np.where(mask, x - mean, 0.0)
    return (ww * dev**2).sum(axis=0)


def moment_sums(x: np.ndarray, weights: dict, action: np.ndarray, labels, means: dict | None = None) -> Sums:
    """The partial of the balance table over a batch: per weighting and arm, the first sums
    (Σw, Σw², Σw·x per design column) or, given the means, Σw·(x − mean)²."""
    out = Sums()
    for tag, w in weights.items():
        for arm in labels:
            rows = action == arm
            if means is None:
                out[(tag, arm)] = np.stack(_first_sums(x[rows], w[rows]))
            else:
                out[(tag, arm)] = _second_sum(x[rows], w[rows], means[(tag, arm)])
    return out


def _means(first: Sums) -> dict:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {key: sums[2] / sums[0] for key, sums in first.items()}


def _stats(first: Sums, second: Sums, tag: str, labels) -> dict:
    """Each arm's column means and unbiased (reliability-weighted) variances."""
    means = _means(first)
    out = {}
    for arm in labels:
        v1, v2, _ = first[(tag, arm)]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[arm] = (means[(tag, arm)], second[(tag, arm)] / (v1 - v2 / v1))
    return out


def _weighted_stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and unbiased (reliability-weighted) variances, ignoring NaNs."""
    first = Sums({("w", "all"): np.stack(_first_sums(x, w))})
    second = Sums({("w", "all"): _second_sum(x, w, _means(first)[("w", "all")])})
    return _stats(first, second, "w", ["all"])["all"]


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
    weights = None
    if propensity is not None:
        weights = "__balance_p"
        log = log.with_columns({weights: np.asarray(propensity, dtype=float)})
    return _balance(LocalEngine(), log, weights, features)


def balance_of(engine, log, propensity_column: str | None) -> BalanceResult:
    """:func:`balance` of a log wherever its rows are, weighted by ``1 / propensity_column``
    when one is named: the design's levels in one pass, each arm's sums in a second, the
    squares around their means in a third."""
    return _balance(engine, log, propensity_column, list(log.features))


def _balance(engine, log, propensity_column: str | None, features: list[str]) -> BalanceResult:
    if not features:
        raise UserError("no features are mapped, so balance cannot be checked; map at least one pre-treatment column")
    labels = list(log.labels)
    spec = DesignSpec.of(engine.reduce(log, lambda batch: design_part(batch.frame, features)), features)

    def weights(batch) -> dict:
        out = {"raw": np.ones(batch.n)}
        if propensity_column is not None:
            out["weighted"] = 1.0 / batch.frame[propensity_column].to_numpy(dtype=float)
        return out

    def partial(means):
        return lambda batch: moment_sums(design_matrix(batch.frame, features, spec=spec).to_numpy(dtype=float),
                                         weights(batch), batch.action, labels, means)

    first = engine.reduce(log, partial(None))
    second = engine.reduce(log, partial(_means(first)))
    tables = {tag: smd_from_stats(_stats(first, second, tag, labels), spec.names, labels, log.control)
              for tag in ("raw", *(["weighted"] if propensity_column is not None else []))}
    return BalanceResult(tables["raw"], tables.get("weighted"))
