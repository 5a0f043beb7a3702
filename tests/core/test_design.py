"""Issue 14: power and sample size agree with statsmodels; deployment with exploration."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from core.design.power import design, design_from_log, planned_cpi
from core.errors import UserError, cli_spelling
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
    ({"mde": 1.0, "n": 100, "sd": 1.0}, r"give exactly one of --mde and --n: the effect to detect, or the customers"),
    ({"mde": 1.0}, r"give the outcome's spread"),
    ({"mde": 1.0, "sd": 1.0, "alpha": 1.5}, r"--alpha must be between 0 and 1, got 1.5"),
    ({"mde": 1.0, "sd": 1.0, "ratio": 0}, r"--ratio \(control size / treated arm size\) must be a number > 0, got 0"),
    ({"mde": 0.5, "rate": 0.7}, r"the baseline rate 0.7 plus the effect 0.5 must stay between 0 and 1"),
    ({"mde": 1.0, "sd": 1.0, "correction": "holm"}, r"--correction must be one of none, bonferroni, got 'holm'"),
    ({"mde": 1.0, "sd": -2.0}, r"the standard deviation must be a number > 0, got -2.0"),
])
def test_bad_design_inputs(kwargs, message):
    """Core names the setting; the CLI spells it as its flag (the message above)."""
    with pytest.raises(UserError) as caught:
        design(**kwargs)
    assert re.search(message, str(caught.value.spelled(cli_spelling))), str(caught.value)


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


# --- deployment with exploration --------------------------------------------------------------------

from core.design.deploy import deploy  # noqa: E402


def _plan(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(100_000, 100_000 + n), "action": rng.choice(["none", "a", "b"], n, p=[0.5, 0.3, 0.2]),
                         "tau_value": rng.uniform(0, 1, n), "segment": rng.choice(["new", "active", "lapsed"], n)})


def _policy_matrix(plan, actions, holdout, explore, floor=None):
    """π(a | i) by the module's formula, written out independently."""
    k = len(actions)
    rows = []
    for p in plan["action"]:
        q = {a: (floor / explore if floor else 1 / k) for a in actions}
        if floor:
            q[p] += 1 - k * floor / explore
        rows.append({a: explore * q[a] + holdout * (a == "none") + (1 - holdout - explore) * (a == p) for a in actions})
    return pd.DataFrame(rows)


def test_propensities_are_exact_and_realised_shares_match_them():
    from scipy.stats import chisquare

    plan = _plan()
    out = deploy(plan, "none", holdout=0.05, explore=0.2, salt="spring")
    frame = out.frame
    assert list(frame.columns) == ["id", "action", "propensity", "bucket"]
    matrix = _policy_matrix(plan, ["none", "a", "b"], 0.05, 0.2)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    expected_pi = matrix.to_numpy()[np.arange(len(plan)), [["none", "a", "b"].index(a) for a in frame["action"]]]
    np.testing.assert_allclose(frame["propensity"], expected_pi, rtol=1e-12)
    # realised counts per action against Σ_i π(a | i)
    observed = [int((frame["action"] == a).sum()) for a in ("none", "a", "b")]
    assert chisquare(observed, matrix.sum(axis=0).to_numpy()).pvalue > 0.001
    assert (frame.loc[frame["bucket"] == "holdout", "action"] == "none").all()
    assert (frame.loc[frame["bucket"] == "plan", "action"].to_numpy() == plan.loc[frame["bucket"] == "plan", "action"].to_numpy()).all()


def test_holdout_and_exploration_shares_hold_in_every_segment():
    from scipy.stats import chisquare

    plan = _plan()
    frame = deploy(plan, "none", holdout=0.05, explore=0.1, salt="s").frame
    for segment, rows in frame.groupby(plan["segment"].to_numpy()):
        observed = [int((rows["bucket"] == b).sum()) for b in ("holdout", "explore", "plan")]
        assert chisquare(observed, np.array([0.05, 0.1, 0.85]) * len(rows)).pvalue > 0.001, segment


