"""The Evaluation page on two real fitted models."""

import pytest

from tests.pages.helpers import fit_quick_model, new_app

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def evaluated(module_workspace):
    at = new_app().run()
    at.switch_page("pages/4_evaluation.py").run()
    before = [i.value for i in at.info]
    fit_quick_model(at, learners=("x", "t")).switch_page("pages/4_evaluation.py").run()
    return at, before


def test_needs_a_model_first(evaluated):
    _, before = evaluated
    assert any("No model has been fitted" in text for text in before)


def test_leaderboard_names_the_recommended_model(evaluated):
    at, _ = evaluated
    assert not at.exception and not at.error
    board = at.dataframe[0].value
    assert set(board["model"]) == {"X-learner", "T-learner"}
    assert board["recommended"].sum() == 1
    recommended = board.loc[board["recommended"], "model"].iloc[0]
    assert f"Recommended: **{recommended}**" in at.success[0].value
    assert (board["Qini (norm.)"] > 0.05).all(), "both models rank the simulator's customers better than random"
    assert at.session_state["current"].config["recommended_model"] in {"x", "t"}


def test_calibration_tab_shows_both_heads(evaluated):
    at, _ = evaluated
    table = at.dataframe[-1].value
    assert len(table) == 10 and {"predicted", "observed", "ci_low", "ci_high"} <= set(table.columns)
