"""The native LightGBM backend: equal to EconML where it should be, leak-free, data-adaptive."""

import numpy as np
import pandas as pd
import pytest

from core.schema import ColumnMap, ExperimentLog
from core.simulate import simulate
from core.uplift.model import UpliftModel

SIM_MAP = dict(action="offer", control="no_offer", value="revenue", cost="incentive_cost",
               propensity="propensity", segment="lifecycle", time="send_date", id="customer_id")


@pytest.fixture(scope="module")
def small_log():
    return ExperimentLog.from_frame(simulate(3000, seed=5).log, ColumnMap(**SIM_MAP))


def test_native_x_learner_equals_econml_xlearner(small_log):
    """Same folds, same LightGBM settings, no early stopping, every model binning its own rows:
    the native X-learner performs EconML's computation and must match it to float accuracy."""
    common = dict(learner="x", folds=2, seed=3, n_jobs=1, n_estimators=60)
    reference = UpliftModel(backend="econml", **common).fit(small_log).oof_
    native = UpliftModel(tuning="fixed", reuse_bins=False, **common).fit(small_log).oof_
    np.testing.assert_allclose(native.to_numpy(), reference.to_numpy(), rtol=1e-6, atol=1e-6)


def test_shared_bins_move_the_x_learner_only_slightly(small_log):
    """With the features binned once for the whole log (the speed-up), split candidates are the
    log's quantiles instead of each subset's: predictions move, but only a little."""
    common = dict(learner="x", folds=2, seed=3, n_jobs=1, n_estimators=60)
    reference = UpliftModel(backend="econml", **common).fit(small_log).oof_
    shared = UpliftModel(tuning="fixed", **common).fit(small_log).oof_
    for column in reference:
        a, b = reference[column].to_numpy(), shared[column].to_numpy()
        assert np.corrcoef(a, b)[0, 1] > 0.95, column
        assert abs(a.mean() - b.mean()) < 0.1 * a.std(), column


def _two_arm_log(sim, **mapping):
    return ExperimentLog.from_frame(sim.log, ColumnMap(action="arm", control="control", value="y", **mapping))


@pytest.mark.parametrize("strength,expected", [("strong", "flexible"), ("weak", "regularised")])
def test_tuning_picks_complexity_from_the_data(strength, expected):
    """Strongly heterogeneous, little noise → the flexible configuration; a small effect in heavy
    noise → the regularised one (seeded).  On the strong log no fold may settle for the
    regularised setting; on the weak one the per-fold losses are within noise of each other
    (every configuration stops after a few trees), so the majority is what counts."""
    from core.simulate import simulate_heterogeneity

    model = UpliftModel(learner="t", folds=3, seed=0).fit(_two_arm_log(simulate_heterogeneity(8000, 0, strength)))
    tuning = model.report_.tuning["value"]
    assert tuning["chosen"] == expected, tuning["per_fold"]
    if strength == "strong":
        assert "regularised" not in tuning["per_fold"], tuning["per_fold"]
    assert tuning["search"] == ["regularised", "balanced", "flexible"] and tuning["mode"] == "auto"


def _leak_test_fit(frame, monkeypatch=None):
    log = _two_arm_log(type("S", (), {"log": frame})(), features=tuple(c for c in frame if c.startswith(("x", "leak"))))
    return UpliftModel(folds=3, seed=0, candidates=("t", "x", "dr")).fit(log)


