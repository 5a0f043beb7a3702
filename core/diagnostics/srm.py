"""Sample-ratio mismatch: do the arm counts fit the split the experiment intended?

Pearson's chi-square goodness of fit of observed arm counts to the intended split
(``scipy.stats.chisquare``), dof = arms − 1, alarm at p < α (default 0.001, the industry
convention).  Overall, per segment, per day and cumulatively over days; every group is tested
against the same intended weights.  Counting runs in DuckDB, so a log larger than memory
can be checked straight from its file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import chi2_contingency

from ..errors import UserError, setting
from ..io import file_columns, group_counts

DEFAULT_ALPHA = 0.001
MAX_GROUPS = 1000


@dataclass(frozen=True)
class SRMGroup:
    """The chi-square test of one set of arm counts."""

    n: int
    chi2: float
    p_value: float
    alarm: bool
    observed: dict[str, int]
    expected: dict[str, float]
    worst_arm: str
    worst_observed_share: float
    worst_expected_share: float

    @property
    def worst_direction(self) -> str:
        return "over" if self.worst_observed_share > self.worst_expected_share else "under"

    def to_dict(self) -> dict:
        return {"n": self.n, "chi2": self.chi2, "p_value": self.p_value, "alarm": self.alarm,
                "observed": self.observed, "expected": self.expected, "worst_arm": self.worst_arm,
                "worst_direction": self.worst_direction, "worst_observed_share": self.worst_observed_share,
                "worst_expected_share": self.worst_expected_share}


@dataclass(frozen=True)
class SRMResult:
    """Overall SRM test plus optional per-group and per-day tests.

    ``by`` maps each value of the ``by_column`` to its test; ``days`` holds the per-day
    tests and ``cumulative`` the test of all days up to and including each day.
    """

    overall: SRMGroup
    dof: int
    alpha: float
    weights: dict[str, float]
    by_column: str | None = None
    by: dict[str, SRMGroup] = field(default_factory=dict)
    time_column: str | None = None
    days: dict[str, SRMGroup] = field(default_factory=dict)
    cumulative: dict[str, SRMGroup] = field(default_factory=dict)

    @property
    def alarm(self) -> bool:
        return self.overall.alarm

    def to_dict(self) -> dict:
        """The CLI's JSON: the contract's keys first, extras after."""
        o = self.overall
        out = {
            "chi2": o.chi2, "dof": self.dof, "p_value": o.p_value, "alarm": o.alarm,
            "observed": o.observed, "expected": o.expected,
            "by": {k: {"n": g.n, "chi2": g.chi2, "p_value": g.p_value, "alarm": g.alarm,
                       "worst_arm": g.worst_arm, "worst_direction": g.worst_direction} for k, g in self.by.items()},
            "alpha": self.alpha, "weights": self.weights, "by_column": self.by_column,
            "worst_arm": o.worst_arm, "worst_direction": o.worst_direction,
            "worst_observed_share": o.worst_observed_share, "worst_expected_share": o.worst_expected_share,
        }
        if self.time_column:
            out["time_column"] = self.time_column
            out["days"] = {k: {"n": g.n, "chi2": g.chi2, "p_value": g.p_value, "alarm": g.alarm} for k, g in self.days.items()}
            out["cumulative"] = {k: {"n": g.n, "p_value": g.p_value, "alarm": g.alarm} for k, g in self.cumulative.items()}
        return out

    def table(self) -> pd.DataFrame:
        """One row per test (overall, each group, each day) for display and download."""
        rows = [("overall", "all", self.overall)]
        rows += [(self.by_column, k, g) for k, g in self.by.items()]
        rows += [(f"{self.time_column} (day)", k, g) for k, g in self.days.items()]
        rows += [(f"{self.time_column} (cumulative)", k, g) for k, g in self.cumulative.items()]
        return pd.DataFrame([{"level": level, "group": group, "n": g.n, "chi2": g.chi2, "p_value": g.p_value,
                              "alarm": g.alarm, "worst_arm": g.worst_arm, "direction": g.worst_direction,
                              "observed_share": g.worst_observed_share, "expected_share": g.worst_expected_share}
                             for level, group, g in rows])


def normalise_weights(labels: list[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Intended split as shares summing to 1; equal when ``weights`` is None.

    Every arm of the log needs a weight and every weight an arm: a mismatch names the label.
    """
    if not weights:
        return {label: 1.0 / len(labels) for label in labels}
    unknown = [l for l in weights if l not in labels]
    if unknown:
        raise UserError(f"{setting('expected')} names arm(s) {', '.join(map(repr, unknown))} that are not in the log; arms: {', '.join(labels)}")
    missing = [l for l in labels if l not in weights]
    if missing:
        raise UserError(f"{setting('expected')} gives no weight for arm(s) {', '.join(map(repr, missing))}; give every arm a weight")
    bad = {l: w for l, w in weights.items() if not (isinstance(w, (int, float)) and np.isfinite(w) and w > 0)}
    if bad:
        label, value = next(iter(bad.items()))
        raise UserError(f"{setting('expected')} weight for arm '{label}' must be a positive number, got {value}")
    total = float(sum(weights.values()))
    return {label: float(weights[label]) / total for label in labels}


