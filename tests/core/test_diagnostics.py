import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.diagnostics import RED, balance_light, overlap_light, srm_light
from core.diagnostics.balance import balance, design_matrix, smd_matrix
from core.diagnostics.overlap import ess, estimate_propensities, overlap
from core.diagnostics.readout import readout
from core.diagnostics.srm import chisquare_counts, count_arms, propensity_consistency, srm
from core.errors import UserError, cli_spelling
from core.schema import ColumnMap, ExperimentLog
from core.simulate import ARMS, simulate
from tests.conftest import HILLSTROM

SIM_MAP = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost",
                    propensity="propensity", segment="lifecycle", time="send_date", id="customer_id")


def sim_log(sim, **changes):
    return ExperimentLog.from_frame(sim.log, ColumnMap(**{**SIM_MAP.to_dict(), **changes}))


@pytest.fixture(scope="module")
def hillstrom_log(hillstrom_frame):
    return ExperimentLog.from_frame(hillstrom_frame, ColumnMap(
        action="segment", control="No E-Mail", value="visit", action_cost={"Mens E-Mail": 0.1, "Womens E-Mail": 0.1},
        features=("recency", "history", "mens", "womens", "zip_code", "newbie", "channel")))


@pytest.fixture(scope="module")
def sim20k():
    return simulate(20_000, seed=21)


# --- SRM ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts,weights", [
    ({"a": 500, "b": 520, "c": 480}, None),
    ({"a": 100, "b": 130}, {"a": 1, "b": 1}),
    ({"a": 1000, "b": 2100, "c": 950}, {"a": 1, "b": 2, "c": 1}),
    ({"a": 7, "b": 3, "c": 15, "d": 40}, {"a": 0.1, "b": 0.1, "c": 0.2, "d": 0.6}),
])
def test_chi2_and_p_match_scipy(counts, weights):
    frame = pd.DataFrame({"arm": np.repeat(list(counts), list(counts.values()))})
    result = srm(frame, "arm", control="a", weights=weights)
    labels = list(result.overall.observed)
    observed = [counts[l] for l in labels]
    w = np.array([(weights or {l: 1 for l in labels})[l] for l in labels], dtype=float)
    expected = w / w.sum() * sum(observed)
    reference = stats.chisquare(observed, expected)
    assert result.overall.chi2 == pytest.approx(reference.statistic, rel=1e-12)
    assert result.overall.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.dof == len(counts) - 1
    assert result.to_dict()["expected"] == pytest.approx(dict(zip(labels, expected)))


def test_clean_splits_alarm_at_the_rate_alpha():
    rng = np.random.default_rng(0)
    shares = {"c": 1 / 3, "a": 1 / 3, "b": 1 / 3}
    p_values = np.array([chisquare_counts(dict(zip(shares, rng.multinomial(10_000, list(shares.values())))), shares, 0.05).p_value
                         for _ in range(200)])
    rate = np.mean(p_values < 0.05)
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 200), rate
    assert np.sum(p_values < 0.001) <= 2, "α = 0.001: about 0.2 alarms expected in 200 clean splits"
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_simulator_srm_is_caught_and_clean_log_is_not():
    clean = simulate(20_000, seed=31)
    intended = {a: float(clean.truth[f"true_propensity__{a}"].mean()) for a in ARMS}
    assert not srm(clean.log, "offer", control="no_offer", weights=intended).alarm
    dropped = simulate(20_000, seed=31, srm_drop={"coupon_20": 0.2})
    result = srm(dropped.log, "offer", control="no_offer", weights=intended)
    assert result.alarm and result.overall.worst_arm == "coupon_20" and result.overall.worst_direction == "under"
    check = propensity_consistency(dropped.log["offer"], dropped.log["propensity"], ARMS)
    # S_coupon falls to 80% of the original n while n itself loses 20% of the coupon rows.
    share = (clean.log["offer"] == "coupon_20").mean()
    assert check.alarm and check.ratio["coupon_20"] == pytest.approx(0.8 / (1 - 0.2 * share), abs=0.03)
    assert all(check.ratio[a] > 1 for a in ARMS if a != "coupon_20")
    assert not propensity_consistency(clean.log["offer"], clean.log["propensity"], ARMS).alarm


