import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.evaluation import evaluate, recommend
from core.evaluation.calibration import calibration_bins, equal_count_bins
from core.evaluation.curves import (aucc, bootstrap_scores, cost_curve, cost_ranking, curve_bands, qini_auc_score,
                                    qini_coefficient, qini_curve, uplift_at_top, uplift_auc_score, uplift_curve)
from core.evaluation.stability import bag_rank_correlation
from core.schema import ColumnMap, ExperimentLog
from core.simulate import ARMS, simulate
from core.uplift.model import UpliftModel
from core.uplift.stability import time_split_stability

# The 8-row example worked by hand in the comments below (ties at 0.8 form one group).
SCORE = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1])
T = np.array([1, 1, 0, 1, 0, 1, 0, 0])
Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])


def test_hand_example_qini_curve():
    # k=1: Q = Y_t = 1; k=3: 1 − 1·2/1 = −1; k=4: 2 − 1·3/1 = −1; k=5: 2 − 1·3/2 = 0.5;
    # k=6: 2 − 1·4/2 = 0; k=7: 2 − 2·4/3 = −2/3; k=8: 2 − 2·4/4 = 0
    x, q = qini_curve(Y, SCORE, T)
    np.testing.assert_allclose(x, [0, 1, 3, 4, 5, 6, 7, 8])
    np.testing.assert_allclose(q, [0, 1, -1, -1, 0.5, 0, -2 / 3, 0])
    assert qini_coefficient(Y, SCORE, T) == pytest.approx(-7 / 6)
    # perfect curve: x = [0, 2, 6, 8], Q = [0, 2, 2, 0], area 12, random line area 0
    assert qini_auc_score(Y, SCORE, T) == pytest.approx(-7 / 72)


def test_hand_example_uplift_curve():
    x, u = uplift_curve(Y, SCORE, T)
    np.testing.assert_allclose(u, [0, 1, -1.5, -4 / 3, 5 / 6, 0, -7 / 6, 0])
    # area −29/12; perfect (2 control responders = 2 treated non-responders → summand t):
    # x = [0, 2, 4, 6, 8], U = [0, 2, 4, 3, 0], area 18
    assert uplift_auc_score(Y, SCORE, T) == pytest.approx(-29 / 216)
    # top half: 4 units (k = 4): treated mean 2/3, control mean 1
    assert uplift_at_top(Y, SCORE, T, 0.5) == pytest.approx(-1 / 3)


def test_hand_example_cost_curve():
    t = np.array([1, 0, 1, 0])
    value, cost = np.array([4.0, 0, 1, 1]), np.array([2.0, 0, 1, 0])
    score = np.array([3.0, 2.0, 1.0, 0.0])
    # incremental value (mean_t − mean_c)·k = 4, 8, 7.5, 8; incremental cost 2, 4, 4.5, 6
    x, y = cost_curve(value, cost, score, t)
    np.testing.assert_allclose(x, [0, 1 / 3, 2 / 3, 0.75, 1])
    np.testing.assert_allclose(y, [0, 0.5, 1, 0.9375, 1])
    assert aucc(value, cost, score, t) == pytest.approx(0.65625)


def test_cost_ranking_orders_free_value_first():
    key = cost_ranking([2.0, 1.0, 3.0, -1.0], [1.0, 0.0, 3.0, 0.0])
    assert list(np.argsort(-key)) == [1, 0, 2, 3]


def test_equal_to_scikit_uplift_on_binary_outcomes():
    sklift = pytest.importorskip("sklift.metrics")
    rng = np.random.default_rng(0)
    for _ in range(10):
        n = 400
        y, t = rng.integers(0, 2, n), rng.integers(0, 2, n)
        score = np.round(rng.normal(size=n), 1)  # plenty of ties
        assert qini_auc_score(y, score, t) == pytest.approx(sklift.qini_auc_score(y, score, t), abs=1e-12)
        assert uplift_auc_score(y, score, t) == pytest.approx(sklift.uplift_auc_score(y, score, t), abs=1e-12)
        np.testing.assert_allclose(qini_curve(y, score, t), sklift.qini_curve(y, score, t), atol=1e-9)
        np.testing.assert_allclose(uplift_curve(y, score, t), sklift.uplift_curve(y, score, t), atol=1e-9)