def chisquare_counts(observed: Mapping[str, int], shares: Mapping[str, float], alpha: float) -> SRMGroup:
    """Pearson goodness of fit of ``observed`` counts to ``shares`` (as ``scipy.stats.chisquare``)."""
    labels = list(shares)
    counts = np.array([int(observed.get(l, 0)) for l in labels], dtype=float)
    n = counts.sum()
    expected = np.array([shares[l] for l in labels]) * n
    if n == 0:
        return SRMGroup(0, float("nan"), float("nan"), False, {l: 0 for l in labels},
                        {l: 0.0 for l in labels}, labels[0], float("nan"), float(shares[labels[0]]))
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p_value = float(stats.chi2.sf(chi2, len(labels) - 1))
    observed_share = counts / n
    worst = int(np.argmax(np.abs(counts - expected) / np.sqrt(expected)))
    return SRMGroup(
        n=int(n), chi2=chi2, p_value=p_value, alarm=bool(p_value < alpha),
        observed={l: int(c) for l, c in zip(labels, counts)},
        expected={l: float(e) for l, e in zip(labels, expected)},
        worst_arm=labels[worst], worst_observed_share=float(observed_share[worst]),
        worst_expected_share=float(shares[labels[worst]]),
    )


# --- counting -------------------------------------------------------------------------------

def count_arms(source, action: str, by: list[str] | None = None) -> pd.DataFrame:
    """Counts per arm (and per ``by`` columns) of a frame or a file, computed in DuckDB
    (:func:`core.io.group_counts`: a file is never loaded whole).

    Returns
    -------
    DataFrame with columns ``by…``, ``arm``, ``n`` (labels and groups as text).
    """
    by = list(by or [])
    columns = file_columns(source)
    counts = group_counts(source, [*by, action]) if all(c in columns for c in [action, *by]) else None
    return counts_by_arm(counts, action, by, columns)


def counts_by_arm(counts: pd.DataFrame | None, action: str, by: list[str], columns: list[str]) -> pd.DataFrame:
    """An engine's counts per (``by``…, ``action``) as the SRM tests read them (``by``…,
    ``arm``, ``n``); ``None`` counts mean a column is missing, which is named."""
    missing = [c for c in [action, *by] if c not in columns]
    if missing or counts is None:
        raise UserError(f"column(s) {', '.join(map(repr, missing))} not in the log; columns: {', '.join(columns[:30])}")
    counts = counts.copy()
    counts.columns = [*by, "arm", "n"]
    counts["n"] = counts["n"].astype(np.int64)
    if counts["arm"].isna().any():
        raise UserError(f"action column '{action}' has {int(counts.loc[counts['arm'].isna(), 'n'].sum())} empty values")
    return counts


