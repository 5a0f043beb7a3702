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
    assert board["stability"].tolist() == ["not measured", "not measured"], "never a bare None"


def test_calibration_tab_shows_both_heads(evaluated):
    at, _ = evaluated
    table = at.dataframe[-1].value
    assert len(table) == 10 and {"predicted", "observed", "ci_low", "ci_high"} <= set(table.columns)


def test_auto_choice_is_explained_with_its_criteria(module_workspace):
    at = new_app().run()
    fit_quick_model(at, learners=("auto",)).switch_page("pages/4_evaluation.py").run()
    assert not at.exception and not at.error
    board = at.dataframe[0].value
    [title] = board["model"].tolist()
    assert title.startswith("Auto → ")
    text = " ".join(m.value for m in at.markdown)
    assert f"How {title} was chosen." in text and "doubly robust loss" in text
    candidates = at.dataframe[1].value
    assert set(candidates["learner"]) == {"S-learner", "T-learner", "X-learner", "DR-learner"}
    assert candidates["chosen"].sum() == 1 and candidates.loc[candidates["chosen"], "learner"].iloc[0] == title[7:]
    assert candidates["DR loss (relative)"].is_monotonic_increasing
    assert "ψ = μ̂ₖ(x) − μ̂₀(x)" in text and "Lower is better" in text


def test_rare_conversions_get_a_warning_and_no_recommendation(module_workspace):
    """Issue 13, item 10: a log with a handful of conversions is not ranked on noise."""
    from tests.pages.helpers import promo_log_csv, texts, upload

    at = upload(new_app().run(), "rare.csv", promo_log_csv(1500, seed=3))
    fit_quick_model(at).switch_page("pages/4_evaluation.py").run()
    assert not at.exception
    assert not at.success, "no 'Recommended: …' on noise"
    assert "No recommendation: the log has as few as" in texts(at.warning)
    assert "non-zero outcomes under the offer" in texts(at.warning)
    assert at.session_state["current"].config["recommended_model"] is None
