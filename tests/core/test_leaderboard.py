"""The leaderboard's one stability rule and the recommendation it feeds (issue 23, item 4)."""

from types import SimpleNamespace

import numpy as np
import pytest

from core.evaluation import MIN_EVENTS
from core.evaluation.leaderboard import COLUMNS, leaderboard, model_stability, stored_time_splits

# 3 bootstrap refits × 4 customers × 2 offers.  Offer 1: two bags agree, the third reverses the
# order: pairwise Spearman 1, −1, −1 → mean −1/3.  Offer 2: each pair swaps neighbours (Σd² = 2,
# 2, 4 → ρ = 0.8, 0.8, 0.6) → mean 11/15.  Stability = mean over offers = (−5/15 + 11/15) / 2 = 0.2.
BAGS = np.array([
    [[1, 1], [2, 2], [3, 3], [4, 4]],
    [[1, 2], [2, 1], [3, 3], [4, 4]],
    [[4, 1], [3, 2], [2, 4], [1, 3]],
], dtype=float)


def fitted(bags=None):
    return SimpleNamespace(oof_bags_={} if bags is None else {"value": bags})


def test_stability_is_the_bags_mean_rank_correlation_first():
    assert model_stability(fitted(BAGS)) == pytest.approx(0.2, abs=1e-12)
    assert model_stability(fitted(BAGS), time_split=0.45) == pytest.approx(0.2, abs=1e-12), "bags win over a time split"


def test_stability_without_bags_is_the_stored_time_split_else_none():
    assert model_stability(fitted(), time_split=0.45) == 0.45
    assert model_stability(fitted(BAGS[:1]), time_split=0.45) == 0.45, "one bag measures nothing"
    assert model_stability(SimpleNamespace(oof_bags_=None), time_split=0.45) == 0.45
    assert model_stability(fitted()) is None
    assert model_stability(fitted(BAGS[:1])) is None


def test_stored_time_splits_are_looked_up_by_model_id():
    config = {"time_split": {"mdl_t": 0.45, "mdl_other": 0.9}}
    records = {"t": {"model_id": "mdl_t"}, "x": {"model_id": "mdl_x"}}
    assert stored_time_splits(config, records) == {"t": 0.45, "x": None}
    assert stored_time_splits({}, records) == {"t": None, "x": None}


def evaluation(qini, slope=1.0):
    summary = {"qini": qini, "auuc": qini * 2, "aucc": 0.6, "calibration_slope": slope, "calibration_slope_cost": 1.0,
               "monotonicity": 0.5, "min_events": MIN_EVENTS * 2}
    return SimpleNamespace(summary=lambda: dict(summary))


def test_an_unstable_model_loses_the_recommendation():
    evaluations = {"s": evaluation(0.30), "x": evaluation(0.20)}
    board = leaderboard(evaluations, {"s": fitted(BAGS), "x": fitted()}, titles={"s": "S-learner", "x": "X-learner"})
    assert board.rows["s"]["stability"] == pytest.approx(0.2) and board.rows["x"]["stability"] is None
    assert board.best == "x", "S ranks customers unstably (0.2 < 0.6)"
    assert board.why == ("highest Qini (0.200) among models whose predictions can be taken at face value "
                         "(calibration slope 1.00, within 0.5–1.5)")
    # the same models with S's stability unmeasured: S has the higher Qini
    assert leaderboard(evaluations, {"s": fitted(), "x": fitted()}).best == "s"
    # a stored time split is used for the model without bags
    board = leaderboard(evaluations, {"s": fitted(), "x": fitted()}, time_split={"s": 0.3, "x": 0.8})
    assert board.best == "x" and board.why.endswith("and that rank customers stably (rank correlation 0.80)")


def test_frame_and_dict():
    evaluations = {"s": evaluation(0.30), "x": evaluation(0.20)}
    board = leaderboard(evaluations, {"s": fitted(BAGS), "x": fitted()}, titles={"s": "S-learner", "x": "X-learner"})
    frame = board.to_frame()
    assert list(frame.columns) == ["model", *COLUMNS, "recommended"]
    assert frame["model"].tolist() == ["S-learner", "X-learner"] and frame["recommended"].tolist() == [False, True]
    assert frame["qini"].tolist() == [0.30, 0.20]
    out = board.to_dict()
    assert set(out) == {"leaderboard", "recommended", "why"} and out["recommended"] == "x" and out["why"] == board.why
    assert [row["model"] for row in out["leaderboard"]] == ["s", "x"]
    assert out["leaderboard"][0]["title"] == "S-learner" and out["leaderboard"][0]["stability"] == pytest.approx(0.2)
    assert out["leaderboard"][1] == {"model": "x", "title": "X-learner", "qini": 0.20, "auuc": 0.40, "aucc": 0.6,
                                     "calibration_slope": 1.0, "calibration_slope_cost": 1.0, "monotonicity": 0.5,
                                     "min_events": MIN_EVENTS * 2, "stability": None, "recommended": True}
    assert board.title("s") == "S-learner" and leaderboard(evaluations, {"s": fitted(), "x": fitted()}).title("s") == "s"


def test_no_models_no_recommendation():
    board = leaderboard({}, {})
    assert board.best is None and board.why == "no model fitted yet" and board.to_frame().empty
