"""Direct ranking in the app: fitted beside a two-head learner, its effects per score bin on
Models, its cost curve and AUCC interval on Evaluation, and a plan on Allocation."""

import pytest

from tests.pages.helpers import fit_quick_model, new_app, texts

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def fitted(module_workspace):
    at = new_app().run()
    at.switch_page("pages/2_diagnostics.py").run()
    at.switch_page("pages/3_models.py").run()
    at.multiselect[0].set_value(["x", "cdrm"]).run()
    [limit] = [n for n in at.number_input if "CPI limit" in n.label]
    limit.set_value(0.3).run()
    return fit_quick_model(at, learners=("x", "cdrm"))


def test_models_page_shows_the_ranking_effects_per_score_bin(fitted):
    at = fitted
    assert not at.exception and not at.error, texts(at.error)
    board = at.dataframe[0].value
    assert set(board["learner"]) == {"X-learner", "Constrained direct ranking"}
    params = at.session_state["current"].config["models"]["cdrm"]["params"]
    assert params["cpi_max"] == 0.3 and params["ranking_scorer"] == "lightgbm"
    assert "incremental cost per incremental value ≤ 0.3" in texts(at.markdown)
    bins = [d.value for d in at.dataframe if "tau_value_low" in d.value.columns]
    assert bins and (bins[0]["tau_value_low"] <= bins[0]["tau_value"]).all()
    assert set(bins[0]["offer"]) == {"coupon_20", "free_shipping", "pct10_off"}


def test_evaluation_overlays_cost_curves_with_aucc_intervals(fitted):
    at = fitted.switch_page("pages/4_evaluation.py").run()
    assert not at.exception and not at.error, texts(at.error)
    board = at.dataframe[0].value
    assert set(board["model"]) == {"X-learner", "Constrained direct ranking"}
    [aucc] = [d.value for d in at.dataframe if "95% CI low" in d.value.columns]
    assert set(aucc["model"]) == {"X-learner", "Constrained direct ranking"}
    assert ((aucc["95% CI low"] < aucc["AUCC"]) & (aucc["AUCC"] < aucc["95% CI high"])).all()


def test_allocation_plans_with_the_ranking_model(fitted):
    at = fitted.switch_page("pages/5_allocation.py").run()
    at.selectbox[0].set_value("cdrm").run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.session_state["current"].config["allocation"]["model"] == "cdrm"


def test_report_describes_the_ranking_model_and_its_plan(fitted):
    from core.report import build_report
    from core.workspace import Workspace

    at = fitted.switch_page("pages/5_allocation.py").run()
    at.selectbox[0].set_value("cdrm").run()
    cur = at.session_state["current"]
    html, sections = build_report(Workspace().load_dataset(cur.dataset_id), {**cur.config, "mapping": cur.mapping},
                                  workspace=Workspace(), n_boot=20)
    assert {"models", "allocation"} <= set(sections)
    assert "Constrained direct ranking ranks customers by one learned score per offer" in html
    assert "incremental cost per incremental value ≤ 0.3" in html