def test_one_more_customer_changes_no_earlier_assignment_and_the_salt_reshuffles():
    plan = _plan(3000)
    before = deploy(plan.iloc[:-1], "none", salt="x", offers=["a", "b"]).frame
    after = deploy(plan, "none", salt="x", offers=["a", "b"]).frame
    pd.testing.assert_frame_equal(after.iloc[:-1], before)
    other = deploy(plan, "none", salt="y", offers=["a", "b"]).frame
    assert (other["bucket"] != after["bucket"]).mean() > 0.05


def test_a_floor_on_every_propensity_and_what_exploration_costs():
    plan = _plan(5000)
    out = deploy(plan, "none", holdout=0.05, explore=0.15, min_propensity=0.03, salt="f")
    matrix = _policy_matrix(plan, ["none", "a", "b"], 0.05, 0.15, floor=0.03)
    assert matrix.to_numpy().min() == pytest.approx(0.03) and out.floor == pytest.approx(0.03)
    assert out.frame["propensity"].min() >= 0.03 - 1e-12
    np.testing.assert_allclose(out.frame["propensity"],
                               matrix.to_numpy()[np.arange(len(plan)), [["none", "a", "b"].index(a) for a in out.frame["action"]]])
    # value given up: Σ τ_plan·(1 − π(plan)) when the other offers' τ is unknown (an upper bound)
    pi_plan = matrix.to_numpy()[np.arange(len(plan)), [["none", "a", "b"].index(a) for a in plan["action"]]]
    tau = np.where(plan["action"] == "none", 0.0, plan["tau_value"])
    assert out.expected_value_loss == pytest.approx(float(np.sum(tau * (1 - pi_plan))))
    assert out.loss_is_upper_bound
    # ESS of "offer a for everyone" on the next log: n² / Σ 1/π(a | i)
    assert out.ess["a"] == pytest.approx(len(plan) ** 2 / np.sum(1 / matrix["a"]))


@pytest.mark.parametrize("kwargs,message", [
    ({"holdout": 1.0}, r"--holdout must be a share in \[0, 1\), got 1.0"),
    ({"explore": -0.1}, r"--explore must be a share in \[0, 1\), got -0.1"),
    ({"holdout": 0.5, "explore": 0.5}, r"add up to 1; they must leave some customers for the plan"),
    ({"explore": 0.05, "min_propensity": 0.02}, r"--min-propensity 0.02 cannot be met with 3 actions: exploring 0.05"),
])
def test_bad_deployment_inputs(kwargs, message):
    """Core names the setting; the CLI spells it as its flag (the message above)."""
    with pytest.raises(UserError) as caught:
        deploy(_plan(50), "none", **kwargs)
    assert re.search(message, str(caught.value.spelled(cli_spelling))), str(caught.value)


def test_an_allocation_without_ids_is_refused():
    with pytest.raises(UserError, match=r"the allocation has no 'id' column"):
        deploy(pd.DataFrame({"action": ["a", "none"]}), "none")
    with pytest.raises(UserError, match=r"the allocation has 1 duplicated ids"):
        deploy(pd.DataFrame({"id": [1, 1], "action": ["a", "none"]}), "none")


def test_the_next_log_evaluates_the_pure_plan_without_bias():
    """On the simulator: deploy a plan with exploration, take each customer's potential outcome
    under the action they got, and estimate the *pure* plan's value off-policy with the logged
    propensities: the truth lies inside the interval."""
    from core.ope.estimators import estimate
    from core.simulate import ARMS, simulate

    sim = simulate(20_000, seed=31)
    truth = sim.truth
    gains = truth[[f"true_tau_value__{a}" for a in ARMS[1:]]].to_numpy()
    best = np.where(gains.max(axis=1) > 0, np.array(ARMS[1:])[gains.argmax(axis=1)], ARMS[0])
    plan = pd.DataFrame({"id": sim.log["customer_id"], "action": best})
    frame = deploy(plan, ARMS[0], holdout=0.05, explore=0.2, offers=list(ARMS[1:]), salt="ope").frame
    y = np.array([truth.at[i, f"y_value__{a}"] for i, a in enumerate(frame["action"])])
    follows_plan = (frame["action"].to_numpy() == best).astype(float)
    zeros = np.zeros(len(y))
    result = estimate(y, frame["propensity"].to_numpy(), follows_plan, zeros, zeros, estimators=["ips", "snips"],
                      n_boot=500, seed=0).estimates
    true_value = float(np.mean([truth.at[i, f"mu_value__{a}"] for i, a in enumerate(best)]))
    for name in ("ips", "snips"):
        assert result[name].ci_low <= true_value <= result[name].ci_high, (name, result[name], true_value)


