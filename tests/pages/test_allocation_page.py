"""The Allocation page: the budget slider moves the plan; downloads and pacing work."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import fit_quick_model, new_app

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def allocated(module_workspace):
    at = new_app().run()
    at.switch_page("pages/5_allocation.py").run()
    before = [i.value for i in at.info]
    fit_quick_model(at).switch_page("pages/5_allocation.py").run()
    return at, before


def metrics(at):
    return {m.label: m.value for m in at.metric}


def number(text):
    return float(text.replace(",", ""))


def test_needs_a_model_first(allocated):
    assert any("needs a fitted model" in text for text in allocated[1])


def test_budget_slider_changes_the_plan(allocated):
    at, _ = allocated
    assert not at.exception and not at.error
    budget = [s for s in at.slider if s.label.startswith("Budget")][0]
    budget.set_value(2000.0).run()
    small = metrics(at)
    assert number(small["Expected spend"]) <= 2000
    budget = [s for s in at.slider if s.label.startswith("Budget")][0]
    budget.set_value(20000.0).run()
    large = metrics(at)
    assert number(large["Expected incremental value"]) > number(small["Expected incremental value"])
    assert number(large["Customers with an offer"]) > number(small["Customers with an offer"])
    table = at.dataframe[0].value
    assert table["customers"].sum() == 50_000 and table["spend"].sum() <= 20000 + 1e-6
    assert at.session_state["current"].config["allocation"]["budget"] == 20000.0


def test_cpi_threshold_prunes_offers(allocated):
    at, _ = allocated
    before = number(metrics(at)["Customers with an offer"])
    at.toggle[0].set_value(True).run()
    [s for s in at.slider if s.label.startswith("Highest acceptable CPI")][0].set_value(0.05).run()
    assert not at.exception
    assert number(metrics(at)["Customers with an offer"]) < before


def test_what_if_compares_three_settings_without_refitting(allocated):
    at, _ = allocated
    from core.workspace import Workspace

    before = len(Workspace().list_models())
    [table] = [d.value for d in at.dataframe if "setting" in d.value.columns]
    assert table["setting"].tolist() == ["#1", "#2", "#3"]
    assert table["incremental value"].is_monotonic_increasing, "more budget, more value"
    assert (table["spend"] <= table["budget"] + 1e-6).all()
    assert len(Workspace().list_models()) == before


def test_step_status_for_the_sidebar():
    def script():
        import streamlit as st

        from ui import state

        cur = state.current()
        cur.dataset_id, cur.mapping = "ds_1", {"action": "offer"}
        cur.config["diagnostics_status"] = {"fingerprint": "f", "lights": {"SRM": "red", "Balance": "green"}}
        cur.config["models"] = {"x": {"model_id": "m"}}
        st.text(",".join(f"{k}={v}" for k, v in state.step_status().items()))
        state.set_acknowledged("f", ["SRM"])
        st.text(state.step_status()["diagnostics"])

    at = AppTest.from_function(script).run()
    first, second = (t.value for t in at.text)
    assert first == ("data=done,diagnostics=attention,models=done,evaluation=todo,allocation=todo,"
                     "policies=todo,report=todo,design=todo,monitor=todo")
    assert second == "done"


def test_a_long_horizon_value_is_reported_beside_the_plan(module_workspace):
    """Issue 14, item 4: map a 12-month value next to the 30-day one; the plan shows both."""
    import io

    import numpy as np

    from core.simulate import simulate
    from tests.pages.helpers import texts, upload

    log = simulate(3000, seed=8).log
    rng = np.random.default_rng(0)
    log["revenue_12m"] = (log["revenue"] * 2.5 + rng.normal(0, 5, len(log))).round(2)
    buffer = io.StringIO()
    log.to_csv(buffer, index=False)
    at = upload(new_app().run(), "with_12m.csv", buffer.getvalue().encode())
    [s for s in at.selectbox if s.label == "Long-horizon value (optional)"][0].set_value("revenue_12m").run()
    assert not at.exception and not at.error, texts(at.error)
    assert "revenue_12m" not in [m for m in at.multiselect if m.label == "Model features"][0].value
    fit_quick_model(at).switch_page("pages/5_allocation.py").run()
    assert not at.exception and not at.error, texts(at.error)
    shown = {m.label: m.value for m in at.metric}
    short = float(shown["Expected incremental value"].replace(",", ""))
    long = float(shown["Expected incremental value in `revenue_12m` (long horizon)"].replace(",", ""))
    assert 1.5 * short < long < 3.5 * short, (short, long)  # the true ratio is 2.5