def srm_from_counts(
    counts: pd.DataFrame,
    *,
    control: str | None = None,
    weights: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    by: str | None = None,
    time: str | None = None,
) -> SRMResult:
    """SRM tests from :func:`count_arms` output (grouped by ``by`` and/or ``time``)."""
    if not (0 < alpha < 1):
        raise UserError(f"{setting('alpha')} must be between 0 and 1, got {alpha}")
    labels = sorted(counts["arm"].unique().tolist())
    if control is not None:
        if control not in labels:
            raise UserError(f"control label '{control}' is not an arm of the log; arms: {', '.join(labels[:20])}")
        labels = [control] + [l for l in labels if l != control]
    if len(labels) < 2:
        raise UserError(f"the log has {len(labels)} arm ({', '.join(labels)}); an SRM check needs at least 2")
    shares = normalise_weights(labels, weights)
    total = counts.groupby("arm")["n"].sum()
    overall = chisquare_counts(total.to_dict(), shares, alpha)

    def per_group(column: str) -> dict[str, SRMGroup]:
        n_groups = counts[column].nunique(dropna=False)
        if n_groups > MAX_GROUPS:
            raise UserError(f"{setting('by')} column '{column}' has {n_groups:,} distinct values; at most {MAX_GROUPS:,} groups can be "
                            "tested (choose a segment or day column, not an id)")
        table = counts.assign(**{column: counts[column].fillna("(missing)")}).pivot_table(
            index=column, columns="arm", values="n", aggfunc="sum", fill_value=0)
        return {str(k): chisquare_counts(row.to_dict(), shares, alpha) for k, row in table.iterrows()}

    groups = per_group(by) if by else {}
    days: dict[str, SRMGroup] = {}
    cumulative: dict[str, SRMGroup] = {}
    if time:
        days = per_group(time)
        running = {l: 0 for l in labels}
        for day in sorted(days):
            for l, c in days[day].observed.items():
                running[l] += c
            cumulative[day] = chisquare_counts(running, shares, alpha)
    return SRMResult(overall=overall, dof=len(labels) - 1, alpha=alpha, weights=shares,
                     by_column=by, by=groups, time_column=time, days=days, cumulative=cumulative)


def srm(
    source,
    action: str,
    *,
    control: str | None = None,
    weights: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    by: str | None = None,
    time: str | None = None,
) -> SRMResult:
    """Check a log (frame or file) for a sample-ratio mismatch.

    Parameters
    ----------
    source : DataFrame or path
    action : str
        Arm column.
    control : str, optional
        The control label (listed first; must be an arm).
    weights : mapping of label to positive number, optional
        Intended split; equal by default.
    alpha : float
        Alarm threshold for the p-value (default 0.001).
    by, time : str, optional
        Segment column and day column for per-group and per-day (plus cumulative) tests.

    Returns
    -------
    SRMResult
    """
    keys = [c for c in dict.fromkeys([by, time]) if c]
    counts = count_arms(source, action, keys)
    return srm_from_counts(counts, control=control, weights=weights, alpha=alpha, by=by, time=time)


@dataclass(frozen=True)
class PropensityCheck:
    """Are the arm counts consistent with the logged propensities?

    With a targeted logging policy the intended split differs per customer, so an equal split
    is the wrong yardstick.  Instead, for each arm ``a`` the inverse-propensity count
    ``S_a = Σ_{i: a_i = a} 1 / p_i`` has expectation ``n`` (the number of rows): rows lost from
    one arm, or propensities logged wrongly, pull its ``S_a`` away from ``n``.

    The statistic is ``T = Σ_a (S_a − n)² / D_a`` with ``D_a = Σ_{i: a_i = a} 1 / p_i²`` (an
    unbiased estimate of ``Σ_i 1 / π(a | x_i)``).  Since ``Cov(S) = D − n·11ᵀ``, under the null
    ``T`` is distributed as ``χ²_{K−1} + λ·χ²_1`` with ``λ = 1 − Σ_a n / D_a``; the p-value uses
    the Satterthwaite scaled chi-square.  With uniform propensities ``λ = 0`` and ``T`` is
    Pearson's statistic with ``D`` estimated.
    """

    chi2: float
    dof: float
    p_value: float
    alarm: bool
    ratio: dict[str, float]

    def to_dict(self) -> dict:
        return {"chi2": self.chi2, "dof": self.dof, "p_value": self.p_value, "alarm": self.alarm, "ratio": self.ratio}