def test_no_test_fold_outcome_reaches_tuning_or_selection(monkeypatch):
    """A feature that equals the outcome on one test fold (and is noise elsewhere) is useless to
    a procedure that never looks at the test fold: the selection score and the out-of-fold error
    on that fold stay as with a pure-noise feature.  A procedure that trains on the test fold
    (simulated by patching the folds) exploits it at once — the check has teeth."""
    from core.simulate import simulate_heterogeneity

    sim = simulate_heterogeneity(6000, 1, "strong")
    y = sim.log["y"].to_numpy()
    tau = sim.truth["true_tau_value__treated"].to_numpy()
    model = UpliftModel(folds=3, seed=0)
    arm = (sim.log["arm"] == "treated").to_numpy().astype(int)
    _, _, _, test = next(model._splits({"all": np.arange(len(y))}, arm))
    rng = np.random.default_rng(5)
    noise = rng.permutation(y)
    leak = noise.copy()
    leak[test] = y[test]

    def run(feature):
        frame = sim.log.assign(leak=feature)
        fitted = _leak_test_fit(frame)
        chosen = next(c for c in fitted.selection_.candidates if c.learner == fitted.selection_.chosen)
        err = np.sqrt(np.mean((fitted.oof_["tau_value__treated"].to_numpy()[test] - tau[test]) ** 2))
        return chosen.score, err

    clean_score, clean_err = run(noise)
    leak_score, leak_err = run(leak)
    assert leak_score > clean_score - 0.02, (leak_score, clean_score)
    assert leak_err > clean_err * 0.9, (leak_err, clean_err)

    # the same check against a leaky procedure: train on every row, the test fold included
    original = UpliftModel._splits

    def leaky(self, segments, t):
        for seg, fold, train, test_rows in original(self, segments, t):
            yield seg, fold, np.arange(len(t)), test_rows

    monkeypatch.setattr(UpliftModel, "_splits", leaky)
    cheat_score, _ = run(leak)
    assert cheat_score < clean_score - 0.05, (cheat_score, clean_score)


def test_large_fits_grow_trees_on_capped_random_rows(small_log, monkeypatch):
    """Above ROWS_PER_TREE rows each tree sees that many random rows; early stopping watches at
    most VALID_ROWS validation rows.  Below the caps nothing changes."""
    from core.features import lgbm_frame, numeric_matrix
    from core.uplift import native

    x, cats = numeric_matrix(lgbm_frame(small_log.frame, list(small_log.features))[0])
    data = native.Binned(x, cats)
    rows, y = np.arange(2000), small_log.value
    params = {**native.base_params(0), **native.SEARCH["balanced"]}
    booster, loss = native.train(data, params, rows, y[rows], valid_rows=np.arange(2000, 3000), valid_label=y[2000:3000])
    assert "bagging_fraction" not in booster.params
    monkeypatch.setattr(native, "ROWS_PER_TREE", 500)
    monkeypatch.setattr(native, "VALID_ROWS", 200)
    capped, capped_loss = native.train(data, params, rows, y[rows], valid_rows=np.arange(2000, 3000), valid_label=y[2000:3000])
    assert capped.params["bagging_fraction"] == pytest.approx(500 / 2000) and capped.params["bagging_freq"] == 1
    # the loss is a sum over the validation rows: scaled back to all 1,000 of them, comparable
    assert 0.5 < capped_loss / loss < 2


def test_auto_on_a_large_log_chooses_on_a_sample_then_fits_the_choice_on_every_row(monkeypatch):
    from core.uplift import model as model_module

    monkeypatch.setattr(model_module, "AUTO_SELECT_ROWS", 2000)
    log = ExperimentLog.from_frame(simulate(5000, seed=8).log, ColumnMap(**SIM_MAP))
    seen = []
    # without the causal forest: on real logs the sample (100,000 rows) is far above its row limit
    model = UpliftModel(folds=2, seed=1, candidates=("s", "t", "x", "dr")).fit(log, progress=lambda f, m: seen.append((f, m)))
    chosen = model.selection_.chosen
    assert model.learner == "auto" and model.learner_ == chosen and model.report_.learner == "auto"
    assert "compared on a random 2,000-row sample of the 5,000-row log" in model.selection_.reason
    assert model.oof_.shape == (5000, 6) and model.oof_.notna().all().all()
    assert {m.learner for bag in model.models_[("value", "all")] for m in bag} == {chosen}
    # the full fit is the chosen learner's own fit on every row
    alone = UpliftModel(learner=chosen, folds=2, seed=1, candidates=("s", "t", "x", "dr")).fit(log)
    pd.testing.assert_frame_equal(model.oof_, alone.oof_)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[0][1].startswith("choosing on a 2,000-row sample · ")