def test_propensity_check_reduces_to_pearson_for_uniform_logging():
    action = np.array(["a"] * 1040 + ["b"] * 1000 + ["c"] * 960)
    check = propensity_consistency(action, np.full(len(action), 1 / 3), ["a", "b", "c"])
    pearson = stats.chisquare([1040, 1000, 960]).statistic
    # D_a is estimated from the arm's own rows (9·n_a instead of 3n), hence the small gap.
    assert check.chi2 == pytest.approx(pearson, rel=0.05)
    assert check.dof == pytest.approx(2.0, abs=0.01)


@pytest.mark.slow
def test_propensity_check_false_alarm_rate_on_clean_simulations():
    p_values = [propensity_consistency(s.log["offer"], s.log["propensity"], ARMS).p_value
                for s in (simulate(10_000, seed=100 + k) for k in range(60))]
    assert np.mean(np.array(p_values) < 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60)


def test_hillstrom_has_no_srm_but_a_dropped_subsample_alarms(hillstrom_frame):
    assert not srm(HILLSTROM, "segment", control="No E-Mail", by="channel").alarm
    rng = np.random.default_rng(1)
    mens = hillstrom_frame["segment"] == "Mens E-Mail"
    keep = ~(mens & (rng.uniform(size=len(hillstrom_frame)) < 0.06))
    result = srm(hillstrom_frame[keep], "segment", control="No E-Mail")
    assert result.alarm and result.overall.worst_arm == "Mens E-Mail" and result.overall.worst_direction == "under"


def test_srm_by_segment_and_day_with_cumulative(sim20k):
    intended = {a: float(sim20k.truth[f"true_propensity__{a}"].mean()) for a in ARMS}
    result = srm(sim20k.log, "offer", control="no_offer", weights=intended, by="lifecycle", time="send_date")
    assert set(result.by) == {"new", "active", "lapsed", "dormant"}
    assert sum(g.n for g in result.by.values()) == result.overall.n
    assert len(result.days) == 14 and len(result.cumulative) == 14
    last = list(result.cumulative.values())[-1]
    assert last.chi2 == pytest.approx(result.overall.chi2) and last.n == result.overall.n
    table = result.table()
    assert len(table) == 1 + 4 + 14 + 14


def test_counting_in_duckdb_matches_pandas_on_a_file(tmp_path, sim20k):
    path = tmp_path / "log.csv.gz"
    from core.io import write_table

    write_table(sim20k.log, path)
    counts = count_arms(path, "offer", ["lifecycle"]).set_index(["lifecycle", "arm"])["n"].sort_index()
    expected = sim20k.log.groupby(["lifecycle", "offer"]).size().sort_index()
    assert counts.tolist() == expected.tolist()


@pytest.mark.parametrize("kwargs,message", [
    ({"weights": {"a": 1, "zz": 1}}, r"--expected names arm\(s\) 'zz' that are not in the log"),
    ({"weights": {"a": 1, "b": 0}}, r"--expected weight for arm 'b' must be a positive number, got 0"),
    ({"weights": {"a": 1}}, r"--expected gives no weight for arm\(s\) 'b'"),
    ({"by": "uid"}, r"--by column 'uid' has 10,000 distinct values; at most 1,000 groups"),
    ({"alpha": 1.5}, r"--alpha must be between 0 and 1, got 1.5"),
    ({"control": "nobody"}, r"control label 'nobody' is not an arm of the log"),
])
def test_bad_srm_inputs(kwargs, message):
    """Core names the setting; the CLI spells it as its flag (the message above)."""
    frame = pd.DataFrame({"arm": ["a", "b"] * 5000, "uid": np.arange(10_000)})
    with pytest.raises(UserError) as caught:
        srm(frame, "arm", **{"control": "a", **kwargs})
    assert re.search(message, str(caught.value.spelled(cli_spelling))), str(caught.value)
    assert "--" not in str(caught.value)


