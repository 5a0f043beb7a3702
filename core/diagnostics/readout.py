"""The plain experiment readout: per offer, the average effect on value and on cost against
no offer, and the cost per incremental unit of value (CPI), each with a confidence interval.

Arm means are Hájek (self-normalised) inverse-propensity-weighted means
``μ̂_a = Σ_{a_i=a} w_i y_i / Σ_{a_i=a} w_i`` with ``w_i = 1 / p_i``; with uniform or no
propensities they are the plain arm means.  Their variance is the linearisation
``Σ w_i² (y_i − μ̂_a)² / (Σ w_i)²`` times ``n_a / (n_a − 1)``, which with equal weights is the
familiar ``s² / n_a``.  Effects are differences of independent arm means.

CPI = Δcost / Δvalue with a delta-method interval (the covariance of the value and cost means
within each arm included); undefined when the value effect's interval contains 0.

CUPED (Deng et al., 2013) with a pre-period covariate X: within each arm,
``y − θ_a (X − X̄)`` where X̄ is the mean of X over all rows and ``θ_a`` is the slope that
minimises the arm mean's variance estimate (a regression of y on X within the arm, weighted by
w² around the weighted means).  Subtracting a mean-zero term leaves the effect unbiased; a
per-arm slope (Lin, 2013) rather than one pooled θ means the adjustment can never widen an
interval, even when X predicts the outcome differently per arm (e.g. cost, which is 0 under no
offer).  The output reports the variance reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import UserError


def hajek_mean_var(y: np.ndarray, w: np.ndarray, small_sample: bool = True) -> tuple[float, float]:
    """The Hájek (weighted) mean of ``y`` and the variance of that mean, Σw²(y − m)² / (Σw)²;
    with ``small_sample`` times n/(n − 1) (NaN for a single row)."""
    total = w.sum()
    mean = float((w * y).sum() / total)
    var = float((w**2 * (y - mean) ** 2).sum() / total**2)
    if small_sample:
        n = len(y)
        var *= n / (n - 1) if n > 1 else np.nan
    return mean, var


def hajek_difference(y: np.ndarray, w: np.ndarray, treated: np.ndarray, control: np.ndarray,
                     small_sample: bool = True) -> tuple[float, float]:
    """Difference of the Hájek means of the ``treated`` and ``control`` rows and its standard
    error (two independent means)."""
    mt, vt = hajek_mean_var(y[treated], w[treated], small_sample)
    mc, vc = hajek_mean_var(y[control], w[control], small_sample)
    return mt - mc, float(np.sqrt(vt + vc))


def _weighted_cov_of_means(y: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    my, mc = (w * y).sum() / total, (w * c).sum() / total
    n = len(y)
    return float((w**2 * (y - my) * (c - mc)).sum() / total**2) * (n / (n - 1) if n > 1 else np.nan)


def cuped_theta(y: np.ndarray, x: np.ndarray, w: np.ndarray) -> float:
    """The slope minimising ``Σ w² ((y − ȳ) − θ (x − x̄))²`` around the w-weighted means:
    with equal weights, the ordinary ``Cov(y, x) / Var(x)``.  0 when x is constant."""
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float(np.sum(w**2 * (x - mx) ** 2))
    return float(np.sum(w**2 * (x - mx) * (y - my)) / sxx) if sxx > 0 else 0.0


def effect_ratio(numerator, denominator, treated, control, w, alpha: float = 0.05,
                 variance_scale: tuple[float, float] = (1.0, 1.0)) -> dict:
    """The ratio of two effects, Δnumerator / Δdenominator, each a difference of Hájek means of
    the ``treated`` and ``control`` rows, with a delta-method interval (the covariance of the two
    means within each group included):

        Var = Var(Δn)/Δd² + Δn²·Var(Δd)/Δd⁴ − 2·Δn·Cov(Δn, Δd)/Δd³

    The CPI is Δcost / Δvalue; the horizon ratio Δlong-term value / Δshort-term value.  The
    interval is reported only when the denominator's own interval excludes 0 (``defined``).
    ``variance_scale`` multiplies the (treated, control) group's variances and covariance of its
    means, e.g. (rows in the log / rows planned) for a test of another size.
    """
    z = stats.norm.ppf(1 - alpha / 2)
    moments = []
    for rows, scale in zip((treated, control), variance_scale):
        (mn, vn), (md, vd) = hajek_mean_var(numerator[rows], w[rows]), hajek_mean_var(denominator[rows], w[rows])
        moments.append((mn, vn * scale, md, vd * scale,
                        _weighted_cov_of_means(numerator[rows], denominator[rows], w[rows]) * scale))
    (mn_t, vn_t, md_t, vd_t, c_t), (mn_c, vn_c, md_c, vd_c, c_c) = moments
    return _ratio_interval(mn_t - mn_c, md_t - md_c, vn_t + vn_c, vd_t + vd_c, c_t + c_c, z)


def _ratio_interval(dn: float, dd: float, var_n: float, var_d: float, cov: float, z: float) -> dict:
    """The delta-method ratio Δn/Δd and its interval (see :func:`effect_ratio`)."""
    defined = bool(abs(dd) > z * np.sqrt(var_d))
    if dd == 0:
        ratio, se = float("nan"), float("nan")
    else:
        ratio = dn / dd
        se = float(np.sqrt(max(var_n / dd**2 + dn**2 * var_d / dd**4 - 2 * dn * cov / dd**3, 0.0)))
    return {"ratio": ratio, "se": se, "ci_low": ratio - z * se if defined else float("nan"),
            "ci_high": ratio + z * se if defined else float("nan"), "defined": defined,
            "numerator_effect": dn, "denominator_effect": dd}


@dataclass(frozen=True)
class Readout:
    """One row per (offer, outcome) with effect, SE, interval; plus CPI per offer."""

    effects: pd.DataFrame
    cpi: pd.DataFrame
    weighted: bool
    cuped_column: str | None
    alpha: float

    def to_frame(self) -> pd.DataFrame:
        return self.effects

    def to_dict(self) -> dict:
        out: dict = {"weighted": self.weighted, "cuped_column": self.cuped_column, "alpha": self.alpha, "arms": {}}
        for _, row in self.effects.iterrows():
            arm = out["arms"].setdefault(row["arm"], {})
            arm[row["outcome"]] = {k: row[k] for k in ("control_mean", "arm_mean", "effect", "se", "ci_low", "ci_high", "p_value")
                                   if k in row}
            if "variance_reduction" in row and pd.notna(row.get("variance_reduction")):
                arm[row["outcome"]]["variance_reduction"] = row["variance_reduction"]
        for _, row in self.cpi.iterrows():
            out["arms"].setdefault(row["arm"], {})["cpi"] = {k: row[k] for k in ("cpi", "se", "ci_low", "ci_high", "defined")}
        return out


def readout(log, propensity: np.ndarray | None = None, cuped: str | None = None, alpha: float = 0.05) -> Readout:
    """Average effects of every offer on value (and cost) against control, with intervals.

    Parameters
    ----------
    log : core.schema.ExperimentLog
    propensity : array, optional
        Probability of each row's logged arm; defaults to the log's propensity column.  When
        it varies within an arm, means are inverse-propensity weighted.
    cuped : str, optional
        A numeric pre-period column (measured before the offer) for the CUPED adjustment.
    alpha : float
        1 − confidence level of the intervals.
    """
    if not (0 < alpha < 1):
        raise UserError(f"alpha must be between 0 and 1, got {alpha}")
    p = log.propensity if propensity is None else np.asarray(propensity, dtype=float)
    action = log.action
    weighted = p is not None and any(np.ptp(p[action == l]) > 1e-12 for l in log.labels if (action == l).any())
    w = 1.0 / p if weighted else np.ones(log.n)
    outcomes = {"value": log.value}
    if log.value_long is not None:
        outcomes["value_long"] = log.value_long
    cost = log.cost
    if cost is not None:
        outcomes["cost"] = cost
    x = None
    if cuped:
        if cuped not in log.frame.columns:
            raise UserError(f"CUPED covariate '{cuped}' is not in the log")
        x = pd.to_numeric(log.frame[cuped], errors="coerce").to_numpy(dtype=float)
        if np.isnan(x).any():
            raise UserError(f"CUPED covariate '{cuped}' has {int(np.isnan(x).sum())} missing or non-numeric values")
        if np.ptp(x) == 0:
            raise UserError(f"CUPED covariate '{cuped}' is constant; choose a pre-period column that varies")
        if cuped in log.columns.role_columns().values():
            raise UserError(f"CUPED covariate '{cuped}' is mapped to a role; choose a pre-period feature")

    z = stats.norm.ppf(1 - alpha / 2)
    rows = []
    moments: dict[tuple[str, str], tuple[float, float]] = {}
    adjusted = {}
    for name, y in outcomes.items():
        y_used = y
        if x is not None:
            y_used = y.astype(float).copy()
            x_bar = float(x.mean())
            for label in log.labels:
                rows_of = action == label
                theta = cuped_theta(y[rows_of], x[rows_of], w[rows_of])
                y_used[rows_of] = y[rows_of] - theta * (x[rows_of] - x_bar)
        adjusted[name] = y_used
        for label in log.labels:
            rows_of = action == label
            if rows_of.sum() < 2:
                raise UserError(f"arm '{label}' has {int(rows_of.sum())} row(s); a readout needs at least 2 per arm")
            moments[(name, label)] = hajek_mean_var(y_used[rows_of], w[rows_of])
            if x is not None:
                moments[(name, label, "raw")] = hajek_mean_var(y[rows_of], w[rows_of])
        mean_c, var_c = moments[(name, log.control)]
        for label in log.treatments:
            mean_a, var_a = moments[(name, label)]
            effect, se = mean_a - mean_c, float(np.sqrt(var_a + var_c))
            row = {"arm": label, "outcome": name, "control_mean": mean_c, "arm_mean": mean_a, "effect": effect, "se": se,
                   "ci_low": effect - z * se, "ci_high": effect + z * se,
                   "p_value": float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan"),
                   "n_arm": int((action == label).sum()), "n_control": int((action == log.control).sum())}
            if x is not None:
                raw_var = moments[(name, label, "raw")][1] + moments[(name, log.control, "raw")][1]
                row["se_unadjusted"] = float(np.sqrt(raw_var))
                row["variance_reduction"] = 1.0 - (se**2 / raw_var) if raw_var > 0 else float("nan")
            rows.append(row)
    effects = pd.DataFrame(rows)

    cpi_rows = []
    if "cost" in outcomes:
        for label in log.treatments:
            rows_arm, rows_control = action == label, action == log.control
            ratio = effect_ratio(adjusted["cost"], adjusted["value"], rows_arm, rows_control, w, alpha)
            cpi_rows.append({"arm": label, "cpi": ratio["ratio"], **{k: ratio[k] for k in ("se", "ci_low", "ci_high", "defined")}})
    return Readout(effects, pd.DataFrame(cpi_rows, columns=["arm", "cpi", "se", "ci_low", "ci_high", "defined"]),
                   bool(weighted), cuped, alpha)


@dataclass(frozen=True)
class ArmMoments:
    """What the readout needs from one arm's rows, as sums an engine can compute in two passes:
    the row count, Σw, the Hájek means of value and cost, and the centred second moments
    ``S_ab = Σ w² (a − m_a)(b − m_b)`` (value–value, cost–cost, value–cost)."""

    n: int
    sum_w: float
    mean_value: float
    mean_cost: float | None
    s_vv: float
    s_cc: float | None
    s_vc: float | None

    def var(self, s: float) -> float:
        """Variance of a Hájek mean (or covariance of two) from its centred sum, with n/(n − 1)."""
        return float(s / self.sum_w**2) * (self.n / (self.n - 1) if self.n > 1 else np.nan)


def readout_from_moments(labels, control: str, moments: dict[str, ArmMoments], weighted: bool,
                         alpha: float = 0.05) -> Readout:
    """:func:`readout` (without CUPED) from each arm's :class:`ArmMoments`: what the Spark
    engine computes, with the same formulas."""
    if not (0 < alpha < 1):
        raise UserError(f"alpha must be between 0 and 1, got {alpha}")
    for label in labels:
        if moments[label].n < 2:
            raise UserError(f"arm '{label}' has {moments[label].n} row(s); a readout needs at least 2 per arm")
    z = stats.norm.ppf(1 - alpha / 2)
    has_cost = moments[control].mean_cost is not None
    rows, cpi_rows = [], []
    ref = moments[control]
    for name in ("value", *(["cost"] if has_cost else [])):
        mean_c = ref.mean_value if name == "value" else ref.mean_cost
        var_c = ref.var(ref.s_vv if name == "value" else ref.s_cc)
        for label in labels:
            if label == control:
                continue
            m = moments[label]
            mean_a, var_a = (m.mean_value, m.var(m.s_vv)) if name == "value" else (m.mean_cost, m.var(m.s_cc))
            effect, se = mean_a - mean_c, float(np.sqrt(var_a + var_c))
            rows.append({"arm": label, "outcome": name, "control_mean": mean_c, "arm_mean": mean_a, "effect": effect, "se": se,
                         "ci_low": effect - z * se, "ci_high": effect + z * se,
                         "p_value": float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan"),
                         "n_arm": m.n, "n_control": ref.n})
    if has_cost:
        for label in labels:
            if label == control:
                continue
            m = moments[label]
            dn, dd = m.mean_cost - ref.mean_cost, m.mean_value - ref.mean_value
            var_n, var_d = m.var(m.s_cc) + ref.var(ref.s_cc), m.var(m.s_vv) + ref.var(ref.s_vv)
            cov = m.var(m.s_vc) + ref.var(ref.s_vc)
            ratio = _ratio_interval(dn, dd, var_n, var_d, cov, z)
            cpi_rows.append({"arm": label, "cpi": ratio["ratio"], **{k: ratio[k] for k in ("se", "ci_low", "ci_high", "defined")}})
    return Readout(pd.DataFrame(rows), pd.DataFrame(cpi_rows, columns=["arm", "cpi", "se", "ci_low", "ci_high", "defined"]),
                   bool(weighted), None, alpha)
