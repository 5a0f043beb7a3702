"""The direct ranking model: its loss and gradients, the scorers, effects per score bin, and
what it does on data with a known answer."""

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError, cli_spelling
from core.evaluation import evaluate
from core.evaluation.curves import aucc, aucc_interval, qini_auc_score
from core.schema import ColumnMap, ExperimentLog
from core.simulate import simulate_cost_structure
from core.uplift import direct_ranking as drm
from core.uplift import ranking_scorers
from core.uplift.model import UpliftModel

FEATURES = ["x1", "x2", "x3", "x4", "x5", "region"]


def cost_log(frame: pd.DataFrame, **overrides) -> ExperimentLog:
    features = tuple(f for f in FEATURES if f != overrides.get("segment"))
    mapping = {"action": "offer", "control": "no_offer", "value": "value", "cost": "cost", "features": features,
               **overrides}
    return ExperimentLog.from_frame(frame, ColumnMap(**mapping))


def random_problem(n=40, seed=0, weighted=True):
    rng = np.random.default_rng(seed)
    treated = np.arange(n) % 2 == 0
    value = rng.normal(1.0, 1.0, n) + treated
    cost = np.where(treated, rng.exponential(1.0, n), 0.0)
    weight = rng.uniform(0.5, 3.0, n) if weighted else None
    return rng.normal(0, 1, n), treated, value, cost, weight


def numeric_gradient(f, x, h=1e-6):
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        out.flat[i] = (f(x + e) - f(x - e)) / (2 * h)
    return out


# --- the soft selection and the loss -------------------------------------------------------------

def test_soft_selection_is_a_softmax_per_arm_that_sums_to_one():
    score = np.array([0.0, np.log(2.0), 5.0, 1.0, 1.0])
    treated = np.array([True, True, False, False, False])
    p = drm.soft_selection(score, treated)
    np.testing.assert_allclose(p[:2], [1 / 3, 2 / 3])
    e = np.exp([5.0, 1.0, 1.0])
    np.testing.assert_allclose(p[2:], e / e.sum())
    weighted = drm.soft_selection(score, treated, weight=np.array([2.0, 1.0, 1.0, 1.0, 1.0]))
    np.testing.assert_allclose(weighted[:2], [0.5, 0.5])  # 2·e^0 = 1·e^log2
    for p in (drm.soft_selection(*random_problem(seed=s)[:2], random_problem(seed=s)[4]) for s in range(5)):
        treated = random_problem()[1]
        assert p[treated].sum() == pytest.approx(1.0) and p[~treated].sum() == pytest.approx(1.0)
    huge = drm.soft_selection(np.array([1000.0, 0.0, -1000.0, 0.0]), np.array([True, True, False, False]))
    np.testing.assert_allclose(huge, [1.0, 0.0, 0.0, 1.0])  # no overflow


def test_the_loss_is_minus_the_softplus_ratio_of_the_soft_selection_increments():
    score = np.array([0.0, np.log(3.0), 0.0, 0.0])
    treated = np.array([True, True, False, False])
    value = np.array([4.0, 8.0, 1.0, 3.0])
    cost = np.array([2.0, 1.0, 0.0, 0.0])
    obj = drm.objective(score, treated, value, cost)
    # treated p = (1/4, 3/4): Δv = 1 + 6 − 2 = 5; Δc = 0.5 + 0.75 = 1.25
    assert obj.delta_value == pytest.approx(5.0) and obj.delta_cost == pytest.approx(1.25)
    assert obj.loss == pytest.approx(-np.log1p(np.exp(5.0)) / np.log1p(np.exp(1.25)))