def test_a_log_with_one_arm_is_refused():
    with pytest.raises(UserError, match=r"the log has 1 arm \(a\); an SRM check needs at least 2"):
        srm(pd.DataFrame({"arm": ["a"] * 10}), "arm")


# --- balance --------------------------------------------------------------------------------------

def test_smd_hand_example():
    x = pd.DataFrame({"age": [20.0, 30.0, 40.0, 30.0, 50.0, 70.0]})
    action = np.array(["c", "c", "c", "t", "t", "t"])
    # control: mean 30, var 100; treated: mean 50, var 400 → SMD = 20 / sqrt(250)
    smd = smd_matrix(x, action, ["c", "t"], "c")
    assert smd.loc["age", "t"] == pytest.approx(20 / np.sqrt(250))
    # equal weights give the same number; weights tilt the means
    assert smd_matrix(x, action, ["c", "t"], "c", np.full(6, 3.0)).loc["age", "t"] == pytest.approx(20 / np.sqrt(250))


def test_categoricals_are_one_hot_and_constant_features_are_zero():
    frame = pd.DataFrame({"channel": ["web", "app", "web", "web"], "flag": [1.0, 1.0, 1.0, 1.0]})
    design = design_matrix(frame, ["channel", "flag"])
    assert list(design.columns) == ["channel_app", "channel_web", "flag"]
    smd = smd_matrix(design, np.array(["c", "c", "t", "t"]), ["c", "t"], "c")
    # channel_web: control 0.5 (var 0.5), treated 1.0 (var 0) → 0.5 / sqrt(0.25) = 1
    assert smd.loc["channel_web", "t"] == pytest.approx(1.0)
    assert smd.loc["flag", "t"] == 0.0


def test_targeted_log_is_imbalanced_raw_but_balanced_after_weighting(sim20k):
    log = sim_log(sim20k)
    result = balance(log, log.propensity)
    assert result.max_abs_smd > 0.3, "targeting on lifecycle/engagement shows raw imbalance"
    assert result.max_abs_smd_weighted < 0.1
    assert balance_light(result, weighted=True).status == "green"
    assert balance_light(result, weighted=False).status == RED
    assert set(result.to_dict()["smd"]) >= {"tenure_months", "channel_web", "region_north"}


def test_randomised_hillstrom_is_balanced(hillstrom_log):
    result = balance(hillstrom_log)
    assert result.max_abs_smd < 0.05
    assert result.smd_weighted is None


# --- overlap ---------------------------------------------------------------------------------------

def test_ess_hand_example():
    assert ess([1.0, 2.0, 3.0]) == pytest.approx(36 / 14)
    assert ess(np.full(10, 4.0)) == pytest.approx(10)
    assert ess([]) == 0.0