def test_the_planned_cpi_is_the_readouts_on_a_targeted_log(sim_small):
    from core.diagnostics.readout import readout

    log = ExperimentLog.from_frame(sim_small.log, ColumnMap(action="offer", control="no_offer", value="revenue",
                                                            cost="incentive_cost", propensity="propensity"))
    ro = readout(log).cpi.set_index("arm")
    assert readout(log).weighted
    n_control = int((log.action == "no_offer").sum())
    for arm in log.treatments:
        planned = planned_cpi(log, arm, int((log.action == arm).sum()), n_control)
        assert planned["cpi"] == pytest.approx(ro.loc[arm, "cpi"], rel=1e-12)
        assert planned["se"] == pytest.approx(ro.loc[arm, "se"], rel=1e-9)


# --- cold start ------------------------------------------------------------------------------------

def test_customers_the_model_cannot_score_get_their_segments_readout(sim_small, tmp_path):
    from core.design.cold_start import ALL, score_with_cold_start, segment_effects
    from core.diagnostics.readout import readout
    from core.uplift.model import UpliftModel
    from core.uplift.persist import load_model, save_model
    from core.workspace import Workspace

    cmap = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost", propensity="propensity",
                     segment="lifecycle", features=("tenure_months", "orders_12m", "email_engagement"))
    log = ExperimentLog.from_frame(sim_small.log, cmap)
    ws = Workspace(tmp_path / "ws.duckdb")
    model = load_model(save_model(UpliftModel(learner="t", folds=2, n_estimators=30).fit(log), log, ws), ws)
    segment, effects = model.cold_start_
    assert segment == "lifecycle" and ALL in effects.index
    active = ExperimentLog.from_frame(sim_small.log[sim_small.log["lifecycle"] == "active"].reset_index(drop=True), cmap)
    ro = readout(active).effects.set_index(["arm", "outcome"])
    assert effects.loc["active", "tau_value__coupon_20"] == pytest.approx(ro.loc[("coupon_20", "value"), "effect"])
    assert effects.loc["active", "tau_cost__coupon_20"] == pytest.approx(ro.loc[("coupon_20", "cost"), "effect"])

    new = sim_small.log.head(5).copy().reset_index(drop=True)
    new.loc[1, ["tenure_months", "orders_12m", "email_engagement"]] = np.nan
    new.loc[2, "lifecycle"] = "vip"
    new.loc[3, "lifecycle"] = "active"
    new.loc[3, ["tenure_months", "orders_12m", "email_engagement"]] = np.nan
    scored = score_with_cold_start(model, new, effects, segment)
    assert scored["cold_start"].tolist() == [False, True, True, True, False]
    assert scored["cold_start_reason"].tolist() == ["", "every model feature empty", "segment not seen in the training log",
                                                   "every model feature empty", ""]
    warm = model.predict(new.iloc[[0, 4]].reset_index(drop=True))
    np.testing.assert_allclose(scored.loc[[0, 4], warm.columns].to_numpy(), warm.to_numpy())
    np.testing.assert_allclose(scored.loc[2, effects.columns].to_numpy(dtype=float), effects.loc[ALL].to_numpy(dtype=float))
    np.testing.assert_allclose(scored.loc[3, effects.columns].to_numpy(dtype=float), effects.loc["active"].to_numpy(dtype=float))
    no_features = score_with_cold_start(model, new[["customer_id", "lifecycle"]], effects, segment)
    assert no_features["cold_start"].all() and set(no_features["cold_start_reason"]) == {"none of the model's features in the file"}


def test_a_log_without_conversions_in_the_control_asks_for_a_typed_rate():
    frame = pd.DataFrame({"arm": ["0"] * 50 + ["1"] * 50, "conversion": [0] * 50 + [1] * 2 + [0] * 48})
    log = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="0", value="conversion", features=()))
    with pytest.raises(UserError, match=r"the no-offer arm '0' has a conversion rate of 0 in this log \(0 of 50\).*type in the baseline rate"):
        design_from_log(log, mde=0.01)