@pytest.mark.parametrize("cpi_max", [None, 0.4, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradient_matches_finite_differences(cpi_max, weighted):
    score, treated, value, cost, weight = random_problem(seed=3, weighted=weighted)
    obj = drm.objective(score, treated, value, cost, weight, cpi_max)
    numeric = numeric_gradient(lambda s: drm.objective(s, treated, value, cost, weight, cpi_max).loss, score)
    np.testing.assert_allclose(obj.grad, numeric, rtol=1e-5, atol=1e-8)
    assert (obj.hess >= 0).all() and obj.hess.sum() > 0
    assert drm.Cohort.of(treated, value, cost, weight).loss(score, cpi_max) == pytest.approx(obj.loss, rel=1e-12)


def test_the_loss_stays_finite_as_incremental_cost_reaches_zero():
    treated = np.array([True, True, False, False])
    value = np.array([3.0, 5.0, 1.0, 1.0])
    score = np.zeros(4)
    for delta_cost in (1e-3, 1e-9, 0.0, -1e-9):
        cost = np.array([delta_cost, delta_cost, 0.0, 0.0])
        obj = drm.objective(score, treated, value, cost)
        assert np.isfinite(obj.loss) and np.isfinite(obj.grad).all()
        # the raw ratio −Δv/Δc would explode; the softplus ratio tends to −softplus(Δv)/log 2
        assert obj.loss == pytest.approx(-np.log1p(np.exp(3.0)) / np.log(2.0), rel=1e-3)


def test_the_log_barrier_extension_is_continuous_with_its_derivative():
    t = drm.BARRIER_T
    edge = -1.0 / t**2
    below, above = drm.barrier(edge - 1e-12), drm.barrier(edge + 1e-12)
    assert below[0] == pytest.approx(above[0], abs=1e-9) and below[1] == pytest.approx(above[1], rel=1e-6)
    for z in (-2.0, -0.5, edge / 2, 0.0, 0.7):
        numeric = (drm.barrier(z + 1e-7)[0] - drm.barrier(z - 1e-7)[0]) / 2e-7
        assert drm.barrier(z)[1] == pytest.approx(numeric, rel=1e-5)
    assert drm.barrier(1.0)[0] > drm.barrier(0.0)[0] > drm.barrier(-0.5)[0]  # infeasible costs more


# --- the scorers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_numpy_scorer_gradient_matches_finite_differences(kind):
    score, treated, value, cost, weight = random_problem(n=30, seed=1)
    z = np.random.default_rng(2).normal(size=(30, 4))
    scorer = ranking_scorers.NumpyScorer(kind, 4, hidden=5, seed=0)
    scorer.params = [p + np.random.default_rng(3).normal(0, 0.5, p.shape) for p in scorer.params]

    def loss(flat):
        keep = [p.copy() for p in scorer.params]
        offset = 0
        for p in scorer.params:
            p[...] = flat[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        out = drm.objective(scorer.score(z), treated, value, cost, weight).loss
        scorer.params = keep
        return out

    flat = np.concatenate([p.ravel() for p in scorer.params])
    analytic = scorer.score_grad(z, drm.objective(scorer.score(z), treated, value, cost, weight).grad)
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in analytic]), numeric_gradient(loss, flat),
                               rtol=1e-5, atol=1e-8)


def test_lightgbm_objective_hands_the_loss_gradient_and_a_positive_hessian():
    score, treated, value, cost, weight = random_problem(seed=4)
    group = drm.Cohort.of(treated, value, cost, weight)
    grad, hess = ranking_scorers.lightgbm_objective(group, cpi_max=None)(score, None)
    numeric = numeric_gradient(lambda s: group.objective(s, None).loss, score)
    np.testing.assert_allclose(grad / len(score), numeric, rtol=1e-5, atol=1e-8)
    assert (hess >= 1e-3).all()


@pytest.mark.parametrize("scorer", ["lightgbm", "linear", "mlp"])
def test_every_scorer_ranks_by_value_per_cost_better_than_random(scorer):
    sim = simulate_cost_structure(8000, seed=1, structure="independent")
    x = sim.log[["x1", "x2", "x3", "x4", "x5"]].to_numpy()
    treated = (sim.log["offer"] == "offer").to_numpy()
    train = np.arange(len(x)) < 6000
    ranker = drm.DirectRanker(scorer, seed=0).fit(x[train], treated[train], sim.log["value"][train], sim.log["cost"][train])
    score = ranker.score(x[~train])
    tv, tc = (sim.truth[c].to_numpy()[~train] for c in ("true_tau_value__offer", "true_tau_cost__offer"))
    order = np.argsort(-score)
    true_aucc = np.trapezoid(np.r_[0, np.cumsum(tv[order]) / tv.sum()], np.r_[0, np.cumsum(tc[order]) / tc.sum()])
    assert true_aucc > 0.6  # random 0.5, the true ratio's own ranking 0.71
    pct = ranker.percentile(x[~train])
    assert 0 <= pct.min() and pct.max() <= 1
    assert np.all(np.diff(pct[order]) <= 1e-12)  # percentiles keep the scores' order


# --- effects per score bin -----------------------------------------------------------------------

def test_rank_bins_are_differences_of_arm_means_with_their_standard_errors():
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    treated = np.array([True, False, True, False, True, False, True, False])
    value = np.array([5.0, 1.0, 7.0, 2.0, 9.0, 1.0, 13.0, 4.0])
    cost = np.array([1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 5.0, 0.0])
    bins = drm.rank_bins(score, treated, value, cost, n_bins=2, min_rows=1)
    assert list(bins["n_offer"]) == [2, 2] and list(bins["n_control"]) == [2, 2]
    assert bins["tau_value"].tolist() == pytest.approx([6.0 - 1.5, 11.0 - 2.5])
    assert bins["tau_cost"].tolist() == pytest.approx([1.5, 4.0])
    se = np.sqrt(np.var([5.0, 7.0]) / 2 + np.var([1.0, 2.0]) / 2)
    assert bins["tau_value_se"].iloc[0] == pytest.approx(se)
    assert bins["tau_value_high"].iloc[0] - bins["tau_value"].iloc[0] == pytest.approx(1.959964 * se, rel=1e-6)
    weighted = drm.rank_bins(score, treated, value, cost, weight=np.array([1, 1, 3, 1, 1, 1, 1, 1.0]), n_bins=2, min_rows=1)
    assert weighted["tau_value"].iloc[0] == pytest.approx((5 + 3 * 7) / 4 - 1.5)


