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

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..engines.base import Extremes, Sums
from ..engines.local import LocalEngine
from ..errors import UserError, setting


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


CUPED_MOMENT = "__cuped"  # the pre-period covariate among the moments' variables


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


@dataclass(frozen=True)
class Moments:
    """One arm's rows for the readout: count, Σw, the Hájek mean of every variable (value, cost,
    the long-horizon value, the CUPED covariate) and their centred cross-moments
    ``S[a, b] = Σ w² (a − m_a)(b − m_b)``."""

    n: int
    sum_w: float
    means: dict
    cross: dict

    def var(self, a: str, b: str | None = None) -> float:
        """Variance of the Hájek mean of ``a`` (covariance with that of ``b``), with n/(n − 1)."""
        s = self._s(a, b or a)
        return float(s / self.sum_w**2) * (self.n / (self.n - 1) if self.n > 1 else np.nan)

    def adjusted(self, x_bar: float) -> "Moments":
        """The CUPED-adjusted moments: every variable ``y`` becomes ``y − θ_y (x − x̄)`` with the
        slope ``θ_y = S[y, x] / S[x, x]`` (0 when x is constant in the arm)."""
        x = CUPED_MOMENT
        sxx = self.cross[(x, x)]
        names = [k for k in self.means if k != x]
        theta = {k: (self._s(k, x) / sxx if sxx > 0 else 0.0) for k in names}
        means = {k: self.means[k] - theta[k] * (self.means[x] - x_bar) for k in names}
        cross = {(a, b): self._s(a, b) - theta[a] * self._s(x, b) - theta[b] * self._s(a, x) + theta[a] * theta[b] * sxx
                 for i, a in enumerate(names) for b in names[i:]}
        return Moments(self.n, self.sum_w, means, cross)

    def _s(self, a: str, b: str) -> float:
        return self.cross[(a, b)] if (a, b) in self.cross else self.cross[(b, a)]


def _variables(batch, cuped: str | None) -> dict[str, np.ndarray]:
    out = {"value": batch.value}
    if batch.value_long is not None:
        out["value_long"] = batch.value_long
    if batch.cost is not None:
        out["cost"] = batch.cost
    if cuped:
        out[CUPED_MOMENT] = pd.to_numeric(batch.frame[cuped], errors="coerce").to_numpy(dtype=float)
    return out


def readout_sums(batch, labels, cuped: str | None, weighted: bool | None, means: dict | None = None) -> Sums:
    """The readout's partial over a batch of rows, in three passes: ``weighted=None``: each
    arm's smallest and largest propensity (are the means weighted?) and the covariate's checks;
    ``means=None``: per arm n, Σw and Σw·y of every variable; else the centred cross-moments."""
    action = batch.action
    out = Extremes() if weighted is None else Sums()
    if weighted is None:
        p = batch.propensity
        for label in labels:
            rows = action == label
            out[("rows", label)] = int(rows.sum())
            if p is not None and rows.any():
                out[("low", "p", label)], out[("high", "p", label)] = -float(p[rows].min()), float(p[rows].max())
        if cuped:
            x = _variables(batch, cuped)[CUPED_MOMENT]
            out["x_missing"] = int(np.isnan(x).sum())
            out[("low", "x")], out[("high", "x")] = -float(np.nanmin(x, initial=np.inf)), float(np.nanmax(x, initial=-np.inf))
            out["x_sum"], out["x_n"] = float(x.sum()), len(x)
        return out
    w = 1.0 / batch.propensity if weighted else np.ones(batch.n)
    variables = _variables(batch, cuped)
    names = list(variables)
    for label in labels:
        rows = action == label
        wr = w[rows]
        if means is None:
            out[("n", label)] = int(rows.sum())
            out[("w", label)] = float(wr.sum())
            for name in names:
                out[(name, label)] = float((wr * variables[name][rows]).sum())
            continue
        dev = {name: variables[name][rows] - means[label][name] for name in names}
        for i, a in enumerate(names):
            out[(a, a, label)] = float((wr**2 * dev[a] ** 2).sum())
            for b in names[i + 1:]:
                out[(a, b, label)] = float((wr**2 * dev[a] * dev[b]).sum())
    return out


