"""Issue 24, item 10: the readout's CUPED adjustment on a weighted log and the readout from
per-arm moments, each against an independent computation.

CUPED: within each arm, y − θ_a (x − x̄) with x̄ the mean of x over all rows and θ_a the slope of
y on x weighted by w² around the w-weighted means (w = 1/propensity).  The readout from moments
(what an engine computes from sums) equals the readout of the rows, here on a log whose control
cost moves with the value (so the control's value–cost covariance enters the CPI).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.diagnostics.readout import ArmMoments, readout, readout_from_moments
from core.schema import ColumnMap, ExperimentLog

MAP = ColumnMap(action="arm", control="ctl", value="value", cost="cost", propensity="p", features=("x",))
ARMS = ("ctl", "a", "b")


def _weighted_log(seed: int = 4, n: int = 90) -> ExperimentLog:
    rng = np.random.default_rng(seed)
    arm = np.tile(np.array(ARMS), n // 3)
    p = rng.uniform(0.15, 0.6, n)  # varies within every arm: the readout weights by 1/p
    x = rng.normal(10.0, 3.0, n)
    slope = np.select([arm == "ctl", arm == "a"], [0.8, 1.6], 0.3)  # x predicts y differently per arm
    value = 5.0 + slope * x + (arm == "a") * 3.0 + (arm == "b") * 1.0 + rng.normal(0, 2.0, n)
    # the control's cost varies with its value (e.g. a servicing cost), the offers' cost with both
    cost = np.where(arm == "ctl", 0.2 * value + rng.normal(0, 0.3, n), 1.0 + 0.5 * value + rng.normal(0, 1.0, n))
    frame = pd.DataFrame({"arm": arm, "p": p, "x": x, "value": value, "cost": cost})
    return ExperimentLog.from_frame(frame, MAP)


def _hajek(y, w):
    """Weighted mean and the variance of that mean, Σw²(y − m)²/(Σw)² · n/(n − 1)."""
    m = np.sum(w * y) / np.sum(w)
    n = len(y)
    return m, np.sum(w**2 * (y - m) ** 2) / np.sum(w) ** 2 * n / (n - 1)


def _hand_theta(y, x, w):
    """Minimise Σ w² ((y − ȳ_w) − θ (x − x̄_w))² by brute force over the normal equation's parts."""
    xw, yw = np.sum(w * x) / np.sum(w), np.sum(w * y) / np.sum(w)
    num = sum(wi**2 * (xi - xw) * (yi - yw) for wi, xi, yi in zip(w, x, y))
    den = sum(wi**2 * (xi - xw) ** 2 for wi, xi in zip(w, x))
    return num / den


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_cuped_on_a_weighted_log_uses_w_squared_slopes_per_arm(alpha):
    log = _weighted_log()
    ro = readout(log, cuped="x", alpha=alpha)
    assert ro.weighted
    w, x, action = 1.0 / log.propensity, log.frame["x"].to_numpy(), log.action
    x_bar = x.mean()
    z = stats.norm.ppf(1 - alpha / 2)
    rows = ro.effects.set_index(["arm", "outcome"])
    thetas = {}
    for outcome, y in (("value", log.value), ("cost", log.cost)):
        adjusted, raw = {}, {}
        for label in ARMS:
            r = action == label
            theta = _hand_theta(y[r], x[r], w[r])
            thetas[(outcome, label)] = theta
            adjusted[label] = _hajek(y[r] - theta * (x[r] - x_bar), w[r])
            raw[label] = _hajek(y[r], w[r])
        for label in ("a", "b"):
            effect = adjusted[label][0] - adjusted["ctl"][0]
            se = np.sqrt(adjusted[label][1] + adjusted["ctl"][1])
            raw_var = raw[label][1] + raw["ctl"][1]
            row = rows.loc[(label, outcome)]
            assert row["effect"] == pytest.approx(effect, rel=1e-10), (label, outcome)
            assert row["se"] == pytest.approx(se, rel=1e-10), (label, outcome)
            assert row["ci_low"] == pytest.approx(effect - z * se, rel=1e-10)
            assert row["ci_high"] == pytest.approx(effect + z * se, rel=1e-10)
            assert row["se_unadjusted"] == pytest.approx(np.sqrt(raw_var), rel=1e-10)
            assert row["variance_reduction"] == pytest.approx(1 - se**2 / raw_var, rel=1e-10)
    # w and w² slopes differ on this log: the test tells them apart
    r = action == "a"
    w_slope = np.cov(x[r], log.value[r], aweights=w[r])[0, 1] / np.cov(x[r], aweights=w[r])
    assert abs(w_slope - thetas[("value", "a")]) > 1e-3