def test_thin_bins_are_merged_until_each_has_enough_rows_of_each_arm():
    rng = np.random.default_rng(0)
    score = rng.uniform(size=400)
    treated = score > 0.7  # the top bins have no control rows
    treated[::10] = ~treated[::10]
    bins = drm.rank_bins(score, treated, rng.normal(size=400), None, n_bins=10, min_rows=5)
    assert (bins["n_offer"] >= 5).all() and (bins["n_control"] >= 5).all()
    assert bins["n_offer"].sum() + bins["n_control"].sum() == 400
    one = drm.rank_bins(score, score > 0.5, rng.normal(size=400), None, n_bins=10, min_rows=1000)
    assert len(one) == 1


def test_effects_between_bins_are_interpolated_and_flat_beyond():
    bins = pd.DataFrame({"score_mid": [0.2, 0.6], "tau_value": [1.0, 3.0], "tau_cost": [2.0, 2.0]})
    np.testing.assert_allclose(drm.effects_from_bins([0.0, 0.2, 0.4, 0.6, 1.0], bins, "value"), [1, 1, 2, 3, 3])


# --- in the uplift model -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def independent():
    return simulate_cost_structure(12000, seed=2, structure="independent")


@pytest.fixture(scope="module")
def drm_fit(independent):
    return UpliftModel(learner="drm", folds=3, seed=0).fit(cost_log(independent.log))


def test_out_of_fold_aucc_beats_random_beyond_its_interval(independent, drm_fit):
    log = cost_log(independent.log)
    t = (log.action == "offer").astype(int)
    result = aucc_interval(log.value, log.cost, drm_fit.oof_["score__offer"], t, n_boot=200)
    assert result["ci_low"] > 0.5, result
    assert evaluate(log, drm_fit.oof_).arms["offer"].aucc == pytest.approx(result["aucc"])


def test_scores_are_fold_percentiles_and_predict_averages_the_fold_models(independent, drm_fit):
    oof = drm_fit.oof_
    assert list(oof.columns) == ["tau_value__offer", "tau_cost__offer", "score__offer"]
    assert oof["score__offer"].between(0, 1).all()
    fresh = independent.log.head(50)
    x = fresh[FEATURES].copy()
    predicted = drm_fit.predict(x)
    matrix = drm_fit._matrix(x)
    expected = np.mean([r.percentile(matrix) for r in drm_fit.rankers_[1]], axis=0)
    np.testing.assert_allclose(predicted["score__offer"], expected)
    bins = drm_fit.rank_bins_["offer"]
    np.testing.assert_allclose(predicted["tau_value__offer"], np.interp(expected, bins["score_mid"], bins["tau_value"]))


def test_evaluate_ranks_by_the_score_column_when_there_is_one(independent, drm_fit):
    log = cost_log(independent.log)
    t = (log.action == "offer").astype(int)
    scores = drm_fit.oof_.copy()
    scores["tau_value__offer"] = -scores["score__offer"]  # an opposite τ ranking must not be used
    result = evaluate(log, scores).arms["offer"]
    assert result.qini_normalized == pytest.approx(qini_auc_score(log.value, scores["score__offer"], t))
    assert result.aucc == pytest.approx(aucc(log.value, log.cost, scores["score__offer"], t))
    # a score file without τ cost still has a cost curve (ranked by the score), and no cost calibration
    bare = evaluate(log, scores.drop(columns="tau_cost__offer")).arms["offer"]
    assert bare.aucc == pytest.approx(result.aucc) and bare.calibration_cost is None


def test_constrained_ranking_keeps_its_cpi_on_held_out_customers(independent):
    cpi_max = 0.5  # the offer's average CPI is about 0.85
    train = np.arange(len(independent.log)) < 8000
    model = UpliftModel(learner="cdrm", folds=3, seed=0, cpi_max=cpi_max).fit(cost_log(independent.log[train]))
    held_out = independent.log[~train].reset_index(drop=True)
    tv, tc = (independent.truth[c].to_numpy()[~train] for c in ("true_tau_value__offer", "true_tau_cost__offer"))
    predicted = model.predict(held_out)
    # the soft selection the model was trained to make, on customers it never saw, in true effects
    p = drm.soft_selection(np.mean([r.score(model._matrix(held_out)) for r in model.rankers_[1]], axis=0),
                           np.ones(len(held_out), bool))
    assert (p @ tc) / (p @ tv) <= cpi_max
    # the plan: every customer whose estimated CPI is within the limit
    plan = (predicted["tau_value__offer"] > 0) & (predicted["tau_cost__offer"] <= cpi_max * predicted["tau_value__offer"])
    assert plan.sum() > 100
    assert tc[plan].sum() / tv[plan].sum() <= cpi_max
    unconstrained_average = tc.sum() / tv.sum()
    assert unconstrained_average > cpi_max  # the constraint binds