def test_equal_weights_change_nothing_and_continuous_outcomes_work():
    rng = np.random.default_rng(1)
    y, t, s = rng.exponential(20, 300), rng.integers(0, 2, 300), rng.normal(size=300)
    for metric in (qini_auc_score, uplift_auc_score, qini_coefficient):
        assert metric(y, s, t, np.full(300, 4.0)) == pytest.approx(metric(y, s, t), rel=1e-12)


def test_all_tied_scores_are_exactly_random():
    rng = np.random.default_rng(2)
    y, t = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    assert qini_auc_score(y, np.zeros(100), t) == pytest.approx(0.0, abs=1e-12)
    x, q = qini_curve(y, np.zeros(100), t)
    assert len(x) == 2


@pytest.mark.parametrize("score,treatment,message", [
    (np.r_[np.nan, np.zeros(7)], T, r"the score has 1 missing values \(first at row 1\)"),
    (SCORE, np.zeros(8), r"there are no treated rows"),
    (SCORE, np.full(8, 2), r"treatment must be 0 \(control\) or 1 \(treated\)"),
])
def test_bad_curve_inputs(score, treatment, message):
    with pytest.raises(UserError, match=message):
        qini_auc_score(Y, score, treatment)


# --- on the simulator ------------------------------------------------------------------------------

SIM_MAP = ColumnMap(action="offer", control="no_offer", value="revenue", cost="incentive_cost",
                    propensity="propensity", segment="lifecycle", time="send_date", id="customer_id")


@pytest.fixture(scope="module")
def sim_fit():
    sim = simulate(20_000, seed=4)
    log = ExperimentLog.from_frame(sim.log, SIM_MAP)
    model = UpliftModel(learner="x", folds=5, seed=0).fit(log)
    return sim, log, model


def truth_scores(sim):
    return pd.DataFrame({f"tau_{h}__{a}": sim.truth[f"true_tau_{h}__{a}"] for h in ("value", "cost") for a in ARMS[1:]})


def test_perfect_beats_fitted_beats_random(sim_fit):
    sim, log, model = sim_fit
    rng = np.random.default_rng(0)
    random = pd.DataFrame({c: rng.normal(size=log.n) for c in model.oof_.columns})
    perfect, fitted, noise = (evaluate(log, s) for s in (truth_scores(sim), model.oof_, random))
    for arm in ARMS[1:]:
        assert perfect.arms[arm].qini_normalized > fitted.arms[arm].qini_normalized > noise.arms[arm].qini_normalized, arm
        assert perfect.arms[arm].aucc > fitted.arms[arm].aucc > noise.arms[arm].aucc - 0.05, arm
    assert fitted.weighted, "non-uniform logged propensities → inverse-propensity weights"


def test_random_scores_average_zero_qini(sim_fit):
    sim, log, _ = sim_fit
    rows = (log.action == "coupon_20") | (log.action == "no_offer")
    y, t, w = log.value[rows], (log.action[rows] == "coupon_20").astype(int), 1 / log.propensity[rows]
    rng = np.random.default_rng(3)
    values = np.array([qini_auc_score(y, rng.normal(size=rows.sum()), t, w) for _ in range(100)])
    assert abs(values.mean()) < 3 * values.std(ddof=1) / np.sqrt(len(values))


def test_x_learner_is_calibrated_for_value_and_cost(sim_fit):
    _, log, model = sim_fit
    result = evaluate(log, model.oof_)
    for arm in ARMS[1:]:
        value_cal, cost_cal = result.arms[arm].calibration, result.arms[arm].calibration_cost
        assert abs(value_cal.slope - 1) <= 0.25, (arm, value_cal.slope)
        assert abs(cost_cal.slope - 1) <= 0.25, (arm, cost_cal.slope)
        assert value_cal.monotonicity > 0.8, (arm, value_cal.table["observed"].tolist())
        assert len(value_cal.table) == 10 and value_cal.table["n"].sum() == result.arms[arm].n