@dataclass
class PropensitySums:
    """The propensity check's sums per arm (``labels`` order): rows, Σ 1/p and Σ 1/p²."""

    n: int
    s: np.ndarray
    d: np.ndarray

    def __add__(self, other: "PropensitySums") -> "PropensitySums":
        return PropensitySums(self.n + other.n, self.s + other.s, self.d + other.d)


def propensity_sums(action, propensity, labels) -> PropensitySums:
    """The partial of the propensity check over a batch of rows."""
    action = np.asarray(action, dtype=object)
    p = np.asarray(propensity, dtype=float)
    s = np.array([np.sum(1.0 / p[action == l]) for l in labels])
    d = np.array([np.sum(1.0 / p[action == l] ** 2) for l in labels])
    return PropensitySums(len(action), s, d)


def propensity_consistency(action, propensity, labels, alpha: float = DEFAULT_ALPHA) -> PropensityCheck:
    """Test the arm counts against the logged propensities (see :class:`PropensityCheck`)."""
    sums = propensity_sums(action, propensity, list(labels))
    return propensity_consistency_from_sums(sums.n, labels, sums.s, sums.d, alpha)


def propensity_check(engine, log, alpha: float = DEFAULT_ALPHA) -> PropensityCheck:
    """:func:`propensity_consistency` of a log wherever its rows are (an engine's batches)."""
    labels = list(log.labels)
    sums = engine.reduce(log, lambda batch: propensity_sums(batch.action, batch.propensity, labels))
    return propensity_consistency_from_sums(sums.n, labels, sums.s, sums.d, alpha)


def propensity_consistency_from_sums(n: int, labels, s: np.ndarray, d: np.ndarray,
                                     alpha: float = DEFAULT_ALPHA) -> PropensityCheck:
    """:func:`propensity_consistency` from its sums per arm: ``s`` = Σ 1/p, ``d`` = Σ 1/p²."""
    labels = list(labels)
    s, d = np.asarray(s, dtype=float), np.asarray(d, dtype=float)
    if np.any(d == 0):
        empty = [l for l, di in zip(labels, d) if di == 0]
        raise UserError(f"arm(s) {', '.join(empty)} have no rows; the propensity check needs every arm logged")
    t = float(np.sum((s - n) ** 2 / d))
    lam = float(np.clip(1.0 - np.sum(n / d), 0.0, 1.0))
    k = len(labels)
    mean, var = (k - 1) + lam, 2.0 * ((k - 1) + lam**2)
    scale, dof = var / (2 * mean), 2 * mean**2 / var
    p_value = float(stats.chi2.sf(t / scale, dof))
    return PropensityCheck(chi2=t, dof=float(dof), p_value=p_value, alarm=bool(p_value < alpha),
                           ratio={l: float(si / n) for l, si in zip(labels, s)})


def dropped_rows_check(kept: Mapping[str, int], dropped: Mapping[str, int]) -> dict:
    """Did leaving out incomplete rows change the split?  Pearson's chi-square test of
    independence between arm and kept/dropped (``scipy.stats.chi2_contingency`` without Yates'
    correction).  A small p-value means rows went missing more in some arms than in others: the
    kept rows may no longer be comparable.

    Returns ``{"chi2", "dof", "p_value", "rate": {arm: dropped share of that arm's rows}}``.
    """
    arms = [a for a in dict.fromkeys([*kept, *dropped]) if a != "(missing)"]
    table = np.array([[kept.get(a, 0) for a in arms], [dropped.get(a, 0) for a in arms]], dtype=float)
    rate = {a: float(dropped.get(a, 0) / (kept.get(a, 0) + dropped.get(a, 0))) if kept.get(a, 0) + dropped.get(a, 0) else 0.0
            for a in arms}
    if table[1].sum() == 0 or len(arms) < 2:
        return {"chi2": 0.0, "dof": max(len(arms) - 1, 0), "p_value": 1.0, "rate": rate}
    chi2, p_value, dof, _ = chi2_contingency(table, correction=False)
    return {"chi2": float(chi2), "dof": int(dof), "p_value": float(p_value), "rate": rate}