def test_constrained_ranking_defaults_to_the_median_average_cpi(independent):
    log = cost_log(independent.log)
    model = UpliftModel(learner="cdrm", folds=2, seed=0, ranking_scorer="linear").fit(log)
    t = log.action == "offer"
    expected = (log.cost[t].mean() - log.cost[~t].mean()) / (log.value[t].mean() - log.value[~t].mean())
    assert model.cpi_max_ == pytest.approx(expected)
    assert model.report_.to_dict()["ranking"]["cpi_max"] == pytest.approx(expected)


# --- degenerate data -----------------------------------------------------------------------------

def test_degenerate_logs_get_clear_messages(independent):
    frame = independent.log.head(2000).copy()
    with pytest.raises(UserError, match="no cost is mapped"):
        UpliftModel(learner="drm", folds=2).fit(cost_log(frame, cost=None))
    with pytest.raises(UserError, match="every cost in the log is 0"):
        UpliftModel(learner="drm", folds=2).fit(cost_log(frame, cost=None, action_cost=(("offer", 0.0),)))
    single = frame.assign(**{c: 0.5 for c in FEATURES[:5]}, region="north")
    with pytest.raises(UserError, match="a single customer type"):
        UpliftModel(learner="drm", folds=2).fit(cost_log(single))
    with pytest.raises(UserError, match="per-segment models are not available"):
        UpliftModel(learner="drm", by_segment=True).fit(cost_log(frame, segment="region"))
    with pytest.raises(UserError, match="the CPI limit must be a positive number") as caught:
        UpliftModel(learner="cdrm", cpi_max=-1.0).fit(cost_log(frame))
    assert str(caught.value.spelled(cli_spelling)).startswith("--cpi-max must be a positive number")
    with pytest.raises(UserError, match="needs learner cdrm") as caught:
        UpliftModel(learner="drm", cpi_max=1.0).fit(cost_log(frame))
    assert "needs --learner cdrm" in str(caught.value.spelled(cli_spelling))


def test_a_segment_without_treated_rows_is_named_in_the_fit_notes(independent):
    frame = independent.log.head(3000).copy()
    frame = frame[~((frame["region"] == "west") & (frame["offer"] == "offer"))].reset_index(drop=True)
    model = UpliftModel(learner="drm", folds=2, ranking_scorer="linear").fit(cost_log(frame, segment="region"))
    assert any("never sent in segment(s) 'west'" in note for note in model.report_.notes)
    assert np.isfinite(model.oof_.to_numpy()).all()


def test_aucc_interval_is_the_percentiles_of_poisson_resampled_aucc():
    sim = simulate_cost_structure(600, seed=4, structure="correlated")
    t = (sim.log["offer"] == "offer").astype(int).to_numpy()
    value, cost = sim.log["value"].to_numpy(), sim.log["cost"].to_numpy()
    score = sim.truth["true_tau_value__offer"].to_numpy() / sim.truth["true_tau_cost__offer"].to_numpy()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(t))
    score[:40] = score[40]  # ties: curve points only at distinct scores
    for w in (None, weights):
        result = aucc_interval(value, cost, score, t, w, n_boot=50, seed=7, chunk=8)
        # independently: each replicate is the data with Poisson(1) copies of every row, in full
        # (the counts are drawn in score order, highest first, ties in row order)
        order = np.argsort(score, kind="mergesort")[::-1]
        rng = np.random.default_rng(7)
        replicates = []
        for _ in range(50):
            rows = np.repeat(order, rng.poisson(1.0, len(t)))
            replicates.append(aucc(value[rows], cost[rows], score[rows], t[rows], None if w is None else w[rows]))
        assert result["n_boot"] == 50
        assert [result["ci_low"], result["ci_high"]] == pytest.approx(np.percentile(replicates, [2.5, 97.5]), rel=1e-10)
        assert result["aucc"] == pytest.approx(aucc(value, cost, score, t, w))
    assert aucc_interval(value, cost, score, t, n_boot=50, seed=7, chunk=3)["ci_low"] == pytest.approx(
        aucc_interval(value, cost, score, t, n_boot=50, seed=7, chunk=50)["ci_low"])