def test_evaluation_dict_follows_the_cli_contract(sim_fit):
    _, log, model = sim_fit
    out = evaluate(log, model.oof_).to_dict()
    assert set(out) == set(ARMS[1:])
    assert set(out["coupon_20"]) >= {"qini_normalized", "auuc_normalized", "qini_coefficient", "aucc", "calibration"}
    assert set(out["coupon_20"]["calibration"][0]) == {"bin", "n", "predicted", "observed", "ci_low", "ci_high"}


def test_calibration_hand_example_and_empty_bins():
    score = np.array([1.0, 1, 1, 1, 2, 2, 2, 2])
    t = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y = np.array([3.0, 5, 1, 1, 2, 2, 2, 2])
    cal = calibration_bins(y, score, t, n_bins=2)
    # bin 1: treated mean 4, control mean 1 → 3; bin 2: 2 − 2 = 0
    assert cal.table["observed"].tolist() == [3.0, 0.0]
    assert cal.table["predicted"].tolist() == [1.0, 2.0]
    one_sided = calibration_bins(y, score, np.array([1, 1, 1, 1, 1, 1, 0, 0]), n_bins=2)
    assert np.isnan(one_sided.table.loc[0, "observed"]) and one_sided.table.loc[0, "note"] == "fewer than 2 control rows"
    assert np.isnan(one_sided.slope), "one usable bin: no line"


def test_equal_count_bins_keep_ties_together():
    bins = equal_count_bins([1, 1, 1, 1, 2, 3, 4, 5, 6, 7], 5)
    assert len(set(bins[:4])) == 1
    assert bins.max() == 4 and bins.min() == 0


def test_evaluate_rejects_unknown_arms_and_misaligned_scores(sim_fit):
    _, log, model = sim_fit
    with pytest.raises(UserError, match=r"arm\(s\) 'vip' not in the log"):
        evaluate(log, model.oof_, arms=["vip"])
    with pytest.raises(UserError, match=r"the scores have 10 rows but the log has 20,000"):
        evaluate(log, model.oof_.head(10))


# --- bands and stability ---------------------------------------------------------------------------