def test_overlap_from_logged_propensities(sim20k):
    log = sim_log(sim20k)
    result = overlap(log, clip=0.01)
    assert result.propensity_source == "logged"
    rows = log.action == "coupon_20"
    w = 1 / log.propensity[rows]
    assert result.ess["coupon_20"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert result.min_propensity["coupon_20"] == pytest.approx(log.propensity[rows].min())
    assert result.share_below_clip == 0.0
    assert overlap_light(result).status == "green"
    d = result.to_dict()
    assert set(d) >= {"propensity_source", "clip", "share_below_clip", "min_propensity", "ess"}


def test_poor_overlap_turns_red_and_clipping_is_explained():
    sim = simulate(8000, seed=2, poor_overlap=True)
    result = overlap(sim_log(sim), clip=0.01)
    # The logged arm is usually a likely one; the damage shows in the weights of the rare picks.
    assert result.share_below_clip > 0
    assert min(result.ess_ratio.values()) < 0.1
    assert overlap_light(result).status == RED
    table = result.clip_table()
    assert table["min_ess_ratio"].is_monotonic_increasing, "a larger clip never lowers ESS"
    assert result.suggested_clip > 0


def test_estimated_propensities_are_cross_fitted_and_flag_logging_bugs(sim20k):
    log = sim_log(sim20k)
    est = estimate_propensities(log, folds=3, seed=0)
    assert est.shape == (log.n, 4)
    np.testing.assert_allclose(est.sum(axis=1), 1.0)
    truth = sim20k.truth[[f"true_propensity__{a}" for a in log.labels]].to_numpy()
    assert np.corrcoef(est.ravel(), truth.ravel())[0, 1] > 0.9
    corrupted = sim20k.log.copy()
    bad_rows = np.arange(0, 20_000, 100)
    corrupted.loc[bad_rows, "propensity"] = corrupted.loc[bad_rows, "propensity"] / 8
    bad_log = ExperimentLog.from_frame(corrupted, SIM_MAP)
    flagged = overlap(bad_log, estimated=est).disagreement()
    caught = np.isin(bad_rows + 1, flagged["row"]).mean()
    assert caught > 0.8 and len(flagged) < 3 * len(bad_rows)


def test_hillstrom_without_propensities_is_estimated_near_one_third(hillstrom_log):
    est = estimate_propensities(hillstrom_log, folds=2, seed=0)
    result = overlap(hillstrom_log, estimated=est)
    assert result.propensity_source == "estimated"
    assert abs(result.propensity.mean() - 1 / 3) < 0.01
    with pytest.raises(UserError, match=r"the log has no propensity column"):
        overlap(hillstrom_log)
    with pytest.raises(UserError, match=r"^clip must be between 0 and 1") as caught:
        overlap(hillstrom_log, clip=0, estimated=est)
    assert str(caught.value.spelled(cli_spelling)).startswith("--clip must be between 0 and 1")


# --- readout ---------------------------------------------------------------------------------------

def test_hillstrom_readout_reproduces_the_known_differences(hillstrom_log, hillstrom_frame):
    result = readout(hillstrom_log)
    mens = result.effects.query("arm == 'Mens E-Mail' and outcome == 'value'").iloc[0]
    assert mens["effect"] == pytest.approx(0.0766, abs=5e-5)
    assert mens["se"] == pytest.approx(0.0034, abs=5e-5)
    visit = hillstrom_frame.groupby("segment")["visit"]
    se = np.sqrt(visit.var()["Mens E-Mail"] / visit.size()["Mens E-Mail"] + visit.var()["No E-Mail"] / visit.size()["No E-Mail"])
    assert mens["se"] == pytest.approx(se, rel=1e-10)
    womens = result.effects.query("arm == 'Womens E-Mail' and outcome == 'value'").iloc[0]
    assert womens["effect"] == pytest.approx(0.15140 - 0.10617, abs=5e-5)
    assert not result.weighted
    # CPI with a constant cost: Δcost is exact, so CPI = 0.1 / Δv and its SE = 0.1 · se_v / Δv².
    cpi = result.cpi.set_index("arm").loc["Mens E-Mail"]
    assert cpi["cpi"] == pytest.approx(0.1 / mens["effect"])
    assert cpi["se"] == pytest.approx(0.1 * mens["se"] / mens["effect"] ** 2, rel=1e-6)


def test_weighted_readout_recovers_the_true_average_effects(sim20k):
    result = readout(sim_log(sim20k))
    assert result.weighted
    for _, row in result.effects.iterrows():
        true = sim20k.truth[f"true_tau_{row['outcome']}__{row['arm']}"].mean()
        assert abs(row["effect"] - true) < 3 * row["se"], (row["arm"], row["outcome"], row["effect"], true)


def test_cuped_never_widens_the_interval(sim20k):
    log = sim_log(sim20k)
    adjusted = readout(log, cuped="pre_revenue").effects
    assert (adjusted["se"] <= adjusted["se_unadjusted"] + 1e-12).all()
    assert (adjusted.query("outcome == 'value'")["variance_reduction"] > 0.01).all()
    plain = readout(log).effects
    np.testing.assert_allclose(adjusted["se_unadjusted"], plain["se"])
    for _, row in adjusted.iterrows():
        true = sim20k.truth[f"true_tau_{row['outcome']}__{row['arm']}"].mean()
        assert abs(row["effect"] - true) < 3 * row["se"]


@pytest.mark.parametrize("cuped,message", [
    ("nope", r"CUPED covariate 'nope' is not in the log"),
    ("revenue", r"CUPED covariate 'revenue' is mapped to a role"),
])
def test_bad_cuped_columns(sim20k, cuped, message):
    with pytest.raises(UserError, match=message):
        readout(sim_log(sim20k), cuped=cuped)


def test_srm_light_messages(sim20k):
    check = propensity_consistency(sim20k.log["offer"], sim20k.log["propensity"], ARMS)
    assert srm_light(None, check).status == "green"
    equal = srm(sim20k.log, "offer", control="no_offer")
    light = srm_light(equal)
    assert light.status == RED and "represented" in light.message


def _random_cost_log(n_per_arm: int, seed: int):
    """Two arms, value and a random cost that rises with value (so the covariance term of the
    CPI's delta method matters), and propensities that vary within each arm."""
    rng = np.random.default_rng(seed)
    arm = np.repeat(["offer", "none"], n_per_arm)
    treated = arm == "offer"
    # the control's value varies little, so the treated arm's covariance dominates the ratio's variance
    value = np.where(treated, rng.gamma(2.0, 5.0, 2 * n_per_arm) + 3.0, rng.normal(10.0, 1.0, 2 * n_per_arm))
    cost = np.where(treated, value + rng.exponential(0.2, 2 * n_per_arm), 0.0)
    p = rng.uniform(0.3, 0.7, 2 * n_per_arm)
    frame = pd.DataFrame({"arm": arm, "value": value, "cost": cost, "p": p, "x": rng.normal(size=2 * n_per_arm)})
    return frame, ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="none", value="value", cost="cost",
                                                            propensity="p", features=("x",)))


