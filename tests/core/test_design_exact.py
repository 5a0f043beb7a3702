"""Issue 24, item 5: the planned CPI interval of ``design`` pinned to a hand delta method.

With K offers and the Bonferroni correction every comparison is tested at α/K, so the CPI
interval reported at the planned size must use the normal quantile of α/K too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from core.design.power import design_from_log
from core.schema import ColumnMap, ExperimentLog

ARMS = ("ctl", "a", "b", "c")


def _log(seed: int = 1, n_per_arm: int = 60) -> ExperimentLog:
    rng = np.random.default_rng(seed)
    frames = []
    for k, arm in enumerate(ARMS):
        value = rng.normal(10 + 2 * k, 3 + k, n_per_arm)
        # the cost moves with the value inside every arm (a non-zero covariance term)
        cost = (0.4 * value + rng.normal(1 + k, 1, n_per_arm)) if arm != "ctl" else 0.1 * value + rng.normal(0, 0.5, n_per_arm)
        frames.append(pd.DataFrame({"arm": arm, "value": value, "cost": cost, "x": rng.normal(size=n_per_arm)}))
    frame = pd.concat(frames, ignore_index=True)
    return ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="ctl", value="value", cost="cost"))


def _hand_cpi(log: ExperimentLog, arm: str, n_arm: int, n_control: int, alpha: float) -> dict:
    """Δcost/Δvalue with the delta-method SE, each arm's sample (co)variances divided by its planned size."""
    v, c, action = log.value, log.cost, log.action
    t, k = action == arm, action == "ctl"
    dn = c[t].mean() - c[k].mean()
    dd = v[t].mean() - v[k].mean()
    var_n = np.var(c[t], ddof=1) / n_arm + np.var(c[k], ddof=1) / n_control
    var_d = np.var(v[t], ddof=1) / n_arm + np.var(v[k], ddof=1) / n_control
    cov = np.cov(c[t], v[t], ddof=1)[0, 1] / n_arm + np.cov(c[k], v[k], ddof=1)[0, 1] / n_control
    ratio = dn / dd
    se = math.sqrt(var_n / dd**2 + dn**2 * var_d / dd**4 - 2 * dn * cov / dd**3)
    z = stats.norm.isf(alpha / 2)
    return {"cpi": ratio, "se": se, "ci_low": ratio - z * se, "ci_high": ratio + z * se}


@pytest.mark.parametrize("correction,ratio", [("bonferroni", 1.0), ("bonferroni", 1.5), ("none", 1.0)])
def test_planned_cpi_interval_uses_the_per_test_alpha(correction, ratio):
    log = _log()
    alpha, power, mde = 0.05, 0.8, 1.5
    result = design_from_log(log, mde=mde, alpha=alpha, power=power, ratio=ratio, correction=correction)
    k = len(ARMS) - 1
    per_test = alpha / k if correction == "bonferroni" else alpha
    assert result.arms == k
    assert result.alpha_per_test == pytest.approx(per_test, rel=1e-15)
    sd = np.std(log.value[log.action == "ctl"], ddof=1)
    n_exact = NormalIndPower().solve_power(effect_size=mde / sd, nobs1=None, alpha=per_test, power=power, ratio=ratio,
                                           alternative="two-sided")
    assert result.n_per_arm == math.ceil(n_exact)
    assert result.n_control == math.ceil(n_exact * ratio)
    cpi = result.to_dict()["cpi"]
    assert set(cpi) == {"a", "b", "c"}
    for arm in ("a", "b", "c"):
        hand = _hand_cpi(log, arm, result.n_per_arm, result.n_control, per_test)
        for key in ("cpi", "se", "ci_low", "ci_high"):
            assert cpi[arm][key] == pytest.approx(hand[key], rel=1e-10, abs=1e-12), (arm, key)
        # the half-width is exactly the per-test quantile times the SE
        half = (cpi[arm]["ci_high"] - cpi[arm]["ci_low"]) / 2
        assert half == pytest.approx(stats.norm.isf(per_test / 2) * hand["se"], rel=1e-10)