def test_bands_are_the_2_5_and_97_5_percentiles_of_the_replicate_curves():
    """Rebuild every Poisson-bootstrap replicate of the Qini and uplift curves independently (same
    seed, so the same counts) and take the percentiles: the bands must be exactly those."""
    rng = np.random.default_rng(12)
    n, n_boot, seed = 400, 300, 4
    t = rng.integers(0, 2, n)
    score = rng.normal(size=n)
    y = rng.binomial(1, 0.2 + 0.2 * t * (score > 0)).astype(float)
    bands = curve_bands(y, score, t, n_boot=n_boot, seed=seed, grid=20)
    counts = np.random.default_rng(seed).poisson(1.0, size=(n_boot, n)).astype(float)
    order = np.argsort(score, kind="mergesort")[::-1]
    ends = np.round(bands["fraction"] * n).astype(int)
    qini, uplift = [], []
    tt, yy = t[order], y[order]
    for k in counts:  # the counts are drawn for the units in ranked order
        nt, nc = np.cumsum(k * tt)[ends - 1], np.cumsum(k * (1 - tt))[ends - 1]
        yt, yc = np.cumsum(k * tt * yy)[ends - 1], np.cumsum(k * (1 - tt) * yy)[ends - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_t = np.where(nt > 0, yt / nt, 0.0)
            mean_c = np.where(nc > 0, yc / nc, 0.0)
        qini.append(np.where(nc > 0, yt - yc * nt / np.where(nc > 0, nc, 1), yt))
        uplift.append((mean_t - mean_c) * (nt + nc))
    qini, uplift = np.array(qini), np.array(uplift)
    np.testing.assert_allclose(bands["qini_low"], np.percentile(qini, 2.5, axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bands["qini_high"], np.percentile(qini, 97.5, axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bands["uplift_low"], np.percentile(uplift, 2.5, axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bands["uplift_high"], np.percentile(uplift, 97.5, axis=0), rtol=1e-9, atol=1e-9)
    assert not np.allclose(bands["qini_high"], np.percentile(qini, 95, axis=0)), "the levels matter"


def test_bands_agree_with_a_naive_bootstrap_and_are_seeded():
    rng = np.random.default_rng(5)
    n = 3000
    t = rng.integers(0, 2, n)
    score = rng.normal(size=n)
    y = rng.binomial(1, 0.2 + 0.1 * t * (score > 0))
    exact = curve_bands(y, score, t, n_boot=400, seed=1)
    binned = curve_bands(y, score, t, n_boot=400, seed=1, exact_limit=0)
    naive = bootstrap_scores(qini_auc_score, y, score, t, n_boot=400, seed=2)
    for bands in (exact, binned):
        assert np.all(bands["qini_low"] <= bands["qini"] + 1e-9) and np.all(bands["qini"] <= bands["qini_high"] + 1e-9)
        width = np.percentile(bands["qini_auc_replicates"], 97.5) - np.percentile(bands["qini_auc_replicates"], 2.5)
        naive_width = np.percentile(naive, 97.5) - np.percentile(naive, 2.5)
        assert width == pytest.approx(naive_width, rel=0.2)
    again = curve_bands(y, score, t, n_boot=400, seed=1)
    np.testing.assert_array_equal(again["qini_high"], exact["qini_high"])
    mid = len(exact["fraction"]) // 2
    assert binned["uplift_high"][mid] - binned["uplift_low"][mid] == pytest.approx(
        exact["uplift_high"][mid] - exact["uplift_low"][mid], rel=0.25)


def test_bag_rank_correlation():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 500, 2))
    assert bag_rank_correlation(np.repeat(base, 3, axis=0)) == pytest.approx([1.0, 1.0])
    noise = rng.normal(size=(4, 500, 2))
    assert np.all(np.abs(bag_rank_correlation(noise)) < 0.15)
    with pytest.raises(UserError, match=r"needs at least 2 bootstrap refits"):
        bag_rank_correlation(base)


def test_time_split_stability_on_the_simulator():
    sim = simulate(8000, seed=6)
    log = ExperimentLog.from_frame(sim.log, SIM_MAP)
    # a fixed number of trees (80) means fixed tuning: no search, no early stopping
    result = time_split_stability(log, {"learner": "t", "folds": 2, "n_estimators": 80, "tuning": "fixed"})
    assert result.n_early + result.n_late == log.n
    assert all(r > 0.5 for r in result.correlation.values()), result.correlation


def test_recommendation_prefers_calibrated_models():
    boards = {"s": {"qini": 0.30, "calibration_slope": 2.5, "stability": 0.9},
              "x": {"qini": 0.25, "calibration_slope": 0.95, "stability": 0.8},
              "t": {"qini": 0.20, "calibration_slope": 1.0, "stability": None}}
    best, why = recommend(boards)
    assert best == "x" and "calibration slope 0.95" in why
    best, why = recommend({"s": boards["s"]})
    assert best == "s" and "no model is well calibrated" in why


def test_rare_outcomes_are_flagged_per_arm_and_nothing_is_recommended_on_noise():
    """Issue 13, item 10: two conversions in a log must not give 'Recommended: … highest Qini'."""
    from core.evaluation import MIN_EVENTS, evaluate

    rng = np.random.default_rng(0)
    n = 1000
    frame = pd.DataFrame({"arm": np.where(np.arange(n) % 2 == 0, "0", "1"), "x": rng.normal(size=n),
                          "conversion": 0})
    frame.loc[[1, 4], "conversion"] = 1  # one conversion under the offer, one under control
    log = ExperimentLog.from_frame(frame, ColumnMap(action="arm", control="0", value="conversion", features=("x",)))
    scores = pd.DataFrame({"tau_value__1": rng.normal(size=n), "tau_cost__1": np.nan})
    result = evaluate(log, scores)
    assert result.arms["1"].events == (1, 1) and result.arms["1"].rare
    assert any("only 1 non-zero outcomes under the offer and 1 under '0'" in note for note in result.notes)
    summary = result.summary()
    assert summary["min_events"] == 1
    best, why = recommend({"x": {**summary, "stability": None}, "s": {**summary, "qini": 0.9, "stability": None}})
    assert best is None and "no recommendation" in why and "as few as 1 non-zero outcomes" in why
    # exactly MIN_EVENTS in the thinner arm is enough
    boards = {"x": {"qini": 0.2, "calibration_slope": 1.0, "stability": None, "min_events": MIN_EVENTS}}
    assert recommend(boards)[0] == "x"
    boards["x"]["min_events"] = MIN_EVENTS - 1
    assert recommend(boards)[0] is None


def test_calibration_line_weights_each_bin_by_its_inverse_variance():
    """Slope and intercept equal numpy's weighted fit with w = 1/se (numpy weights residuals, so
    that is inverse-variance weighting); bins of unequal size make the weights differ, so an
    unweighted or 1/se-weighted line would not match."""
    rng = np.random.default_rng(9)
    n = 3000
    score = rng.uniform(0, 2, n)
    t = rng.integers(0, 2, n)
    noise = np.where(score > 1.3, 8.0, 1.0)  # the top bins are much noisier
    y = 5 + 0.7 * score * t + rng.normal(0, noise)
    cal = calibration_bins(y, score, t, n_bins=4)
    table = cal.table
    assert len(table) == 4 and table["se"].nunique() == 4 and table["se"].max() > 3 * table["se"].min()
    slope, intercept = np.polyfit(table["predicted"], table["observed"], 1, w=1 / table["se"])
    assert cal.slope == pytest.approx(slope, rel=1e-10)
    assert cal.intercept == pytest.approx(intercept, rel=1e-10)
    unweighted = np.polyfit(table["predicted"], table["observed"], 1)[0]
    assert abs(unweighted - slope) > 1e-3, "the weights matter in this example"


# --- learning vs accounting horizon (issue 14, item 4) ---------------------------------------------

def test_horizon_ratio_per_bin_by_hand_and_exact_cases():
    from core.evaluation.horizon import horizon_ratios, plan_long_value

    rng = np.random.default_rng(3)
    n = 4000
    score = rng.uniform(0, 1, n)
    t = rng.integers(0, 2, n)
    short = rng.gamma(2, 5, n) + 4 * t * score
    # the long horizon keeps 1× the short effect for low scores and 2× for high scores
    long = short * np.where(score > 0.5, 2.0, 1.0)
    result = horizon_ratios(short, long, score, t, n_bins=2)
    np.testing.assert_allclose(result.table["ratio"], [1.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(result.table["se"], [0.0, 0.0], atol=1e-6)  # an exact multiple has no uncertainty
    # a noisy long horizon: the bin's ratio is the ratio of the two mean differences
    noisy = long + rng.normal(0, 5, n)
    result = horizon_ratios(short, noisy, score, t, n_bins=2)
    top = score > np.median(score)
    hand = ((noisy[top & (t == 1)].mean() - noisy[top & (t == 0)].mean())
            / (short[top & (t == 1)].mean() - short[top & (t == 0)].mean()))
    assert result.table["ratio"].iloc[1] == pytest.approx(hand, rel=1e-10)
    assert result.table["ci_low"].iloc[1] < hand < result.table["ci_high"].iloc[1]
    # a plan's long value scales each chosen customer's τ by the ratio of their bin
    tau = np.array([0.2, 0.9, 0.7])
    exact = horizon_ratios(short, long, score, t, n_bins=2)
    value = plan_long_value(tau, np.array(["a", "a", ""], dtype=object), {"a": exact})
    assert value == pytest.approx(0.2 * 1.0 + 0.9 * 2.0)