def _hand_moments(log: ExperimentLog, weighted: bool) -> dict[str, ArmMoments]:
    w_all = 1.0 / log.propensity if weighted else np.ones(log.n)
    out = {}
    for label in ARMS:
        r = log.action == label
        w, v, c = w_all[r], log.value[r], log.cost[r]
        mv, mc = np.sum(w * v) / np.sum(w), np.sum(w * c) / np.sum(w)
        out[label] = ArmMoments(n=int(r.sum()), sum_w=float(np.sum(w)), mean_value=float(mv), mean_cost=float(mc),
                                s_vv=float(np.sum(w**2 * (v - mv) ** 2)), s_cc=float(np.sum(w**2 * (c - mc) ** 2)),
                                s_vc=float(np.sum(w**2 * (v - mv) * (c - mc))))
    return out


@pytest.mark.parametrize("weighted,alpha", [(True, 0.05), (False, 0.1)])
def test_readout_from_hand_moments_equals_the_readout_of_the_rows(weighted, alpha):
    log = _weighted_log()
    moments = _hand_moments(log, weighted)
    assert abs(moments["ctl"].s_vc) > 1.0, "the control's cost moves with its value"
    from_rows = readout(log, propensity=None if weighted else np.full(log.n, 0.5), alpha=alpha)
    assert from_rows.weighted is weighted
    from_sums = readout_from_moments(ARMS, "ctl", moments, weighted, alpha=alpha)
    columns = ["arm", "outcome", "control_mean", "arm_mean", "effect", "se", "ci_low", "ci_high", "p_value"]
    a, b = from_sums.effects[columns], from_rows.effects[columns]
    assert a[["arm", "outcome"]].values.tolist() == b[["arm", "outcome"]].values.tolist()
    np.testing.assert_allclose(a.iloc[:, 2:].to_numpy(float), b.iloc[:, 2:].to_numpy(float), rtol=1e-10, atol=1e-12)
    assert from_sums.effects["n_arm"].tolist() == from_rows.effects["n_arm"].tolist() == [30, 30, 30, 30]
    assert from_sums.effects["n_control"].tolist() == [30] * 4
    cpi_a, cpi_b = from_sums.cpi.set_index("arm"), from_rows.cpi.set_index("arm")
    assert cpi_a["defined"].tolist() == cpi_b["defined"].tolist() == [True, True]
    np.testing.assert_allclose(cpi_a[["cpi", "se", "ci_low", "ci_high"]].to_numpy(float),
                               cpi_b[["cpi", "se", "ci_low", "ci_high"]].to_numpy(float), rtol=1e-10)
    # and the CPI's delta method by hand (covariances of each arm's two means included)
    z = stats.norm.ppf(1 - alpha / 2)
    ref = moments["ctl"]
    for label in ("a", "b"):
        m = moments[label]
        dn, dd = m.mean_cost - ref.mean_cost, m.mean_value - ref.mean_value
        scale = {k: mm.n / (mm.n - 1) / mm.sum_w**2 for k, mm in (("t", m), ("c", ref))}
        var_n = m.s_cc * scale["t"] + ref.s_cc * scale["c"]
        var_d = m.s_vv * scale["t"] + ref.s_vv * scale["c"]
        cov = m.s_vc * scale["t"] + ref.s_vc * scale["c"]
        se = np.sqrt(var_n / dd**2 + dn**2 * var_d / dd**4 - 2 * dn * cov / dd**3)
        assert cpi_a.loc[label, "cpi"] == pytest.approx(dn / dd, rel=1e-10)
        assert cpi_a.loc[label, "se"] == pytest.approx(se, rel=1e-10), label
        assert cpi_a.loc[label, "ci_low"] == pytest.approx(dn / dd - z * se, rel=1e-10)