def test_cpi_standard_error_matches_an_independent_bootstrap():
    frame, log = _random_cost_log(3000, seed=5)
    cpi = readout(log).cpi.iloc[0]
    rng = np.random.default_rng(0)
    groups = {a: frame[frame["arm"] == a] for a in ("offer", "none")}

    def hajek(g, col):
        w = 1 / g["p"].to_numpy()
        return float(np.sum(w * g[col].to_numpy()) / w.sum())

    ratios = []
    for _ in range(2000):  # stratified: each arm resampled with its own size, as in the design
        draw = {a: g.iloc[rng.integers(0, len(g), len(g))] for a, g in groups.items()}
        dv = hajek(draw["offer"], "value") - hajek(draw["none"], "value")
        dc = hajek(draw["offer"], "cost") - hajek(draw["none"], "cost")
        ratios.append(dc / dv)
    boot_se = float(np.std(ratios, ddof=1))
    # Monte Carlo error of a 2000-draw SE is ≈ 1/√(2·2000) ≈ 1.6%; the delta method adds a little.
    assert cpi["se"] == pytest.approx(boot_se, rel=0.06)
    # dropping the covariance term of the delta method would be far outside that tolerance
    effects = readout(log).effects.set_index("outcome")
    dv, dc = effects.loc["value", "effect"], effects.loc["cost", "effect"]
    no_cov = np.sqrt(effects.loc["cost", "se"] ** 2 / dv**2 + dc**2 * effects.loc["value", "se"] ** 2 / dv**4)
    assert abs(no_cov / boot_se - 1) > 0.25
    assert cpi["cpi"] == pytest.approx(dc / dv)