def readout_of(engine, log, alpha: float = 0.05, cuped: str | None = None) -> "Readout":
    """The readout of a log wherever its rows are (one home for the formulas: :func:`readout`
    runs this on the whole log as its only batch)."""
    if not (0 < alpha < 1):
        raise UserError(f"{setting('alpha')} must be between 0 and 1, got {alpha}")
    if cuped:
        if cuped not in log_columns(log):
            raise UserError(f"CUPED covariate '{cuped}' is not in the log")
    labels = list(log.labels)
    first = engine.reduce(log, lambda batch: readout_sums(batch, labels, cuped, None))
    weighted = any(first.get(("high", "p", l), 0.0) + first.get(("low", "p", l), 0.0) > 1e-12 for l in labels)
    if cuped:
        if first["x_missing"]:
            raise UserError(f"CUPED covariate '{cuped}' has {first['x_missing']} missing or non-numeric values")
        if first[("high", "x")] + first[("low", "x")] == 0:
            raise UserError(f"CUPED covariate '{cuped}' is constant; choose a pre-period column that varies")
        if cuped in log.columns.role_columns().values():
            raise UserError(f"CUPED covariate '{cuped}' is mapped to a role; choose a pre-period feature")
    for label in labels:
        if first[("rows", label)] < 2:
            raise UserError(f"arm '{label}' has {first[('rows', label)]} row(s); a readout needs at least 2 per arm")
    sums = engine.reduce(log, lambda batch: readout_sums(batch, labels, cuped, weighted))
    names = [k[0] for k in sums if k[1] == labels[0] and k[0] not in ("n", "w")]
    means = {l: {name: sums[(name, l)] / sums[("w", l)] for name in names} for l in labels}
    centred = engine.reduce(log, lambda batch: readout_sums(batch, labels, cuped, weighted, means))
    moments = {l: Moments(sums[("n", l)], sums[("w", l)], means[l],
                          {(a, b): centred[(a, b, l)] for i, a in enumerate(names) for b in names[i:]}) for l in labels}
    x_bar = first["x_sum"] / first["x_n"] if cuped else None
    return readout_from(labels, log.control, moments, weighted, alpha, cuped, x_bar)


def log_columns(log) -> list[str]:
    """The columns of a log's rows (a local frame, or an engine's log)."""
    return list(log.frame.columns)


def _effect_rows(labels, control, moments: dict, name: str, z: float, raw: dict | None) -> list[dict]:
    ref = moments[control]
    mean_c, var_c = ref.means[name], ref.var(name)
    rows = []
    for label in labels:
        if label == control:
            continue
        m = moments[label]
        mean_a, var_a = m.means[name], m.var(name)
        effect, se = mean_a - mean_c, float(np.sqrt(var_a + var_c))
        row = {"arm": label, "outcome": name, "control_mean": mean_c, "arm_mean": mean_a, "effect": effect, "se": se,
               "ci_low": effect - z * se, "ci_high": effect + z * se,
               "p_value": float(2 * stats.norm.sf(abs(effect) / se)) if se > 0 else float("nan"),
               "n_arm": m.n, "n_control": ref.n}
        if raw is not None:
            raw_var = raw[label].var(name) + raw[control].var(name)
            row["se_unadjusted"] = float(np.sqrt(raw_var))
            row["variance_reduction"] = 1.0 - (se**2 / raw_var) if raw_var > 0 else float("nan")
        rows.append(row)
    return rows


def readout_from(labels, control: str, moments: dict, weighted: bool, alpha: float = 0.05,
                 cuped: str | None = None, x_bar: float | None = None) -> "Readout":
    """The finish of the readout: effects, intervals and CPI from each arm's :class:`Moments`
    (CUPED-adjusted around ``x_bar`` when ``cuped`` names the covariate)."""
    z = stats.norm.ppf(1 - alpha / 2)
    raw = None
    if cuped:
        raw, moments = moments, {l: m.adjusted(x_bar) for l, m in moments.items()}
    names = [k for k in moments[control].means if k != CUPED_MOMENT]
    order = [k for k in ("value", "value_long", "cost") if k in names]
    rows = [row for name in order for row in _effect_rows(labels, control, moments, name, z, raw)]
    cpi_rows = []
    if "cost" in names:
        ref = moments[control]
        for label in labels:
            if label == control:
                continue
            m = moments[label]
            dn, dd = m.means["cost"] - ref.means["cost"], m.means["value"] - ref.means["value"]
            var_n, var_d = m.var("cost") + ref.var("cost"), m.var("value") + ref.var("value")
            cov = m.var("value", "cost") + ref.var("value", "cost")
            ratio = _ratio_interval(dn, dd, var_n, var_d, cov, z)
            cpi_rows.append({"arm": label, "cpi": ratio["ratio"], **{k: ratio[k] for k in ("se", "ci_low", "ci_high", "defined")}})
    return Readout(pd.DataFrame(rows), pd.DataFrame(cpi_rows, columns=["arm", "cpi", "se", "ci_low", "ci_high", "defined"]),
                   bool(weighted), cuped, alpha)


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
    if propensity is not None:
        log = replace(log, frame=log.frame.assign(__readout_p=np.asarray(propensity, dtype=float)),
                      columns=replace(log.columns, propensity="__readout_p"))
    return readout_of(LocalEngine(), log, alpha, cuped)


def readout_from_moments(labels, control: str, moments: dict[str, ArmMoments], weighted: bool,
                         alpha: float = 0.05) -> Readout:
    """:func:`readout` (without CUPED) from each arm's :class:`ArmMoments`."""
    if not (0 < alpha < 1):
        raise UserError(f"{setting('alpha')} must be between 0 and 1, got {alpha}")
    for label in labels:
        if moments[label].n < 2:
            raise UserError(f"arm '{label}' has {moments[label].n} row(s); a readout needs at least 2 per arm")
    general = {}
    for label, m in moments.items():
        means, cross = {"value": m.mean_value}, {("value", "value"): m.s_vv}
        if m.mean_cost is not None:
            means["cost"] = m.mean_cost
            cross.update({("cost", "cost"): m.s_cc, ("value", "cost"): m.s_vc})
        general[label] = Moments(m.n, m.sum_w, means, cross)
    return readout_from(list(labels), control, general, weighted, alpha)
