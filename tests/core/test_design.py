"""Issue 14: power and sample size agree with statsmodels; deployment with exploration."""

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from core.design.power import design, design_from_log, planned_cpi
from core.errors import UserError
from core.schema import ColumnMap, ExperimentLog

SOLVER = NormalIndPower()

CASES = [  # (kind, baseline, mde or None, n or None, alpha, power, arms, ratio, correction)
    ("mean", 10.0, 0.5, None, 0.05, 0.8, 1, 1.0, "none"),
    ("mean", 25.0, 1.2, None, 0.05, 0.9, 3, 1.0, "bonferroni"),
    ("mean", 4.0, 0.3, None, 0.01, 0.8, 2, 2.5, "none"),
    ("mean", 4.0, -0.3, None, 0.05, 0.8, 1, 0.5, "none"),
    ("rate", 0.0076, 0.0095, None, 0.05, 0.8, 1, 1.0, "none"),
    ("rate", 0.10, 0.02, None, 0.05, 0.8, 4, 1.5, "bonferroni"),
    ("mean", 10.0, None, 5000, 0.05, 0.8, 1, 1.0, "none"),
    ("mean", 10.0, None, 2000, 0.05, 0.9, 3, 2.0, "bonferroni"),
    ("rate", 0.05, None, 8000, 0.05, 0.8, 2, 1.0, "bonferroni"),
]


@pytest.mark.parametrize("kind,baseline,mde,n,alpha,power,arms,ratio,correction", CASES)
def test_design_agrees_with_statsmodels(kind, baseline, mde, n, alpha, power, arms, ratio, correction):
    spread = {"sd": baseline} if kind == "mean" else {"rate": baseline}
    result = design(mde=mde, n=n, alpha=alpha, power=power, arms=arms, ratio=ratio, correction=correction, **spread)
    alpha_per_test = alpha / arms if correction == "bonferroni" else alpha
    assert result.alpha_per_test == pytest.approx(alpha_per_test)
    if mde is not None:
        es = mde / baseline if kind == "mean" else proportion_effectsize(baseline + mde, baseline)
        expected = SOLVER.solve_power(effect_size=es, nobs1=None, alpha=alpha_per_test, power=power, ratio=ratio)
        assert result.effect_size == pytest.approx(es, rel=1e-12)
        assert result.n_exact == pytest.approx(expected, rel=1e-6)
        assert result.n_per_arm == math.ceil(expected)
        assert result.n_control == math.ceil(expected * ratio)
        assert result.n_total == arms * math.ceil(expected) + math.ceil(expected * ratio)
    else:
        # statsmodels' own solve for the effect size stops at a loose tolerance (its power at the
        # answer is 0.79997 for 0.8), so the exact check is against its power function below
        es = NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha_per_test, power=power, ratio=ratio)
        assert result.effect_size == pytest.approx(es, rel=1e-4)
        es = result.effect_size
        if kind == "mean":
            assert result.mde == pytest.approx(es * baseline, rel=1e-6)
        else:  # the detectable rate difference has Cohen's h equal to the solved effect size
            assert proportion_effectsize(baseline + result.mde, baseline) == pytest.approx(es, rel=1e-6)
        assert SOLVER.power(result.effect_size, n, alpha_per_test, ratio=ratio) == pytest.approx(power, rel=1e-9)


@pytest.mark.parametrize("kwargs,message", [
    ({"mde": 1.0, "n": 100, "sd": 1.0}, r"give exactly one of --mde .* and --n"),
    ({"mde": 1.0}, r"give the outcome's spread"),
    ({"mde": 1.0, "sd": 1.0, "alpha": 1.5}, r"--alpha must be between 0 and 1, got 1.5"),
    ({"mde": 1.0, "sd": 1.0, "ratio": 0}, r"--ratio \(control size / treated arm size\) must be a number > 0, got 0"),
    ({"mde": 0.5, "rate": 0.7}, r"the baseline rate 0.7 plus the effect 0.5 must stay between 0 and 1"),
    ({"mde": 1.0, "sd": 1.0, "correction": "holm"}, r"--correction must be one of none, bonferroni, got 'holm'"),
    ({"mde": 1.0, "sd": -2.0}, r"the standard deviation must be a number > 0, got -2.0"),
])
def test_bad_design_inputs(kwargs, message):
    with pytest.raises(UserError, match=message):
        design(**kwargs)


def _log_with_cost(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    arm = rng.choice(["none", "coupon"], n)
    pre = rng.gamma(2, 10, n)
    value = 0.8 * pre + rng.normal(0, 10, n) + 3 * (arm == "coupon")
    cost = np.where(arm == "coupon", 0.2 * value.clip(0) + rng.exponential(1, n), 0.0)
    frame = pd.DataFrame({"arm": arm, "value": value, "cost": cost, "pre": pre})
    return ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="none", value="value", cost="cost", features=("pre",)))


def test_design_from_a_log_measures_the_spread_cuped_factor_and_cpi():
    from core.diagnostics.readout import readout

    log = _log_with_cost()
    control = log.action == "none"
    result = design_from_log(log, mde=1.0, cuped="pre")
    assert result.sd == pytest.approx(np.std(log.value[control], ddof=1))
    rho = np.corrcoef(log.value[control], log.frame["pre"].to_numpy()[control])[0, 1]
    assert result.cuped_variance_factor == pytest.approx(1 - rho**2)
    assert result.n_per_arm_cuped == math.ceil(result.n_exact * (1 - rho**2))
    # at the log's own arm sizes the planned CPI SE is the readout's delta-method SE (plain means)
    n_arm, n_ctrl = int((~control).sum()), int(control.sum())
    same = planned_cpi(log, "coupon", n_arm, n_ctrl)
    ro = readout(log).cpi.iloc[0]
    assert same["cpi"] == pytest.approx(ro["cpi"]) and same["se"] == pytest.approx(ro["se"], rel=1e-9)
    # four times the customers halve the SE
    assert planned_cpi(log, "coupon", 4 * n_arm, 4 * n_ctrl)["se"] == pytest.approx(same["se"] / 2, rel=1e-9)
    assert set(result.to_dict()["cpi"]) == {"coupon"}


def test_a_conversion_log_is_designed_as_a_rate():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"arm": rng.choice(["No", "Yes"], 5000), "purchase": (rng.random(5000) < 0.02).astype(int)})
    log = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="No", value="purchase", features=()))
    result = design_from_log(log, mde=0.01)
    p = log.value[log.action == "No"].mean()
    assert result.rate == pytest.approx(p) and result.sd is None
    expected = SOLVER.solve_power(proportion_effectsize(p + 0.01, p), nobs1=None, alpha=0.05, power=0.8)
    assert result.n_per_arm == math.ceil(expected)
